"""The terminal under the apps, and what happens when it goes away.

Textual writes each frame through a writer thread with a queue of 30.  When the
terminal closes, the write fails (EIO), the exception ends that thread, and the next 30
frames fill its queue: the app then blocks forever on the 31st, or in the driver's
close, which waits for the thread.  That process ignores SIGTERM (its handler runs in
the blocked event loop) and holds the model's memory.  So:

- ``TerminalDriver`` is Textual's Linux driver writing through ``DeadEndFile``, which
  drops what cannot be written once the terminal is gone instead of raising;
- ``ExitWatch`` bounds the time the app may take to end once the terminal has closed or
  the process was told to stop: past it, what the app's own ending did not do is done
  here (the reply saved, the model stopped) and the process exits.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from textual.app import App
from textual.driver import Driver

CLEAN_END = 20.0  # seconds for the app's own ending: stopping the model, the last writes
LAST_FRAMES = 3.0  # once that is done, for Textual to restore the terminal


class DeadEndFile:
    """A terminal stream whose writes are dropped once the terminal is gone."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self._file.write(text)
            except (OSError, ValueError):  # EIO, EPIPE, or closed: the terminal is gone
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._file.flush()
            except (OSError, ValueError):
                self.gone = True

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return not self.gone and self._file.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def terminal_driver(default: type[Driver]) -> type[Driver]:
    """Our driver in place of Textual's Linux one; any other (Windows, web, headless,
    TEXTUAL_DRIVER) is kept."""
    try:
        from textual.drivers.linux_driver import LinuxDriver
    except ImportError:  # no termios: Windows
        return default
    if default is not LinuxDriver:
        return default

    class TerminalDriver(LinuxDriver):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._file = DeadEndFile(self._file)  # type: ignore[arg-type,assignment]

    return TerminalDriver


class TerminalApp(App[int]):
    """An app that survives its terminal (see the module's docstring).  SIGTERM and
    SIGHUP end it as quitting does, within a bounded time: subclasses say what ending
    means in ``end_now`` (keep the reply in flight) and ``finish`` (what their
    ``on_unmount`` does off the UI: stop the model, write what is queued), and call
    ``self.exit_watch.ended()`` once their ``on_unmount`` is done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exit_watch = ExitWatch(self.finish)

    def get_driver_class(self) -> type[Driver]:
        return terminal_driver(super().get_driver_class())

    def end_on_signals(self) -> None:
        """From now on SIGTERM and SIGHUP end the app (call it once the app runs)."""
        import asyncio
        import contextlib
        import signal

        loop = asyncio.get_running_loop()
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(getattr(signal, name), self._signalled)

    def _signalled(self) -> None:
        self.exit_watch.start()
        self.end_now()

    def end_now(self) -> None:
        self.exit(0)

    def finish(self) -> None:
        """What ``on_unmount`` does that must happen even when the UI is stuck; runs
        on the exit watch's thread when it does not finish in time."""


class ExitWatch:
    """Once started (the terminal closed, or SIGTERM), the process ends within
    ``CLEAN_END + LAST_FRAMES`` seconds whatever the app is stuck on.  The app calls
    ``ended`` when its own ending (``on_unmount``) is done; if it is not done in time,
    ``finish`` runs here first, and must do the same: save what is queued, stop the
    model."""

    def __init__(
        self,
        finish: Callable[[], None],
        clean_end: float = CLEAN_END,
        last_frames: float = LAST_FRAMES,
    ) -> None:
        self._finish = finish
        self._clean_end, self._last_frames = clean_end, last_frames
        self._ended = threading.Event()
        self._started = False

    def ended(self) -> None:
        self._ended.set()

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        threading.Thread(target=self._watch, name="vicuna-exit-watch", daemon=True).start()

    def _watch(self) -> None:
        if self._ended.wait(self._clean_end):
            time.sleep(self._last_frames)
        else:
            self._finish()
        from vicuna_tui.engine.process import end_model_processes

        end_model_processes()  # atexit does not run after os._exit
        os._exit(0)
