"""What the chat screen needs from the app that hosts it, and nothing more.

The app implements this Protocol; the screen never imports the app, so the two do not
import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from vicuna_tui.engine.events import ChatRequest
from vicuna_tui.engine.settings import LoadSettings, RemoteSettings
from vicuna_tui.runtime import Resolved
from vicuna_tui.tui.reply_inbox import ReplyInbox
from vicuna_tui.tui.store_calls import StoreCalls


class EngineControl(Protocol):
    """The engine thread, as the screen drives it."""

    def generate(self, request: ChatRequest) -> None: ...

    def preview(self, request: ChatRequest) -> None: ...

    def cancel(self) -> None: ...


class ChatHost(Protocol):
    resolved: Resolved
    store_calls: StoreCalls | None  # None: not saving
    not_saving_hint: str | None
    memory_probe: Callable[[], int | tuple[int, int]] | None

    @property
    def engine(self) -> EngineControl: ...

    @property
    def replies(self) -> ReplyInbox: ...

    def load_model(self, load: LoadSettings, remote: RemoteSettings | None = None) -> None: ...

    def measure_memory(self) -> None:
        """Ask the engine thread what the model holds; a MemoryMeasured answers."""

    def save_settings(self, values: dict[str, Any]) -> None: ...
