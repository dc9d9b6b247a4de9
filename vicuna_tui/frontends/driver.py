"""Runs the engine thread for the line-based front ends.

The engine thread posts events to a queue; this side waits on it.  Ctrl-C during a
reply cancels it (within one token) and the partial reply is kept.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Callable
from typing import TextIO

from vicuna_tui.engine.backend import Backend
from vicuna_tui.engine.events import (
    ChatRequest,
    EngineEvent,
    LoadFailed,
    LoadProgress,
    ModelInfo,
    ModelReady,
    Notice,
    PromptPreview,
    ReplyDelta,
    ReplyDone,
    ReplyFailed,
    ReplyStarted,
)
from vicuna_tui.engine.worker import EngineThread
from vicuna_tui.errors import VicunaError
from vicuna_tui.stdio import OutputError


class ProgressLine:
    """Loading progress on stderr: a bar redrawn in place on a terminal, else stage lines."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._last_stage = ""
        self._drawn = False

    def __call__(self, event: LoadProgress) -> None:
        if not self.enabled:
            return
        if self.tty:
            width = 24
            filled = int(width * event.done / event.total) if event.total else 0
            bar = "█" * filled + "░" * (width - filled)
            count = f" {event.done}/{event.total}" if event.total > 1 else ""
            self.stream.write(f"\r\x1b[2K{bar} {event.stage}{count}")
            self.stream.flush()
            self._drawn = True
        elif event.stage != self._last_stage:
            self.stream.write(f"{event.stage}...\n")
            self.stream.flush()
        self._last_stage = event.stage

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False


class Driver:
    def __init__(self, *, debug: bool = False, notice: Callable[[str], None] | None = None) -> None:
        self.events: queue.Queue[EngineEvent] = queue.Queue()
        self.engine = EngineThread(self.events.put, debug=debug).start()
        self._notice = notice or (lambda text: None)
        self.info: ModelInfo | None = None
        self.hung_up = False  # SIGTERM or SIGHUP came: finish the reply, then exit

    def _next(self) -> EngineEvent:
        while True:
            try:
                return self.events.get(timeout=0.1)
            except queue.Empty:
                continue

    def load(self, backend: Backend, progress: Callable[[LoadProgress], None]) -> ModelInfo:
        """Load and wait.  Raises the VicunaError that explains a failure."""
        self.engine.load(backend)
        while True:
            event = self._next()
            if isinstance(event, LoadProgress):
                progress(event)
            elif isinstance(event, ModelReady):
                self.info = event.info
                return event.info
            elif isinstance(event, LoadFailed):
                raise event.error
            elif isinstance(event, Notice):
                self._notice(event.text)

    def ask(
        self,
        request: ChatRequest,
        on_delta: Callable[[str], None],
        on_started: Callable[[ReplyStarted], None] | None = None,
    ) -> ReplyDone | ReplyFailed:
        """Generate one reply, streaming deltas to ``on_delta``; Ctrl-C cancels it, and
        so do SIGTERM and SIGHUP (``Hangup``), after which ``hung_up`` is set.  Output
        that can no longer be written (the terminal closed) cancels it too: the reply
        so far still comes back, to be saved."""
        self.engine.generate(request)
        writing = True
        while True:
            try:
                event = self._next()
                if isinstance(event, ReplyDelta) and event.request_id == request.request_id:
                    if writing:
                        try:
                            on_delta(event.text)
                        except (OSError, OutputError):
                            writing = False
                            self.engine.cancel()
                elif isinstance(event, ReplyStarted) and on_started is not None:
                    on_started(event)
                elif (
                    isinstance(event, (ReplyDone, ReplyFailed))
                    and event.request_id == request.request_id
                ):
                    return event
                elif isinstance(event, Notice):
                    self._notice(event.text)
            except KeyboardInterrupt as interrupt:
                self.engine.cancel()
                if isinstance(interrupt, Hangup):
                    self.hung_up = True

    def preview(self, request: ChatRequest) -> PromptPreview:
        self.engine.preview(request)
        while True:
            event = self._next()
            if isinstance(event, PromptPreview):
                return event
            if isinstance(event, ReplyFailed):
                raise event.error

    def close(self) -> None:
        self.engine.shutdown()


class Hangup(KeyboardInterrupt):
    """SIGTERM or SIGHUP (the terminal closed): stop the reply, save it, and exit."""


def raise_hangup_on_signals() -> None:
    """Make SIGTERM and SIGHUP raise ``Hangup`` in the main thread (where the line
    front ends wait), so they end a chat the way Ctrl-C ends a reply."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise Hangup(signal.Signals(signum).name)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


def describe_failure(error: VicunaError) -> str:
    return f"error: {error}"
