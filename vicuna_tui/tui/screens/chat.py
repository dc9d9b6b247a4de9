"""The main screen: conversations, transcript, input, settings and status.

It turns key presses into ChatSession changes and engine requests, and engine events
(arriving as messages from the engine thread) into widget updates.  It never calls
the model itself.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Markdown

from vicuna_tui import replay as replay_mod
from vicuna_tui.chat import ChatSession
from vicuna_tui.engine.errors import ModelProcessLost, SettingsError, VicunaError
from vicuna_tui.engine.events import (
    EngineEvent,
    LoadFailed,
    LoadProgress,
    ModelReady,
    Notice,
    PromptPreview,
    ReplyDone,
    ReplyFailed,
    ReplyStarted,
)
from vicuna_tui.engine.remote import ModelChoiceError
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings, RemoteSettings
from vicuna_tui.engine.sources import GGUFChoiceError
from vicuna_tui.keymap import ACTIONS
from vicuna_tui.store import Conversation, StoreError
from vicuna_tui.tui.messages import (
    ConversationChosen,
    EngineCallResult,
    EngineMessage,
    GenerationChanged,
    PromptSubmitted,
    ReloadRequested,
    StoreFailed,
)
from vicuna_tui.tui.pacing import FramePacer
from vicuna_tui.tui.screens.dialogs import (
    ConfirmScreen,
    ErrorScreen,
    PickScreen,
    PromptViewScreen,
    TextInputScreen,
)
from vicuna_tui.tui.screens.help import HelpScreen
from vicuna_tui.tui.widgets.composer import PromptInput
from vicuna_tui.tui.widgets.settings import SettingsPane
from vicuna_tui.tui.widgets.sidebar import Sidebar
from vicuna_tui.tui.widgets.status import StatusBar
from vicuna_tui.tui.widgets.transcript import (
    MessageView,
    Transcript,
    code_blocks,
    describe_stats,
)

if TYPE_CHECKING:
    from vicuna_tui.tui.app import VicunaApp


@dataclass
class _Stream:
    request_id: int
    view: MessageView


@dataclass
class _Replay:
    original: Conversation
    plan: list[replay_mod.ReplayStep]
    base: GenerationSettings
    reuse_seeds: bool
    index: int = 0
    comparisons: list[replay_mod.Comparison] = field(default_factory=list)


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
        self.replaying: _Replay | None = None

        self.streaming: _Stream | None = None
        self.model_ready = False
        self.submitted = 0  # prompts handled so far (tests wait on it)
        self._previous_load: LoadSettings | None = None
        self._previous_remote: RemoteSettings | None = None
        self.remote: RemoteSettings | None = None
        self.editing = False

    @property
    def vicuna(self) -> VicunaApp:
        return self.app  # type: ignore[return-value]

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        session = self.session
        with Horizontal(id="main"):
            yield Sidebar(session.store, not_saving=session.not_saving, id="sidebar")
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
                remote=self.vicuna.resolved.remote,
                id="settings",
            )
        yield StatusBar(id="status", memory_probe=self.vicuna.memory_probe)
        yield Footer()

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

    async def on_mount(self) -> None:
        self._frame_timer: Timer | None = None
        self._pacer = FramePacer()
        self._engine_started = False
        self.remote = self.vicuna.resolved.remote
        self.settings.display = False
        self.prompt.focus()
        if self.initial_conversation:
            await self.open_conversation(self.initial_conversation)
        self.status.set_state("loading the model…")
        self._show_saving()
        if self.session.not_saving and self.session.store is None:
            self.notify(
                f"Not saving this chat: {self.session.not_saving}"
                + (f"\n{self.vicuna.not_saving_hint}" if self.vicuna.not_saving_hint else ""),
                severity="warning",
                timeout=12,
            )
        self.transcript.set_welcome(self._loading_text())
        # Start the engine once the first full frame is on screen (Textual lays a new
        # screen out in two passes): importing torch on the engine thread holds the GIL
        # for long stretches and would hold that frame back by a quarter of a second.
        self.call_after_refresh(self.call_after_refresh, self._after_first_frame)

    def _loading_text(self) -> str:
        if self.remote is not None:
            return f"Connecting to {self.remote.endpoint}…"
        from vicuna_tui.engine.backends import describe_plan

        return f"Loading {describe_plan(self.session.load)}…"

    async def _after_first_frame(self) -> None:
        self._start_engine()
        if self.replay_on_start:
            await self.start_replay(self.reuse_seeds)

    def _start_engine(self) -> None:
        """Load the model, unless that has begun (a prompt sent before the first frame)."""
        if not self._engine_started:
            self._engine_started = True
            self.vicuna.load_model(self.session.load, self.remote)

    # -- engine events -----------------------------------------------------------------

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

    def _pending_text(self) -> tuple[str, int]:
        """Reply text that arrived since the last frame (and in how many deltas)."""
        stream = self.streaming
        deltas = [
            d.text
            for d in self.vicuna.take_deltas()
            if stream is not None and d.request_id == stream.request_id
        ]
        return "".join(deltas), len(deltas)

    async def _draw_reply(self) -> None:
        """A frame of the streamed reply: everything that arrived since the last one.

        Runs a few times a second while a reply streams (FramePacer).  Each update costs
        the same whether it carries one token or fifty, so the UI's share of the CPU
        does not grow with the model's speed.
        """
        self._frame_timer = None
        text, pieces = self._pending_text()
        if text and self.streaming is not None:
            await self.streaming.view.write(text, pieces)
        wait = self._pacer.next()
        if self.streaming is not None:
            self._frame_timer = self.set_timer(wait, self._draw_reply)

    def _stop_drawing(self) -> None:
        """Stop the frames and keep any text not drawn yet in the reply's text."""
        if self._frame_timer is not None:
            self._frame_timer.stop()
            self._frame_timer = None
        text, pieces = self._pending_text()
        if text and self.streaming is not None:
            self.streaming.view.add_text(text, pieces)

    def on_engine_call_result(self, message: EngineCallResult) -> None:
        if message.tag == "memory":
            self.status.gpu_memory = message.value
            self.status.refresh_text()

    def _probe_memory(self) -> None:
        self.vicuna.engine_call(
            "memory", lambda backend: getattr(backend, "memory_in_use", lambda: None)()
        )

    async def handle_event(self, event: EngineEvent) -> None:
        # Reply text does not come this way: _draw_reply takes it a frame at a time.
        if isinstance(event, LoadProgress):
            self.status.progress(event.stage, event.done, event.total)
        elif isinstance(event, ModelReady):
            self.model_ready = True
            self.session.set_model(event.info)
            self.status.loaded(event.info)
            self._probe_memory()
            self.settings.set_devices(self.vicuna.devices)
            if self.remote is not None and self.remote.model != event.info.name:
                self.remote = dataclasses.replace(self.remote, model=event.info.name)
            self.settings.set_loaded(self.session.load, self.remote, event.info.models)
            self.transcript.set_welcome(
                f"{event.info.describe()} is ready.\nFrom: {event.info.source}"
            )
            self.notify(
                f"{event.info.describe()} is ready; template {self.session.resolved_template}",
                title="Model loaded",
                timeout=4,
            )
            for notice in event.info.notices:
                self.notify(notice, severity="warning", timeout=8)
            if self.streaming is not None:  # sent while loading: now we know who answers
                self.streaming.view.set_label(f"Assistant · {event.info.name}")
                self.status.set_state("writing…")
        elif isinstance(event, LoadFailed):
            self.transcript.set_welcome(f"No model is loaded: {event.error.message}")
            if event.kept is not None:  # refused before the current model was unloaded
                if self._previous_load is not None:
                    self.session.load = self._previous_load
                    self.remote = self._previous_remote
                self.model_ready = True
                self.status.loaded(event.kept)
                self.settings.set_loaded(self.session.load, self.remote, event.kept.models)
                title = f"The model was not changed: still using {event.kept.name}"
            else:
                self.model_ready = False
                self.status.failed(event.error.message)
                self.settings.set_unloaded()
                title = "The model did not load"
                if isinstance(event.error, ModelChoiceError) and self.remote is not None:
                    self._choose_server_model(event.error.models)
                    return
                if isinstance(event.error, GGUFChoiceError) and self.remote is None:
                    self._choose_gguf_file(event.error.repo_id, event.error.names)
                    return
            hint = event.error.hint
            hint = f"{hint} (F3 opens the settings)" if hint else "F3 opens the settings"
            self.app.push_screen(ErrorScreen(title, event.error.message, hint))
        elif isinstance(event, ReplyStarted):
            if self.streaming and event.request_id == self.streaming.request_id:
                self.status.set_state("writing…")
                if event.dropped_turns:
                    self.notify(
                        f"{event.dropped_turns} old turn(s) left out to fit the model's context",
                        severity="warning",
                    )
        elif isinstance(event, ReplyDone):
            await self._finish(event)
        elif isinstance(event, ReplyFailed):
            await self._failed(event)
        elif isinstance(event, PromptPreview):
            self.app.push_screen(
                PromptViewScreen(
                    self.session.resolved_template, event.text, event.tokens, event.dropped_turns
                )
            )
        elif isinstance(event, Notice):
            self.notify(event.text, severity="warning")

    async def _finish(self, done: ReplyDone) -> None:
        stream = self.streaming
        if stream is None or stream.request_id != done.request_id:
            return
        self._stop_drawing()
        self.streaming = None
        message = self.session.record_reply(done.text, done.finish_reason, done.stats)
        await stream.view.finish(done.text, describe_stats(message))
        stats = done.stats
        self.status.set_state("")
        self.status.reply_stats(
            context_used=stats.prompt_tokens + stats.new_tokens,
            tokens_per_second=stats.tokens_per_second,
            ttft=stats.time_to_first_token,
            dropped=stats.dropped_turns,
        )
        self._probe_memory()
        self._after_change()
        if self.replaying is not None:
            await self._replay_next(done.text, stopped=done.finish_reason == "cancelled")

    async def _failed(self, failed: ReplyFailed) -> None:
        stream = self.streaming
        if stream is None or stream.request_id != failed.request_id:
            return
        self._stop_drawing()
        self.streaming = None
        self.status.set_state("")
        if failed.partial_text:
            message = self.session.record_failure(failed.partial_text)
            await stream.view.finish(
                failed.partial_text, describe_stats(message) if message else "⚠ interrupted"
            )
        else:
            await stream.view.remove()
            text = self.session.drop_unanswered()
            if text is not None:
                await self.transcript.drop_last(1)
                if not self.prompt.text.strip():
                    self.prompt.set_text(text)
        self._after_change()
        if isinstance(failed.error, ModelProcessLost):  # nothing is loaded any more
            self.model_ready = False
            self.status.failed(failed.error.message)
            self.settings.set_unloaded()
        self.app.push_screen(
            ErrorScreen("The reply failed", failed.error.message, failed.error.hint)
        )

    @on(StoreFailed)
    def _store_failed(self, message: StoreFailed) -> None:
        if message.error.kind == "damaged":
            self.session.stop_saving(message.error)
            self._show_saving()
        else:
            self.notify(message.error.message, severity="error")

    def _after_change(self) -> None:
        if self.session.conversation is not None:
            self.sidebar.current_id = self.session.conversation.id
        self.sidebar.reload()
        self._show_saving()

    def _show_saving(self) -> None:
        if self.status.not_saving != self.session.not_saving:
            self.status.not_saving = self.session.not_saving
            self.status.refresh_text()

    # -- sending -----------------------------------------------------------------------

    @on(PromptSubmitted)
    async def _submitted(self, message: PromptSubmitted) -> None:
        self.submitted += 1
        if self.streaming is not None:
            self.notify("A reply is being written: Esc stops it.", severity="warning")
            return
        text = message.text
        self.prompt.remember(text)
        self.prompt.set_text("")
        if self.editing:
            self.editing = False
            self.prompt.remove_class("editing")
            request = self.session.edit_last(text)
            await self._drop_last_turn_views()
        else:
            request = self.session.add_user(text)
        if request is None:  # pragma: no cover - edit_last with no turn
            return
        await self.transcript.add("user", text)
        await self._start_reply(request)

    async def _start_reply(self, request: Any) -> None:
        info = self.session.model_info
        view = await self.transcript.add(
            "assistant", label=f"Assistant · {info.name}" if info else "Assistant"
        )
        view.start_stream()
        self.streaming = _Stream(request.request_id, view)
        self.vicuna.take_deltas()  # nothing from an earlier reply
        self._frame_timer = self.set_timer(self._pacer.start(), self._draw_reply)
        self._start_engine()  # the load is queued first, the prompt waits for it
        self.vicuna.engine.generate(request)
        self.status.set_state("writing…" if self.model_ready else "waiting for the model to load…")
        self._after_change()

    async def _drop_last_turn_views(self) -> None:
        views = self.transcript.views
        last_user = max((i for i, v in enumerate(views) if v.role == "user"), default=None)
        if last_user is not None:
            await self.transcript.drop_last(len(views) - last_user)

    async def stop_reply(self, reason: str = "") -> None:
        """Stop the reply in flight now, keeping its text (used before switching chats)."""
        stream = self.streaming
        if stream is None:
            return
        self._stop_drawing()
        self.streaming = None
        self.vicuna.engine.cancel()
        message = self.session.record_reply(stream.view.text, "cancelled")
        await stream.view.finish(stream.view.text, describe_stats(message))
        if reason:
            self.notify(reason)

    # -- actions -----------------------------------------------------------------------

    def action_send(self) -> None:
        if self.prompt.text.strip():
            self.post_message(PromptSubmitted(self.prompt.text))

    def action_newline(self) -> None:
        self.prompt.insert("\n")
        self.prompt.focus()

    def action_cancel(self) -> None:
        if self.streaming is not None:
            self.vicuna.engine.cancel()
        elif self.editing:
            self.editing = False
            self.prompt.remove_class("editing")
            self.prompt.set_text("")
        else:
            self.prompt.focus()

    async def action_regenerate(self) -> None:
        if self.streaming is not None:
            self.notify("A reply is being written: Esc stops it first.", severity="warning")
            return
        had_reply = bool(self.session.messages) and self.session.messages[-1].role == "assistant"
        request = self.session.regenerate()
        if request is None:
            self.notify("There is no message to answer again.")
            return
        if had_reply:
            await self.transcript.drop_last(1)
        await self._start_reply(request)

    def action_edit_last(self) -> None:
        if self.streaming is not None:
            self.notify("A reply is being written: Esc stops it first.", severity="warning")
            return
        text = self.session.last_user_text()
        if text is None:
            self.notify("There is no message to edit yet.")
            return
        self.editing = True
        self.prompt.add_class("editing")
        self.prompt.set_text(text)
        self.prompt.focus()
        self.notify("Editing your last message: Enter resends it, Esc leaves it as it was.")

    async def action_delete_turn(self) -> None:
        if self.streaming is not None:
            await self.stop_reply()
        if self.session.remove_last_turn():
            await self._drop_last_turn_views()
            self._after_change()
        else:
            self.notify("There is nothing to delete.")

    async def action_new_chat(self) -> None:
        await self.stop_reply("Stopped the reply (it is kept) to start a new chat.")
        self.session.new_chat()
        self.editing = False
        await self.transcript.show([])
        self.sidebar.current_id = None
        self.sidebar.reload()
        self.prompt.focus()

    @on(ConversationChosen)
    async def _chosen(self, message: ConversationChosen) -> None:
        await self.open_conversation(message.conversation_id)

    async def open_conversation(self, conversation_id: str) -> None:
        if self.session.conversation and self.session.conversation.id == conversation_id:
            self.prompt.focus()
            return
        await self.stop_reply("Stopped the reply (it is kept) to open another chat.")
        try:
            conv = self.session.open(conversation_id)
        except StoreError as exc:
            self.post_message(StoreFailed(exc))
            return
        except VicunaError as exc:
            self.notify(exc.message, severity="error")
            return
        # Each reply as stored: its own model, else the chat's, else not known (an
        # imported chat) -- never the model loaded now.
        label = f"Assistant · {conv.model_name or 'unknown model'}"
        await self.transcript.show(self.session.messages, model_label=label)
        self.settings.set_generation(
            self.session.generation, self.session.template, self.session.system_message
        )
        self.prompt.prompt_history = [m.content for m in self.session.messages if m.role == "user"]
        self.sidebar.current_id = conv.id
        self.sidebar.reload()
        self.prompt.focus()

    def action_rename_chat(self) -> None:
        conv = self.session.conversation
        if conv is None or self.session.store is None:
            self.notify("Send a message first: new chats are named after it.")
            return

        def done(title: str | None) -> None:
            if title is None or self.session.store is None:
                return
            try:
                self.session.store.rename(conv.id, title)
                conv.title = self.session.store.get(conv.id).title
            except VicunaError as exc:
                self.notify(exc.message, severity="error")
                return
            self.sidebar.reload()

        self.app.push_screen(TextInputScreen("Rename the chat", conv.title), done)

    def action_delete_chat(self) -> None:
        conv = self.session.conversation
        if conv is None or self.session.store is None:
            self.notify("This chat is not saved yet.")
            return

        async def done(yes: bool | None) -> None:
            if not yes or self.session.store is None:
                return
            await self.stop_reply()
            self.session.store.delete(conv.id)
            await self.action_new_chat()
            self.notify(f"Deleted “{conv.title}”.")

        self.app.push_screen(
            ConfirmScreen(f"Delete “{conv.title}” and its {len(self.session.messages)} messages?"),
            done,
        )

    def action_search(self) -> None:
        self.sidebar.display = True
        self.sidebar.focus_filter()

    def action_toggle_settings(self) -> None:
        pane = self.settings
        pane.display = not pane.display
        if pane.display:
            enabled = [field for field in pane.query(Input) if not field.disabled]
            if enabled:
                enabled[0].focus()

        else:
            self.prompt.focus()

    def action_toggle_sidebar(self) -> None:
        self.sidebar.display = not self.sidebar.display

    def action_show_prompt(self) -> None:
        if not self.model_ready:
            self.notify("The prompt view needs the model's tokenizer: wait for it to load.")
            return
        self.vicuna.engine.preview(self.session.preview_request(self.prompt.text))

    def _copy(self, text: str, what: str) -> None:
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied {what} ({len(text)} characters).")

    def action_copy_last(self) -> None:
        reply = self.session.last_reply()
        if reply is None:
            self.notify("There is no reply to copy yet.")
            return
        self._copy(reply.content, "the last reply")

    def action_copy_message(self) -> None:
        focused = self.app.focused
        if isinstance(focused, MessageView):
            self._copy(focused.text, "the message")
            return
        views = self.transcript.views
        if not views:
            self.notify("There is no message to copy yet.")
            return
        texts = [v.text for v in views]

        def picked(index: int | None) -> None:
            if index is not None:
                self._copy(texts[index], f"message {index + 1}")

        self.app.push_screen(PickScreen("Copy which message?", texts), picked)

    def action_copy_code(self) -> None:
        focused = self.app.focused
        if isinstance(focused, MessageView):
            source = focused.text
        else:
            reply = self.session.last_reply()
            source = reply.content if reply else ""
        blocks = code_blocks(source)
        if not blocks:
            self.notify("No code block in that message.")
            return
        if len(blocks) == 1:
            self._copy(blocks[0], "the code block")
            return

        def picked(index: int | None) -> None:
            if index is not None:
                self._copy(blocks[index], f"code block {index + 1}")

        self.app.push_screen(PickScreen("Copy which code block?", blocks), picked)

    def action_export_chat(self) -> None:
        conv = self.session.conversation
        if conv is None or self.session.store is None:
            self.notify("There is nothing saved to export yet.")
            return
        default = str(Path.home() / f"vicuna-chat-{conv.short_id}.md")

        def done(path_text: str | None) -> None:
            if not path_text or self.session.store is None:
                return
            from vicuna_tui import formats

            path = Path(path_text).expanduser()
            try:
                text = formats.export(self.session.store.get(conv.id), "md")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
            except (OSError, VicunaError) as exc:
                self.notify(f"Cannot write {path}: {exc}", severity="error")
                return
            self.notify(f"Exported to {path}")

        self.app.push_screen(TextInputScreen("Export the chat as Markdown to", default), done)

    async def action_replay_chat(self) -> None:
        await self.start_replay(self.reuse_seeds)

    async def start_replay(self, reuse_seeds: bool = True) -> None:
        """Send this chat's user turns again, as a new chat linked to it."""
        conv = self.session.conversation
        if conv is None or self.session.store is None:
            self.notify("Open a saved chat to replay it.")
            return
        if self.streaming is not None:
            self.notify("A reply is being written: Esc stops it first.", severity="warning")
            return
        original = self.session.store.get(conv.id)
        plan = replay_mod.steps(original)
        if not plan:
            self.notify("This chat has no messages to replay.")
            return
        self.replaying = _Replay(original, plan, self.session.generation, reuse_seeds)
        self.session.new_chat()
        self.session.replay_of = original.id
        await self.transcript.show([])
        self.notify(f"Replaying {len(plan)} turn(s) of “{original.title}”; Esc stops.")
        await self._replay_send()

    async def _replay_send(self) -> None:
        replay = self.replaying
        assert replay is not None
        step = replay.plan[replay.index]
        self.session.generation = replay_mod.settings_for(
            step, replay.base, reuse_seeds=replay.reuse_seeds
        )
        request = self.session.add_user(step.prompt)
        await self.transcript.add("user", step.prompt)
        await self._start_reply(request)

    async def _replay_next(self, text: str, *, stopped: bool) -> None:
        replay = self.replaying
        assert replay is not None
        step = replay.plan[replay.index]
        replay.comparisons.append(
            replay_mod.compare(step.prompt, step.old.content if step.old else None, text)
        )
        replay.index += 1
        if stopped:
            self._end_replay("stopped with Esc")
        elif replay.index < len(replay.plan):
            await self._replay_send()
        else:
            self._end_replay()

    def _end_replay(self, note: str = "") -> None:
        replay = self.replaying
        if replay is None:
            return
        self.replaying = None
        self.session.generation = replay.base
        if replay.comparisons:
            from vicuna_tui.tui.screens.replay import ReplayScreen

            self.app.push_screen(
                ReplayScreen(f"Replay of “{replay.original.title}”", replay.comparisons, note)
            )

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.keys))

    async def action_quit(self) -> None:
        await self.app.action_quit()

    def keep_partial_reply(self) -> None:
        """On quit: save the reply in progress as it stands, marked cancelled."""
        stream = self.streaming
        if stream is not None:
            self._stop_drawing()
            self.streaming = None
            self.session.record_reply(stream.view.text, "cancelled")
            self.vicuna.engine.cancel()

    # -- settings ------------------------------------------------------------------------

    @on(GenerationChanged)
    def _generation(self, message: GenerationChanged) -> None:
        values = dict(message.values)
        template = values.pop("template", None)
        sampling = {k: v for k, v in values.items() if k != "system_message"}
        generation = dataclasses.replace(self.session.generation, **sampling) if sampling else None
        if "system_message" in values:
            self.session.update_settings(
                generation=generation, template=template, system_message=values["system_message"]
            )
        else:
            self.session.update_settings(generation=generation, template=template)
        if template is not None:
            message.values["template"] = template
        self.vicuna.save_settings(message.values)

    def _choose_server_model(self, models: list[str]) -> None:
        """The server has several models and none was named: ask which one."""
        remote = self.remote
        assert remote is not None

        def chosen(index: int | None) -> None:
            if index is None:
                self.status.failed("no server model chosen (F3 to pick one)")
                return
            self.remote = dataclasses.replace(remote, model=models[index])
            self.status.set_state("connecting…")
            self.vicuna.load_model(self.session.load, self.remote)

        self.app.push_screen(
            PickScreen(f"{remote.endpoint} serves several models: which one?", models), chosen
        )

    def _choose_gguf_file(self, repo_id: str, names: list[str]) -> None:
        """A Hub repo of several GGUFs and no --gguf-file: ask which one to run."""

        def chosen(index: int | None) -> None:
            if index is None:
                self.status.failed(f"no file of {repo_id} chosen (F3, or --gguf-file)")
                return
            self.session.load = dataclasses.replace(self.session.load, gguf_file=names[index])
            self.status.set_state("loading…")
            self.transcript.set_welcome(self._loading_text())
            self.vicuna.load_model(self.session.load, None)

        self.app.push_screen(
            PickScreen(f"{repo_id} holds several GGUFs: which one?", names), chosen
        )

    @on(ReloadRequested)
    async def _reload(self, message: ReloadRequested) -> None:
        values = dict(message.values)
        backend = values.pop("backend", "local")  # local or remote
        if "engine" in values:  # what runs a local model: LoadSettings.backend
            values["backend"] = values.pop("engine")
        endpoint = values.pop("endpoint", None)
        remote_model = values.pop("remote_model", None)
        try:
            load = dataclasses.replace(self.session.load, **values)
            load.check()
        except (SettingsError, TypeError) as exc:
            self.notify(str(exc), severity="error")
            return
        remote = None
        if backend == "remote" and endpoint:
            base = self.remote or self.vicuna.resolved.remote or RemoteSettings(endpoint)
            remote = dataclasses.replace(base, endpoint=endpoint, model=remote_model)
        await self.stop_reply("Stopped the reply (it is kept) to reload the model.")
        self._previous_load = self.session.load
        self._previous_remote = self.remote
        self.session.load = load
        self.remote = remote
        self.model_ready = False
        self.status.set_state("reloading…")
        self._engine_started = True
        self.vicuna.load_model(load, remote)
        saved = dict(values)
        saved["endpoint"] = endpoint if remote is not None else None
        saved["remote_model"] = remote_model if remote is not None else None
        self.vicuna.save_settings(saved)

    # -- links in replies are shown, never opened ------------------------------------------

    @on(Markdown.LinkClicked)
    def _link(self, event: Markdown.LinkClicked) -> None:
        event.stop()
        self.notify(f"Link: {event.href}", title="Not opened", timeout=8)
