"""What llama.cpp's host prompt cache holds, kept in step with llama.cpp's own rules so
that the status bar and ``--stats`` can say it without reading llama.cpp's log.

When a request would keep less than half of a slot's tokens, llama.cpp sets the slot's
state aside in RAM (one prompt's KV: its tokens times the KV bytes per token), takes
back a prompt set aside earlier if one matches the new request better (which leaves the
cache), and drops the oldest prompts while the cache is over its bound; a prompt larger
than the bound is not kept.  A test holds this against llama.cpp's own "cache state"
log line.
"""

from __future__ import annotations

from vicuna_tui.engine.prompting import common_prefix

SAVE_BELOW = 0.5  # set the slot aside when a request keeps less than this share of it


class HostPromptCache:
    def __init__(self, limit_bytes: int, bytes_per_token: int) -> None:
        self.limit = limit_bytes
        self.per_token = bytes_per_token
        self._entries: list[tuple[list[int], int]] = []  # (tokens, bytes), oldest first

    @property
    def held(self) -> int:
        return sum(size for _, size in self._entries)

    @property
    def prompts(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries = []

    def before_request(self, slot: list[int], new: list[int]) -> int:
        """``slot``: the tokens the slot holds (prompt and reply); ``new``: the prompt.
        Returns how many tokens of ``new`` a prompt taken back from the cache already
        holds (0 when none is): the caller's prompt can start there."""
        if self.limit <= 0 or not slot:
            return 0
        kept = common_prefix(slot, new)
        if kept / len(slot) >= SAVE_BELOW:
            return 0
        size = len(slot) * self.per_token
        saved = size <= self.limit
        if saved:
            while self._entries and self.held + size > self.limit:
                self._entries.pop(0)  # llama.cpp makes room, oldest first
            self._entries.append((list(slot), size))
        restored = self._take_better(slot, kept, new, len(self._entries) - saved)
        while len(self._entries) > 1 and self.held > self.limit:
            self._entries.pop(0)
        return restored

    def _take_better(self, slot: list[int], kept: int, new: list[int], older: int) -> int:
        best, best_keep, best_sim, best_shared = -1, kept / len(slot), kept / max(1, len(new)), 0
        for index, (tokens, _) in enumerate(self._entries[:older]):
            shared = common_prefix(tokens, new)
            keep, sim = shared / max(1, len(tokens)), shared / max(1, len(new))
            if keep > best_keep and sim > best_sim:
                best, best_keep, best_sim, best_shared = index, keep, sim, shared
        if best >= 0:
            del self._entries[best]
        return best_shared
