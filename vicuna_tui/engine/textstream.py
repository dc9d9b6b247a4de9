"""Turning generated token ids into text deltas, and holding back stop strings.

Both work incrementally: a step costs the same at token 10 and token 10,000.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Decodes a growing list of token ids into text deltas, UTF-8 safe.

    Each step decodes only a short window (from the start of the previous delta), so
    the reply is never re-decoded as a whole.  A character split across byte-fallback
    tokens (CJK, emoji) is held back until it is complete, then released at once.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], context: Sequence[int] = ()) -> None:
        """``context``: ids already written before the first pushed (a reply's given
        start): they are not decoded again, but the first token's text is read after
        them (a SentencePiece word's space is kept)."""
        self._decode = decode
        self._ids: list[int] = list(context)
        self._prefix = 0
        self._read = len(self._ids)

    @property
    def ids(self) -> list[int]:
        return self._ids

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith(REPLACEMENT):
            delta = after[len(before) :]
            self._prefix = self._read
            self._read = len(self._ids)
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end)."""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return after[len(before) :] if len(after) > len(before) else ""


class LeadingSpace:
    """Drops whitespace at the very start of a reply (as FastChat's CLI strips it)."""

    def __init__(self) -> None:
        self.started = False

    def push(self, text: str) -> str:
        if self.started:
            return text
        text = text.lstrip()
        self.started = bool(text)
        return text


class StopMatcher:
    """Finds stop strings in streamed text without ever showing part of one.

    Text that might be the start of a stop string is held back, and released as soon
    as the next characters show it is not one.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(dict.fromkeys(s for s in stops if s))
        self._pending = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Feed a delta; returns the text that is safe to show now."""
        if self.stopped:
            return ""
        buf = self._pending + text
        if not self.stops:
            self._pending = ""
            return buf
        cut = -1
        for stop in self.stops:
            at = buf.find(stop)
            if at != -1 and (cut == -1 or at < cut):
                cut = at
        if cut != -1:
            self.stopped = True
            self._pending = ""
            return buf[:cut]
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(buf)), hold, -1):
                if buf.endswith(stop[:k]):
                    hold = k
                    break
        self._pending = buf[len(buf) - hold :] if hold else ""
        return buf[: len(buf) - hold]

    def flush(self) -> str:
        """At the end of generation: release what was held back."""
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out
