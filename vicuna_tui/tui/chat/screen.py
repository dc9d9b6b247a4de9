"""The main screen: conversations, transcript, input, settings and status.

The screen lays out its widgets, turns keys into calls on its parts, and routes
messages (the engine's events, the store's results, the widgets' messages) to the
part that handles them.  It never calls the model itself.  Who owns what:

- ``ModelController`` (model_controller): the ``ModelState``; loading, reloading,
  choosing a server model or a GGUF, the settings pane's edits;
- ``ChatReplies`` (replies): the reply being written (its ``ReplyStream``), sending,
  regenerating, stopping;
- ``EditMode`` (editing): the message being edited;
- ``BranchNavigator`` (branches): stepping between branches, editing, deleting turns;
- ``ReplayDriver`` (replay_driver): the replay in progress;
- ``ChatLibrary`` (library): new, open, rename, delete, export;
- ``Clipboard`` (clipboard): copying;
- ``TokenView`` (tokens): whether replies show as their tokens; a branch from a token;
- ``DropForecast`` (forecast): whether sending the draft will drop old turns.

The conversation itself is the ``ChatSession``'s.  Each part is made here and given
what it needs: the ``ChatView`` (the session, this screen and its widgets), the
``ChatHost`` (the app's engine and store) where it uses them, and the parts it calls.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Input, Markdown, Static, TextArea

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
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.keymap import ACTIONS
from vicuna_tui.session import ChatSession
from vicuna_tui.tui.chat.branches import BranchNavigator
from vicuna_tui.tui.chat.clipboard import Clipboard
from vicuna_tui.tui.chat.editing import EditMode
from vicuna_tui.tui.chat.forecast import DropForecast
from vicuna_tui.tui.chat.host import ChatHost
from vicuna_tui.tui.chat.library import ChatLibrary
from vicuna_tui.tui.chat.model_controller import ModelController
from vicuna_tui.tui.chat.replay_driver import ReplayDriver
from vicuna_tui.tui.chat.replies import ChatReplies
from vicuna_tui.tui.chat.tokens import TokenView
from vicuna_tui.tui.chat.view import ChatView
from vicuna_tui.tui.messages import (
    ConversationChosen,
    EngineMessage,
    GenerationChanged,
    KeepFlags,
    MemoryMeasured,
    PromptSubmitted,
    ReloadRequested,
    StoreFailed,
    StoreResult,
)
from vicuna_tui.tui.model_state import ModelState
from vicuna_tui.tui.screens.dialogs import PromptViewScreen
from vicuna_tui.tui.screens.help import HelpScreen
from vicuna_tui.tui.widgets.composer import PromptInput
from vicuna_tui.tui.widgets.settings import SettingsPane
from vicuna_tui.tui.widgets.sidebar import Sidebar
from vicuna_tui.tui.widgets.status import StatusBar
from vicuna_tui.tui.widgets.transcript import MessageView, Transcript


class ChatScreen(Screen[None]):
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

    # What is loaded, as published by the ModelController (its owner) for the status
    # bar and the settings pane to watch.
    model: var[ModelState] = var(ModelState(LoadSettings()), always_update=True)

    def __init__(
        self,
        session: ChatSession,
        host: ChatHost,
        *,
        keys: dict[str, str],
        conversation_id: str | None = None,
        replay: bool = False,
        reuse_seeds: bool = True,
    ) -> None:
        super().__init__()
        self.session = session
        self.keys = keys
        self._host = host
        self._opening = conversation_id
        self._replay_on_start = replay
        self._reuse_seeds = reuse_seeds
        # The widgets, made now so that the parts can be given them.
        self.sidebar = Sidebar(host.store_calls, not_saving=session.not_saving, id="sidebar")
        self.transcript = Transcript(id="transcript")
        self.prompt = PromptInput(
            id="prompt",
            send_key=keys.get("send", "enter"),
            newline_keys=(keys.get("newline", "ctrl+j"), "shift+enter"),
        )
        self.settings = SettingsPane(
            session.load,
            session.generation,
            session.template,
            session.system_message,
            remote=host.resolved.remote,
            flags=session.pinned,
            id="settings",
        )
        self.status = StatusBar(id="status", memory_probe=host.memory_probe)
        # The parts, each given what it needs.
        view = ChatView(
            session,
            host.store_calls,
            self,
            self.transcript,
            self.prompt,
            self.status,
            self.sidebar,
            self.settings,
        )
        self.models = ModelController(view, host, self._publish_model)
        self.editing = EditMode(self.prompt)
        self.replies = ChatReplies(view, host, self.models, self.editing, self.chat_changed)
        self.branches = BranchNavigator(view, self.replies, self.editing, self.chat_changed)
        self.replay = ReplayDriver(view, self.replies, self.branches)
        self.chats = ChatLibrary(view, self.replies, self.branches, self.editing)
        self.clipboard = Clipboard(view)
        self.tokens = TokenView(view, self.replies)
        # Whether sending the draft will drop old turns (a preview, asked while typing).
        self.forecast = DropForecast(
            session,
            host.engine.preview,
            self.status.set_forecast,
            self.set_timer,
        )

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield self.sidebar
            with Vertical(id="chat"):
                yield self.transcript
                yield self.prompt
            yield self.settings
        yield self.status
        # The footer's place: the Footer itself (some 70 ms to build and draw) and the
        # chat list's widgets come just after the first frame (_after_first_frame).
        yield Static(id="footer-slot")

    async def on_mount(self) -> None:
        self.model = self.models.state
        self.prompt.focus()
        if self._opening:
            await self.chats.open(self._opening)
        self.status.set_state("loading the model…")
        self._show_saving()
        if self.session.not_saving and not self.session.saving:
            hint = self._host.not_saving_hint
            self.notify(
                f"Not saving this chat: {self.session.not_saving}" + (f"\n{hint}" if hint else ""),
                severity="warning",
                timeout=12,
            )
        self.transcript.set_welcome(self.models.loading_text())
        # Start the engine once the first full frame is on screen (Textual lays a new
        # screen out in two passes): importing torch on the engine thread holds the GIL
        # for long stretches and would hold that frame back by a quarter of a second.
        self.call_after_refresh(self.call_after_refresh, self._after_first_frame)

    async def _after_first_frame(self) -> None:
        self.models.start()
        await self.sidebar.build()
        with self.app.batch_update():  # one frame: the footer takes its slot's place
            await self.mount(Footer(), before="#footer-slot")
            await self.query_one("#footer-slot").remove()
        if self._replay_on_start:
            self.replay.start(self._reuse_seeds)

    def _publish_model(self, state: ModelState) -> None:
        self.model = state

    @property
    def model_ready(self) -> bool:
        return self.models.ready

    def chat_changed(self) -> None:
        """The chat changed (a reply, a branch, a deletion): what shows it follows."""
        self.branches.mark()
        self.status.set_context(self.session.context_used())
        self.draft_changed()
        if self.session.conversation is not None:
            self.sidebar.current_id = self.session.conversation.id
        self.sidebar.reload()
        self._show_saving()

    def draft_changed(self) -> None:
        """Ask again whether sending the draft drops old turns (only while idle)."""
        idle = self.models.ready and not self.replies.stream.active
        if idle and not self.models.remote:
            self.forecast.draft_changed(self.prompt.text)
        else:
            self.forecast.clear()

    def _show_saving(self) -> None:
        if self.status.not_saving != self.session.not_saving:
            self.status.not_saving = self.session.not_saving
            self.status.refresh_text()

    # -- messages, routed to the part that handles them ----------------------------------

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if isinstance(event.text_area, PromptInput):
            self.draft_changed()

    @on(PromptSubmitted)
    async def _submitted(self, message: PromptSubmitted) -> None:
        await self.replies.submit(message.text)

    @on(ConversationChosen)
    async def _chosen(self, message: ConversationChosen) -> None:
        await self.chats.open(message.conversation_id, message.message_uid)

    @on(GenerationChanged)
    def _generation(self, message: GenerationChanged) -> None:
        self.models.generation_edited(message.edit)

    @on(ReloadRequested)
    async def _reload(self, message: ReloadRequested) -> None:
        await self.replies.stop("Stopped the reply (it is kept) to reload the model.")
        self.models.reload(message.choice)

    @on(KeepFlags)
    def _keep_flags(self, message: KeepFlags) -> None:
        self.models.keep_flags(message.values)

    def on_message_view_typed(self, message: MessageView.Typed) -> None:
        """Typing while a message has focus: the text goes to the input."""
        if not self.prompt.disabled:
            self.prompt.focus()
            self.prompt.insert(message.character)

    async def on_message_view_branch_from_token(self, message: MessageView.BranchFromToken) -> None:
        await self.tokens.branch(message)

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        event.stop()
        self.notify(f"Link: {event.href}", title="Not opened", timeout=8)

    async def on_store_result(self, message: StoreResult[Any]) -> None:
        """A store call finished: run what was to follow, here on the UI thread."""
        await message.handle()
        self._after_store_call()

    @on(StoreFailed)
    def _store_failed(self, message: StoreFailed) -> None:
        """A failure from a call made here or by a widget in this screen: the caller's
        handler where it gave one; a damaged database stops saving; else a toast."""
        message.stop()
        if message.handle():
            self._after_store_call()
        elif message.error.kind == "damaged":
            self.session.stop_saving(message.error)
            self._show_saving()
        else:
            self.notify(message.error.message, severity="error")

    def _after_store_call(self) -> None:
        conv = self.session.conversation
        if conv is not None and self.sidebar.current_id != conv.id:
            # The chat was saved again under a new id (deleted by another program).
            self.sidebar.current_id = conv.id
            self.sidebar.reload()
        self._show_saving()

    def on_memory_measured(self, message: MemoryMeasured) -> None:
        self.models.memory_measured(message.value)

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

    async def handle_event(self, event: EngineEvent) -> None:
        # Reply text does not come this way: the ReplyStream takes it a frame at a time.
        if isinstance(event, LoadProgress):
            self.status.progress(event.stage, event.done, event.total)
        elif isinstance(event, ModelReady):
            self.models.model_ready(event)
            self.replies.model_named(event.info.name)
        elif isinstance(event, LoadFailed):
            self.models.load_failed(event)
        elif isinstance(event, PrefillProgress):
            self.replies.reading(event)
        elif isinstance(event, ReplyStarted):
            self.replies.began(event)
        elif isinstance(event, ReplyDone):
            if await self.replies.done(event):  # a replay sends its next turn
                await self.replay.reply_finished(event.text, event.finish_reason == "cancelled")
        elif isinstance(event, ReplyFailed):
            await self.replies.failed(event)
        elif isinstance(event, PromptPreview):
            if not self.forecast.answered(event):
                self.app.push_screen(
                    PromptViewScreen(
                        self.session.resolved_template,
                        event.text,
                        event.tokens,
                        event.dropped_turns,
                    )
                )
        elif isinstance(event, Notice):
            self.notify(event.text, severity="warning")

    # -- keys ------------------------------------------------------------------------------

    def action_send(self) -> None:
        if self.prompt.text.strip():
            self.post_message(PromptSubmitted(self.prompt.text))

    def action_newline(self) -> None:
        self.prompt.insert("\n")
        self.prompt.focus()

    def action_cancel(self) -> None:
        self.replies.cancel()

    async def action_regenerate(self) -> None:
        await self.replies.regenerate()

    def action_edit_last(self) -> None:
        self.replies.edit_last()

    def action_edit_message(self) -> None:
        self.branches.edit_message()

    async def action_branch_previous(self) -> None:
        await self.branches.step(-1)

    async def action_branch_next(self) -> None:
        await self.branches.step(1)

    async def action_delete_turn(self) -> None:
        await self.branches.delete_turn()

    def action_replay_chat(self) -> None:
        self.replay.start(self._reuse_seeds)

    async def action_token_view(self) -> None:
        await self.tokens.toggle()

    def action_show_prompt(self) -> None:
        if not self.models.ready:
            self.notify("The prompt view needs the model's tokenizer: wait for it to load.")
            return
        self._host.engine.preview(self.session.preview_request(self.prompt.text))

    async def action_new_chat(self) -> None:
        await self.chats.new_chat()

    def action_rename_chat(self) -> None:
        self.chats.rename()

    def action_delete_chat(self) -> None:
        self.chats.delete()

    def action_export_chat(self) -> None:
        self.chats.export()

    def action_copy_last(self) -> None:
        self.clipboard.last_reply()

    def action_copy_message(self) -> None:
        self.clipboard.message()

    def action_copy_code(self) -> None:
        self.clipboard.code()

    async def action_search(self) -> None:
        self.sidebar.display = True
        await self.sidebar.focus_filter()

    async def action_toggle_settings(self) -> None:
        pane = self.settings
        if pane.display:
            pane.display = False
        else:
            await pane.reveal()
        if pane.display:
            enabled = [field for field in pane.query(Input) if not field.disabled]
            if enabled:
                # Scrolled into view once laid out: fields built just now have no place
                # yet, and focus's own scroll would then move the pane by chance.
                enabled[0].focus(scroll_visible=False)
                self.call_after_refresh(enabled[0].scroll_visible, animate=False)
        else:
            self.prompt.focus()

    def action_toggle_sidebar(self) -> None:
        self.sidebar.display = not self.sidebar.display

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.keys))

    async def action_quit(self) -> None:
        await self.app.action_quit()
