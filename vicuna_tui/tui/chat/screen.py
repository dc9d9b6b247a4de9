"""The main screen: conversations, transcript, input, settings and status.

It turns key presses into ChatSession changes and engine requests, and engine events
(arriving as messages from the engine thread) into widget updates.  It never calls
the model itself.  Its parts are the classes it is built on (see ``base``).
"""

from __future__ import annotations

import inspect

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, Static, TextArea

from vicuna_tui.engine.events import (
    EngineEvent,
    LoadFailed,
    LoadProgress,
    ModelReady,
    Notice,
    PrefillProgress,
    PromptPreview,
    ReplyDone,
    ReplyFailed,
    ReplyStarted,
)
from vicuna_tui.keymap import ACTIONS
from vicuna_tui.tui.chat.actions import ChatActions
from vicuna_tui.tui.messages import EngineMessage, StoreReply
from vicuna_tui.tui.model_state import ModelState
from vicuna_tui.tui.screens.dialogs import PromptViewScreen
from vicuna_tui.tui.widgets.composer import PromptInput
from vicuna_tui.tui.widgets.settings import SettingsPane
from vicuna_tui.tui.widgets.sidebar import Sidebar
from vicuna_tui.tui.widgets.status import StatusBar, progress_text
from vicuna_tui.tui.widgets.transcript import Transcript


class ChatScreen(ChatActions):
    BINDINGS = [
        Binding(
            a.key,
            a.action,
            a.short or a.description,
            show=a.show,
            priority=a.priority,
            id=a.action,
            tooltip=a.description,
        )
        for a in ACTIONS
        if a.binding
    ]

    def compose(self) -> ComposeResult:
        session = self.session
        with Horizontal(id="main"):
            yield Sidebar(self.host.store_calls, not_saving=session.not_saving, id="sidebar")
            with Vertical(id="chat"):
                yield Transcript(id="transcript")
                yield PromptInput(
                    id="prompt",
                    send_key=self.keys.get("send", "enter"),
                    newline_keys=(self.keys.get("newline", "ctrl+j"), "shift+enter"),
                )
            yield SettingsPane(
                session.load,
                session.generation,
                session.template,
                session.system_message,
                remote=self.host.resolved.remote,
                flags=session.pinned,
                id="settings",
            )
        yield StatusBar(id="status", memory_probe=self.host.memory_probe)
        # The footer's place: the Footer itself (some 70 ms to build and draw) and the
        # chat list's widgets come just after the first frame (_after_first_frame).
        yield Static(id="footer-slot")

    async def on_mount(self) -> None:
        self.model = ModelState(self.session.load, self.host.resolved.remote)
        self.prompt.focus()
        if self.initial_conversation:
            await self.open_conversation(self.initial_conversation)
        self.status.set_state("loading the model…")
        self._show_saving()
        if self.session.not_saving and not self.session.saving:
            self.notify(
                f"Not saving this chat: {self.session.not_saving}"
                + (f"\n{self.host.not_saving_hint}" if self.host.not_saving_hint else ""),
                severity="warning",
                timeout=12,
            )
        self.transcript.set_welcome(self._loading_text())
        # Start the engine once the first full frame is on screen (Textual lays a new
        # screen out in two passes): importing torch on the engine thread holds the GIL
        # for long stretches and would hold that frame back by a quarter of a second.
        self.call_after_refresh(self.call_after_refresh, self._after_first_frame)

    async def _after_first_frame(self) -> None:
        self._start_engine()
        await self.sidebar.build()
        with self.app.batch_update():  # one frame: the footer takes its slot's place
            await self.mount(Footer(), before="#footer-slot")
            await self.query_one("#footer-slot").remove()
        if self.replay_on_start:
            await self.start_replay(self.reuse_seeds)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if isinstance(event.text_area, PromptInput):
            self.draft_changed()

    async def on_store_reply(self, message: StoreReply) -> None:
        """A store call finished: run what was to follow, here on the UI thread."""
        result = message.callback()
        if inspect.isawaitable(result):
            await result
        conv = self.session.conversation
        if conv is not None and self.sidebar.current_id != conv.id:
            # The chat was saved again under a new id (deleted by another program).
            self.sidebar.current_id = conv.id
            self.sidebar.reload()
        self._show_saving()

    async def on_engine_message(self, message: EngineMessage) -> None:
        # The engine thread posts until it has stopped; while the app closes (quit, a
        # signal) this screen's widgets are already going, and the event is moot.
        if not self.is_attached:
            return
        try:
            await self.handle_event(message.event)
        except NoMatches:
            if self.is_attached and not getattr(self.app, "_exit", False):
                raise

    def _reply_begins(self, event: ReplyStarted | PrefillProgress) -> None:
        """The reply streaming now has started, or is reading its prompt in."""
        if not self.streaming or event.request_id != self.streaming.request_id:
            return
        if isinstance(event, PrefillProgress):  # a long prompt: how far, and how to stop
            self.streaming.reading = True
            stage = progress_text("reading the chat, tokens", event.done, event.total)
            self.streaming.view.set_meta(f"{stage} · Esc stops")  # where the reply will be
            self.status.set_state(f"reading {event.done * 100 // event.total}%")
            return
        self.status.set_state("writing…")
        if event.dropped_turns:
            self.notify(
                f"{event.dropped_turns} old turn(s) left out to fit the model's context",
                severity="warning",
            )

    async def handle_event(self, event: EngineEvent) -> None:
        # Reply text does not come this way: _draw_reply takes it a frame at a time.
        if isinstance(event, LoadProgress):
            self.status.progress(event.stage, event.done, event.total)
        elif isinstance(event, ModelReady):
            self._model_ready(event)
        elif isinstance(event, LoadFailed):
            self._load_failed(event)
        elif isinstance(event, (ReplyStarted, PrefillProgress)):
            self._reply_begins(event)
        elif isinstance(event, ReplyDone):
            await self._finish(event)
        elif isinstance(event, ReplyFailed):
            await self._failed(event)
        elif isinstance(event, PromptPreview):
            if self.forecast.answered(event):
                return
            self.app.push_screen(
                PromptViewScreen(
                    self.session.resolved_template, event.text, event.tokens, event.dropped_turns
                )
            )
        elif isinstance(event, Notice):
            self.notify(event.text, severity="warning")
