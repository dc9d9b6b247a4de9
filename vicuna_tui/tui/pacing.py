"""How often to draw a streaming reply.

A reply is redrawn at most FRAMES_PER_SECOND times a second, and less often when drawing
takes more than UI_SHARE of the UI thread's time (a long transcript costs more per
frame): on a CPU the model and the UI share the interpreter, so time spent drawing is
taken from generation.  BENCHMARKS.md: stream and render.
"""

from __future__ import annotations

import time

FRAMES_PER_SECOND = 8
SLOWEST_FRAME = 1.0
UI_SHARE = 0.08


class FramePacer:
    """The wait before the next frame, from the UI thread's share of the last interval."""

    def __init__(self) -> None:
        self.interval = 1 / FRAMES_PER_SECOND
        self._clock = (0.0, 0.0)  # (wall, UI-thread CPU) at the last frame

    def start(self) -> float:
        """A reply begins: returns the wait before its first frame."""
        self._clock = (time.perf_counter(), time.thread_time())
        return self.interval

    def next(self) -> float:
        """A frame was drawn: returns the wait before the next one."""
        wall, cpu = time.perf_counter(), time.thread_time()
        elapsed = wall - self._clock[0]
        share = (cpu - self._clock[1]) / elapsed if elapsed > 0 else 0.0
        if share > UI_SHARE:
            self.interval = min(SLOWEST_FRAME, self.interval * 1.5)
        else:
            self.interval = max(1 / FRAMES_PER_SECOND, self.interval / 1.25)
        self._clock = (wall, cpu)
        return self.interval
