"""A long run's progress: a bar with the time left on a terminal, plain lines in a pipe
or a log (one per step, so that nothing is lost to carriage returns)."""

from __future__ import annotations

import shutil
import time
from typing import TextIO

from vicuna_tui.textsafe import terminal_safe

_WIDTH = 24


def time_left(elapsed: float, done: int, total: int) -> str:
    """About how long the rest takes, going by the steps done so far ("" when none are
    left or none are done)."""
    if done <= 0 or done >= total:
        return ""
    left = int(elapsed / done * (total - done))
    return f"about {left // 60}:{left % 60:02d} left"


class RunProgress:
    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.started = time.monotonic()
        self.bar = stream.isatty()
        self._drawn = False

    def step(self, done: int, label: str) -> None:
        """``done`` of ``total`` are finished, the last being ``label``."""
        eta = time_left(time.monotonic() - self.started, done, self.total)
        tail = f" ({eta})" if eta else ""
        if self.bar:
            filled = round(_WIDTH * done / max(self.total, 1))
            bar = "█" * filled + "░" * (_WIDTH - filled)
            line = terminal_safe(f"{bar} {done}/{self.total}{tail}  {label}")
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r\x1b[2K" + line[:width])
            self._drawn = True
        else:
            self.stream.write(terminal_safe(f"[{done}/{self.total}] {label}{tail}") + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own, above the bar."""
        self.clear()
        self.stream.write(terminal_safe(text) + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False
