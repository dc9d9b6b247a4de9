"""Every message the TUI's widgets and the engine thread send, in one place."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from textual.message import Message

from vicuna_tui.engine.events import EngineEvent
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.store import StoreError

T = TypeVar("T")


class EngineMessage(Message):
    """An engine event, posted from the engine thread (``post_message`` is thread-safe)."""

    def __init__(self, event: EngineEvent) -> None:
        super().__init__()
        self.event = event


class SideMessage(Message):
    """An engine event from one side of the arena (0: the first model given)."""

    def __init__(self, side: int, event: EngineEvent) -> None:
        super().__init__()
        self.side = side
        self.event = event


class MemoryMeasured(Message):
    """How much memory the loaded model holds (``Backend.memory_in_use``), measured on
    the engine thread and posted from it; None where the backend cannot say."""

    def __init__(self, value: int | None) -> None:
        super().__init__()
        self.value = value


class PromptSubmitted(Message):
    """The user sent the text in the input."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ConversationChosen(Message):
    """A conversation was picked in the sidebar (a search hit names its message, to
    open the branch that holds it)."""

    def __init__(self, conversation_id: str, message_uid: str | None = None) -> None:
        super().__init__()
        self.conversation_id = conversation_id
        self.message_uid = message_uid


@dataclass(frozen=True)
class SettingEdit:
    """One edit in the settings pane's prompt and sampling: ``name`` is a sampling field
    of GenerationSettings, ``template`` or ``system_message``."""

    name: str
    value: float | int | str | None


class GenerationChanged(Message):
    """Sampling, template or system message changed in the settings pane."""

    def __init__(self, edit: SettingEdit) -> None:
        super().__init__()
        self.edit = edit


class KeepFlags(Message):
    """Keep this run's command-line settings in config.toml (the settings pane's
    button): a flag lasts for its run unless kept."""

    def __init__(self, values: dict[str, object]) -> None:
        super().__init__()
        self.values = values


@dataclass(frozen=True)
class LoadChoice:
    """What the settings pane's Reload asks for."""

    load: LoadSettings  # checked
    endpoint: str | None  # a server answers instead, at this address
    remote_model: str | None  # the server's model (None: the one it serves)
    shown: tuple[str, ...]  # the LoadSettings fields the pane edits (to remember)


class ReloadRequested(Message):
    """Reload the model (or reconnect) as chosen in the settings pane."""

    def __init__(self, choice: LoadChoice) -> None:
        super().__init__()
        self.choice = choice


class StoreResult(Message, Generic[T]):
    """A store call's answer, posted to the widget that asked: ``value`` is what the
    call returned (typed: ``StoreResult[Listing]``, ``StoreResult[Results]``…) and
    ``then`` the caller's own handler for it, which ``handle()`` runs there, on the UI
    thread.  It does not bubble: a widget gone meanwhile drops its answers."""

    bubble = False

    def __init__(self, value: T, then: Callable[[T], object]) -> None:
        super().__init__()
        self.value = value
        self.then = then

    async def handle(self) -> None:
        result = self.then(self.value)
        if inspect.isawaitable(result):
            await result


class StoreFailed(Message):
    """A store call failed (reading or writing the database; it may be damaged).
    ``then`` is the caller's handler for it, where it gave one; else the widget that
    asked, or the first widget above it that handles failures, shows it its own way."""

    def __init__(self, error: StoreError, then: Callable[[StoreError], object] | None) -> None:
        super().__init__()
        self.error = error
        self.then = then

    def handle(self) -> bool:
        """Run the caller's handler; False when it gave none."""
        if self.then is None:
            return False
        self.then(self.error)
        return True
