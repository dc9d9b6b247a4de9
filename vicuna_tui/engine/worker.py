"""The engine thread: the one thread that owns the model.

Front ends talk to it only through this object's methods, which put commands (one
dataclass each: ``Load``, ``Generate``, ``Preview``, ``Call``) on a queue, and hear
back through one ``emit`` callback called on the engine thread.  The callback must
only hand the event on (``App.post_message``, ``queue.put``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vicuna_tui.engine.backend import Backend
from vicuna_tui.engine.events import (
    ChatRequest,
    EngineEvent,
    LoadFailed,
    LoadProgress,
    ModelReady,
    Notice,
    ReplyDelta,
    ReplyFailed,
    Unloaded,
)
from vicuna_tui.errors import GenerationError, VicunaError

Emit = Callable[[EngineEvent], None]


@dataclass(frozen=True)
class Load:
    """Replace the backend (unloading the old one) and load this one."""

    backend: Backend


@dataclass(frozen=True)
class Generate:
    """Stream the reply to ``request``; ``cancel`` stops it within a token."""

    request: ChatRequest
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Preview:
    """Show the prompt ``request`` would make (emitted as a PromptPreview)."""

    request: ChatRequest


@dataclass(frozen=True)
class Call:
    """Run ``function(backend)`` here; ``reply`` gets its result (on this thread)."""

    function: Callable[[Backend | None], Any]
    reply: Callable[[Any], None]


Command = Load | Generate | Preview | Call


class EngineThread:
    def __init__(self, emit: Emit, *, debug: bool = False) -> None:
        self._emit = emit
        self._debug = debug
        self._queue: queue.Queue[Command | None] = queue.Queue()
        self._lock = threading.Lock()
        self._current: Command | None = None
        self._pending: list[Command] = []
        self.backend: Backend | None = None
        self._thread = threading.Thread(target=self._run, name="vicuna-engine", daemon=True)
        self._started = False

    # -- called from the front end's thread ----------------------------------------------

    def start(self) -> EngineThread:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def load(self, backend: Backend) -> None:
        """Replace the backend (unloading the old one) and load the new one."""
        self._put(Load(backend))

    def generate(self, request: ChatRequest) -> None:
        self._put(Generate(request))

    def preview(self, request: ChatRequest) -> None:
        self._put(Preview(request))

    def call(self, function: Callable[[Backend | None], Any], reply: Callable[[Any], None]) -> None:
        """Run ``function(backend)`` on the engine thread; ``reply`` gets its result."""
        self._put(Call(function, reply))

    def cancel(self) -> None:
        """Stop the reply in flight (within one token) and drop queued replies."""
        with self._lock:
            for command in [self._current, *self._pending]:
                if isinstance(command, Generate):
                    command.cancel.set()
            backend = self.backend if self._current is not None else None
        if backend is not None:
            backend.cancel()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the reply in flight, unload, and end the engine thread.  A model still
        loading cannot be asked to stop: its process is ended at once.  Whatever has not
        stopped within ``timeout`` seconds is ended too."""
        self.cancel()
        with self._lock:
            current = self._current
        if isinstance(current, Load):
            _abort(current.backend)
        self._queue.put(None)
        if not self._started:
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            _abort(self.backend)
            self._thread.join(1.0)

    def _put(self, command: Command) -> None:
        with self._lock:
            self._pending.append(command)
        self._queue.put(command)

    # -- the engine thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            command = self._queue.get()
            if command is None:
                break
            with self._lock:
                self._pending.remove(command)
                self._current = command
            try:
                self._handle(command)
            except BaseException as exc:  # noqa: BLE001 - never let the thread die silently
                self._emit(Notice(f"engine error: {type(exc).__name__}: {exc}"))
            finally:
                with self._lock:
                    self._current = None
        if self.backend is not None:
            self.backend.unload()
            self.backend = None

    def _handle(self, command: Command) -> None:
        if isinstance(command, Load):
            self._load(command.backend)
        elif isinstance(command, Generate):
            self._generate(command.request, command.cancel)
        elif isinstance(command, Preview):
            try:
                self._emit(self._require_backend().preview(command.request))
            except VicunaError as exc:
                self._emit(ReplyFailed(command.request.request_id, exc))
        else:
            command.reply(command.function(self.backend))

    def _require_backend(self) -> Backend:
        if self.backend is None:
            raise GenerationError(
                "no model is loaded", "load one first (check --model-path or the settings pane)"
            )
        return self.backend

    def _load(self, backend: Backend) -> None:
        try:
            backend.check()
        except VicunaError as exc:  # refused before anything was unloaded
            kept = self.backend.loaded if self.backend is not None else None
            self._emit(LoadFailed(exc, kept))
            return
        if self.backend is not None:
            self.backend.unload()
            self.backend = None
            self._emit(Unloaded())

        def progress(stage: str, done: int, total: int) -> None:
            self._emit(LoadProgress(stage, done, total))

        try:
            info = backend.load(progress)
        except VicunaError as exc:
            self._emit(LoadFailed(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported as a failure event
            if self._debug:
                import traceback

                traceback.print_exc()
            self._emit(
                LoadFailed(
                    VicunaError(
                        f"loading failed: {type(exc).__name__}: {exc}",
                        "run with --debug for details",
                    )
                )
            )
            return
        self.backend = backend
        self._emit(ModelReady(info))

    def _generate(self, request: ChatRequest, cancel: threading.Event) -> None:
        partial: list[str] = []
        try:
            backend = self._require_backend()
            for event in backend.generate(request, cancel):
                if isinstance(event, ReplyDelta):
                    partial.append(event.text)
                self._emit(event)
        except VicunaError as exc:
            self._emit(ReplyFailed(request.request_id, exc, "".join(partial)))
        except Exception as exc:  # noqa: BLE001 - reported as a failure event
            if self._debug:
                import traceback

                traceback.print_exc()
            self._emit(
                ReplyFailed(
                    request.request_id,
                    GenerationError(
                        f"generation failed: {type(exc).__name__}: {exc}",
                        "run with --debug for details",
                    ),
                    "".join(partial),
                )
            )


def _abort(backend: Backend | None) -> None:
    """End a backend's model at once where it can be (a model in its own process)."""
    if backend is not None:
        backend.abort()
