"""The interface every backend offers the engine thread (local model or remote server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from vicuna_tui.engine.events import ChatRequest, EngineEvent, ModelInfo, PromptPreview
from vicuna_tui.engine.progress import Progress
from vicuna_tui.errors import GenerationError, VicunaError


class Backend(Protocol):
    kind: str

    def check(self) -> None:
        """Refuse settings that cannot work, quickly and before anything is unloaded."""
        ...

    def load(self, progress: Progress | None = None) -> ModelInfo:
        """Get ready to generate (load weights, or connect); may take long."""
        ...

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[EngineEvent]:
        """ReplyStarted, then ReplyDelta..., then ReplyDone.  Stops soon after ``cancel``."""
        ...

    def preview(self, request: ChatRequest) -> PromptPreview:
        """The prompt the next turn would send."""
        ...

    def cancel(self) -> None:
        """Called from any thread: abort in-flight I/O at once (the event is set too)."""
        ...

    def abort(self) -> None:
        """Called from any thread when the front end quits: end the model at once,
        whatever it is doing (a load included), where it runs apart from us."""
        ...

    def memory_in_use(self) -> int | None:
        """Bytes of accelerator memory the model holds, or None (none, or not known)."""
        ...

    def unload(self) -> None: ...

    @property
    def loaded(self) -> ModelInfo | None:
        """The loaded model's ModelInfo; None before a load succeeds."""
        ...


class HoldsModel:
    """What every backend keeps of the model it runs: its ModelInfo, once loaded."""

    _info: ModelInfo | None = None

    def not_loaded(self) -> VicunaError:
        return GenerationError("no model is loaded", "wait for the model to load")

    def abort(self) -> None:
        """A model in this process ends with it: nothing to do."""

    def memory_in_use(self) -> int | None:
        return None

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise self.not_loaded()
        return self._info

    @property
    def loaded(self) -> ModelInfo | None:
        return self._info
