"""Every message the TUI's widgets and the engine thread send, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.message import Message

from vicuna_tui.engine.events import EngineEvent
from vicuna_tui.store import StoreError


class EngineMessage(Message):
    """An engine event, posted from the engine thread (``post_message`` is thread-safe)."""

    def __init__(self, event: EngineEvent) -> None:
        super().__init__()
        self.event = event


class EngineCallResult(Message):
    """The result of ``EngineThread.call``, posted from the engine thread."""

    def __init__(self, tag: str, value: Any) -> None:
        super().__init__()
        self.tag = tag
        self.value = value


class PromptSubmitted(Message):
    """The user sent the text in the input."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ConversationChosen(Message):
    """A conversation was picked in the sidebar."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__()
        self.conversation_id = conversation_id


class GenerationChanged(Message):
    """Sampling, template or system message changed in the settings pane."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__()
        self.values = values


class ReloadRequested(Message):
    """Load settings changed in the settings pane; reload the model with them."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__()
        self.values = values


class StoreReply(Message):
    """What a store call brought back: ``callback`` runs on the UI thread, where the
    widget that asked handles it (it does not bubble further)."""

    bubble = False

    def __init__(self, callback: Callable[[], object]) -> None:
        super().__init__()
        self.callback = callback


class StoreFailed(Message):
    """Reading the conversation database failed (it may be damaged)."""

    def __init__(self, error: StoreError) -> None:
        super().__init__()
        self.error = error
