"""The chat screen's state and widgets, shared by the parts in this package.

The screen is built in layers, each a class over the one before:
``ChatScreenBase`` (state, widgets, the host) → ``ReplyStream`` (sending and the
streamed reply) → ``ModelControl`` (loading, reloading, settings) → ``ReplayControl``
(replaying a chat) → ``ChatActions`` (chats, clipboard, panes) → ``ChatScreen``
(layout and event dispatch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from textual.reactive import var
from textual.screen import Screen

from vicuna_tui.engine.settings import LoadSettings, RemoteSettings
from vicuna_tui.session import ChatSession
from vicuna_tui.tui.chat.forecast import DropForecast
from vicuna_tui.tui.chat.host import ChatHost
from vicuna_tui.tui.model_state import ModelState
from vicuna_tui.tui.pacing import FramePacer
from vicuna_tui.tui.widgets.composer import PromptInput
from vicuna_tui.tui.widgets.settings import SettingsPane
from vicuna_tui.tui.widgets.sidebar import Sidebar
from vicuna_tui.tui.widgets.status import StatusBar
from vicuna_tui.tui.widgets.transcript import MessageView, Transcript


@dataclass
class Streaming:
    """The reply being written: its request and the view it streams into."""

    request_id: int
    view: MessageView
    reading: bool = False  # the status shows the prompt being read in (a long prefill)


class ChatScreenBase(Screen[None]):
    # What is loaded: its one owner.  The status bar and the settings pane watch it.
    model: var[ModelState] = var(ModelState(LoadSettings()), always_update=True)

    def __init__(
        self,
        session: ChatSession,
        *,
        keys: dict[str, str],
        conversation_id: str | None = None,
        replay: bool = False,
        reuse_seeds: bool = True,
    ) -> None:
        super().__init__()
        self.session = session
        self.keys = keys
        self.initial_conversation = conversation_id
        self.replay_on_start = replay
        self.reuse_seeds = reuse_seeds
        self.streaming: Streaming | None = None
        self.editing = False
        self.editing_at: int | None = None  # the user message being edited
        self.model = ModelState(session.load)
        self._engine_started = False
        self._pacer = FramePacer()
        # Whether sending the draft will drop old turns (a preview, asked while typing).
        self.forecast = DropForecast(
            session,
            lambda request: self.host.engine.preview(request),
            lambda dropped: self.status.set_forecast(dropped),
            lambda delay, callback: self.set_timer(delay, callback),
        )

    def watch_model(self, state: ModelState) -> None:
        self.session.load = state.load  # the conversation records what it was made with

    @property
    def model_ready(self) -> bool:
        return self.model.ready

    @property
    def remote(self) -> RemoteSettings | None:
        return self.model.remote

    @property
    def host(self) -> ChatHost:
        return cast(ChatHost, self.app)

    @property
    def transcript(self) -> Transcript:
        return self.query_one(Transcript)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def sidebar(self) -> Sidebar:
        return self.query_one(Sidebar)

    @property
    def settings(self) -> SettingsPane:
        return self.query_one(SettingsPane)

    def busy_writing(self, *, first: bool = True) -> bool:
        """True (and says so) while a reply is being written: Esc stops it (``first``,
        before what was asked can be done)."""
        if self.streaming is None:
            return False
        when = " first" if first else ""
        self.notify(f"A reply is being written: Esc stops it{when}.", severity="warning")
        return True

    def _start_engine(self) -> None:
        """Load the model, unless that has begun (a prompt sent before the first frame)."""
        if not self._engine_started:
            self._engine_started = True
            self.host.load_model(self.session.load, self.remote)

    def _probe_memory(self) -> None:
        self.host.engine_call(
            "memory", lambda backend: backend.memory_in_use() if backend is not None else None
        )

    def mark_branches(self) -> None:
        """Put ``‹ which/count ›`` on each message that has siblings."""
        views = self.transcript.views
        for index in range(min(len(views), len(self.session.messages))):
            views[index].set_branch(*self.session.branch_at(index))

    EDIT_TITLE = "✎ editing message {n}: Enter resends it as a new branch · Esc cancels"

    def begin_edit(self, index: int, text: str) -> None:
        """Edit mode: marked on the prompt (its colour and its title) until it ends."""
        self.editing = True
        self.editing_at = index
        self.prompt.add_class("editing")
        self.prompt.border_title = self.EDIT_TITLE.format(n=index + 1)
        self.prompt.set_text(text)
        self.prompt.focus()

    def end_edit(self) -> None:
        self.editing = False
        self.editing_at = None
        self.prompt.remove_class("editing")
        self.prompt.border_title = None

    def _after_change(self) -> None:
        self.mark_branches()
        self.status.set_context(self.session.context_used())
        self.draft_changed()
        if self.session.conversation is not None:
            self.sidebar.current_id = self.session.conversation.id
        self.sidebar.reload()
        self._show_saving()

    def draft_changed(self) -> None:
        """Ask again whether sending the draft drops old turns (only while idle)."""
        ready = self.model_ready and self.streaming is None and not self.model.remote
        if ready:
            self.forecast.draft_changed(self.prompt.text)
        else:
            self.forecast.clear()

    def _show_saving(self) -> None:
        if self.status.not_saving != self.session.not_saving:
            self.status.not_saving = self.session.not_saving
            self.status.refresh_text()
