"""The status bar: model, device, precision, memory, context, speed, notices."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

from rich.cells import cell_len, set_cell_size
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from vicuna_tui.engine.events import (
    ModelInfo,
    ReplyStats,
    drafts_text,
    rate_text,
    speedup_text,
)
from vicuna_tui.tui.model_state import ModelState
from vicuna_tui.tui.plain import plain


def process_memory() -> tuple[int, int]:
    """(anonymous, file-backed) resident memory of this process and its children (the
    model runs in one).  Anonymous memory is what the model really holds: weights
    llama.cpp copied into its own layout, the KV cache, torch's tensors.  File-backed
    pages are the mapped model file, which the kernel can drop and read again."""
    import psutil

    anonymous = mapped = 0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # it just exited
            info = process.memory_info()
            shared = int(getattr(info, "shared", 0))  # Linux: file pages and shmem
            anonymous += int(info.rss) - shared
            mapped += shared
    return anonymous, mapped


MAPPED_SHOWN = 32 * 2**20  # the mapped file is named once it is this large


def memory_text(probe: int | tuple[int, int]) -> str:
    """ "RAM 5.8 GB + 3.7 GB file": what the model holds, and its mapped file apart."""
    anonymous, mapped = (probe, 0) if isinstance(probe, int) else probe
    text = f"RAM {human_bytes(anonymous)}"
    if mapped >= MAPPED_SHOWN:
        text += f" + {human_bytes(mapped)} file"
    return text


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def progress_text(stage: str, done: int, total: int, width: int = 12) -> str:
    """A stage of a long wait as one line of text: ``loading weights 120/290 ▕███░░▏ 41%``.

    A stage without steps (importing torch, a connection) shows only its name: a bar
    for one step would sit at 0 % until it ended.  Text, not a ProgressBar widget: it
    cannot be cut off, and the first frame does not pay for that widget."""
    name = "loading the model" if stage in ("", "loading") else stage
    if total <= 1:
        return f"{name}…"
    done = max(0, min(done, total))
    filled = round(width * done / total)
    bar = "█" * filled + "░" * (width - filled)
    return f"{name} {done}/{total} ▕{bar}▏ {100 * done // total}%"


def status_line(facts: str, live: str, width: int) -> str:
    """``facts`` at the left and ``live`` at the right of a line ``width`` cells wide:
    the facts are cut (with "…") to leave room for all of ``live``; ``width`` 0 (not
    laid out yet): the two side by side."""
    if width <= 0 or not live:
        return f"{facts}  {live}".strip() if width <= 0 else facts
    room = width - cell_len(live) - 2  # two cells between them
    if cell_len(facts) > room:
        facts = set_cell_size(facts, room - 1) + "…" if room > 1 else ""
    gap = width - cell_len(facts) - cell_len(live)
    return facts + " " * max(1 if facts else 0, gap) + live


class StatusBar(Horizontal):
    def __init__(
        self,
        *,
        memory_probe: Callable[[], int | tuple[int, int]] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.memory_probe = memory_probe or process_memory
        self.info: ModelInfo | None = None
        self.state = "starting…"
        self.gpu_memory: int | None = None
        self.context_used: int | None = None
        self.speed = ""
        self.prompt_cache: int | None = None  # bytes of prompts llama.cpp set aside
        self.threads: int | None = None  # what decoded the last reply (they follow the load)
        self.forecast = 0  # old turns that sending the draft would drop
        self.notice = ""
        self.not_saving: str | None = None  # why the chat is not being saved
        self.token_view = False  # replies shown as tokens (F9)
        # What drafted the last reply ("off": nothing; auto turns it on and off per
        # chat); None before the first reply of a load: the load's own setting shows.
        self.drafting: str | None = None
        self._parts = ("", "")  # the facts, and what changes, as last drawn

    def compose(self) -> ComposeResult:
        # One line: the model's facts at the left, cut with "…" when the terminal is
        # narrow; what changes (the state, the last reply's speed, notices) whole at
        # the right.  Laid out here, by the line's width, not by the layout engine: an
        # auto-width part was drawn a frame late, cut at its old width.
        yield Static(plain(self.state), id="status-text")

    def on_resize(self) -> None:
        self.refresh_text()

    def on_mount(self) -> None:
        self.watch(self.screen, "model", self.model_changed, init=False)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.state = progress_text(stage, done, total)
        self.refresh_text()

    def model_changed(self, state: ModelState) -> None:
        """The chat screen's ``model`` changed (watched from on_mount)."""
        if state.info is not None and state.ready:
            self.loaded(state.info)
        elif state.phase == "failed":
            self.failed(state.error)

    def loaded(self, info: ModelInfo) -> None:
        self.info = info
        self.drafting = None
        self.threads = None
        self.prompt_cache = None
        self.state = ""
        self.refresh_text()

    def failed(self, message: str) -> None:
        self.info = None
        self.state = f"no model: {message}"
        self.refresh_text()

    def set_state(self, text: str) -> None:
        self.state = text
        self.refresh_text()

    def reply_stats(self, stats: ReplyStats) -> None:
        """The last reply's numbers: speed, threads, prompt cache, what drafted it."""
        self.drafting = stats.speculation or "off"
        self.prompt_cache = stats.prompt_cache_bytes
        self.threads = stats.threads
        speed = []
        if stats.tokens_per_second:
            speed.append(rate_text(stats.tokens_per_second))
        if stats.time_to_first_token is not None:
            speed.append(f"TTFT {stats.time_to_first_token:.2f} s")
        if stats.speculation is not None and stats.drafted is not None:
            speed.append(drafts_text(stats.drafted, stats.accepted or 0))
            gained = speedup_text(stats)
            if gained:
                speed.append(gained)
        self.speed = " · ".join(speed)
        dropped = stats.dropped_turns
        self.notice = f"⚠ {dropped} old turn(s) dropped to fit the context" if dropped else ""
        self.refresh_text()

    def live_drafts(self, drafted: int, accepted: int) -> None:
        """While a speculating reply is written: its drafted and kept tokens so far
        (in place of the last reply's numbers, which its own replace when it ends)."""
        self.speed = drafts_text(drafted, accepted)
        self.refresh_text()

    def set_token_view(self, on: bool) -> None:
        self.token_view = on
        self.refresh_text()

    def set_forecast(self, dropped: int) -> None:
        if dropped != self.forecast:
            self.forecast = dropped
            self.refresh_text()

    def set_context(self, used: int | None) -> None:
        """The context the path shown has used (it follows branch switches)."""
        if used != self.context_used:
            self.context_used = used
            self.refresh_text()

    def _prompt_cache(self) -> list[str]:
        """What llama.cpp's prompt cache holds of its bound (last: the first part a narrow
        terminal cuts)."""
        info = self.info
        if info is None or info.engine != "llamacpp" or not info.prompt_cache_mib:
            return []
        held = (self.prompt_cache or 0) / 2**20
        return [f"prompt cache {held:.0f}/{info.prompt_cache_mib} MiB"]

    def _context_parts(self, info: ModelInfo) -> list[str]:
        """The context used, and the old turns that sending the draft would drop."""
        parts = []
        if self.context_used:
            limit = f"/{info.context_length}" if info.context_length else ""
            parts.append(f"ctx {self.context_used}{limit}")
        elif info.context_length and info.backend == "local":
            parts.append(f"ctx {info.context_length}")
        if self.forecast:
            turns = "turn" if self.forecast == 1 else "turns"
            parts.append(f"⚠ sending drops {self.forecast} old {turns}")
        return parts

    def refresh_text(self) -> None:
        parts: list[str] = []
        info = self.info
        if info is not None:
            if info.engine == "llamacpp":
                shown = dataclasses.replace(info, threads=self.threads or info.threads)
                parts += [info.name, "llama.cpp", info.quantization or "gguf", shown.placement]
                if info.kv_type and info.kv_type != "f16":
                    parts.append(f"KV {info.kv_type}")
            else:
                precision = info.dtype + (f"/{info.quantization}" if info.quantization else "")
                parts += [info.name, info.device, precision]
            if info.speculation:  # short: the line is full (the counts follow the speed)
                kind = self.drafting or info.speculation
                parts.append(f"spec {kind.split(' ')[0]}")
            if info.backend == "local":
                if self.gpu_memory is not None and info.device.startswith("cuda"):
                    parts.append(f"GPU {human_bytes(self.gpu_memory)}")
                else:
                    parts.append(memory_text(self.memory_probe()))
            parts += self._context_parts(info)
        parts += self._prompt_cache()
        live = []
        if self.token_view:
            live.append("token view")
        if self.speed:
            live.append(self.speed)
        if self.state:
            live.append(self.state)
        if self.notice:
            live.append(self.notice)
        if self.not_saving:
            live.append("⚠ not saving")
        self._parts = (" · ".join(parts), " · ".join(live))
        width = self.content_region.width  # the line's (it fills the bar)
        self.query_one("#status-text", Static).update(plain(status_line(*self._parts, width)))

    @property
    def text(self) -> str:
        """The whole line's text: the facts, then what changes."""
        return " · ".join(part for part in self._parts if part)
