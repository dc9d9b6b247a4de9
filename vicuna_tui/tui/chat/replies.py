"""Sending in the chat and the reply it brings: send, regenerate, edit and resend,
stop, and how a reply ends (done, failed, stopped, kept on quit).

``ChatReplies`` owns the chat's ``ReplyStream`` (the reply being written, its view
and its frames).  It tells the screen through ``changed`` after the chat changed
(the screen refreshes what shows it).
"""

from __future__ import annotations

from collections.abc import Callable

from vicuna_tui.engine.events import (
    ChatRequest,
    PrefillProgress,
    ReplyDone,
    ReplyFailed,
    ReplyStarted,
)
from vicuna_tui.errors import ModelProcessLost
from vicuna_tui.tui.chat.editing import EditMode
from vicuna_tui.tui.chat.host import ChatHost
from vicuna_tui.tui.chat.model_controller import ModelController
from vicuna_tui.tui.chat.view import ChatView
from vicuna_tui.tui.reply_stream import ReplyStream, Streaming
from vicuna_tui.tui.screens.dialogs import ErrorScreen
from vicuna_tui.tui.widgets.status import progress_text
from vicuna_tui.tui.widgets.transcript import describe_stats


class ChatReplies:
    def __init__(
        self,
        view: ChatView,
        host: ChatHost,
        models: ModelController,
        editing: EditMode,
        changed: Callable[[], None],
    ) -> None:
        self.view = view
        self._host = host
        self._models = models
        self._editing = editing
        self._changed = changed
        self.stream = ReplyStream(
            host.replies,
            view.ui.set_timer,
            text_began=lambda: view.status.set_state("writing…"),
            drafts=view.status.live_drafts,
        )

    @property
    def streaming(self) -> Streaming | None:
        return self.stream.current

    def busy(self, *, first: bool = True) -> bool:
        """True (and says so) while a reply is being written: Esc stops it (``first``,
        before what was asked can be done)."""
        if not self.stream.active:
            return False
        when = " first" if first else ""
        self.view.ui.notify(f"A reply is being written: Esc stops it{when}.", severity="warning")
        return True

    # -- sending -------------------------------------------------------------------------

    async def submit(self, text: str) -> None:
        """The input was sent: a new message, or the message being edited resent."""
        if self.busy(first=False):
            return
        self.view.prompt.remember(text)
        self.view.prompt.set_text("")
        if self._editing.at is not None:
            index = self._editing.at
            self._editing.end()
            views = len(self.view.transcript.views)
            request = self.view.session.edit_at(index, text)
            await self.view.transcript.drop_last(views - index)
        else:
            request = self.view.session.add_user(text)
        if request is None:  # pragma: no cover - edit_last with no turn
            return
        await self.view.transcript.add("user", text)
        await self.start(request)

    async def start(self, request: ChatRequest) -> None:
        """Ask for the reply to ``request`` (the user's message is already shown)."""
        info = self.view.session.model_info
        view = await self.view.transcript.add(
            "assistant", label=f"Assistant · {info.name}" if info else "Assistant"
        )
        view.set_branch(*self.view.session.branches.coming_branch())  # ‹ 3/3 › while it is written
        view.start_stream()
        self.stream.begin(request.request_id, view)
        self._models.start()  # the load is queued first, the prompt waits for it
        self._host.engine.generate(request)
        waiting = "writing…" if self._models.ready else "waiting for the model to load…"
        self.view.status.set_state(waiting)
        self._changed()

    async def regenerate(self) -> None:
        if self.busy():
            return
        messages = self.view.session.messages
        had_reply = bool(messages) and messages[-1].role == "assistant"
        request = self.view.session.regenerate()
        if request is None:
            self.view.ui.notify("There is no message to answer again.")
            return
        if had_reply:
            await self.view.transcript.drop_last(1)
        await self.start(request)

    async def branch_from_token(self, index: int, at: int, token: str) -> None:
        """A new reply beside the one at ``index``: its start up to token ``at``, then
        ``token``, then what the model writes on."""
        if self.busy():
            return
        request = self.view.session.branch_from_token(index, at, token)
        if request is None:
            self.view.ui.notify("This reply has no recorded alternative there to branch from.")
            return
        await self.view.transcript.drop_last(len(self.view.transcript.views) - index)
        await self.start(request)
        current = self.stream.current
        if current is not None:  # the new reply keeps the focus the old one had
            current.view.focus()

    def edit_last(self) -> None:
        if self.busy():
            return
        text = self.view.session.last_user_text()
        if text is None:
            self.view.ui.notify("There is no message to edit yet.")
            return
        last = max(i for i, m in enumerate(self.view.session.messages) if m.role == "user")
        self._editing.begin(last, text)
        self.view.ui.notify(
            "Editing your last message: Enter resends it as a new branch (the old one "
            "stays), Esc leaves it as it was."
        )

    def cancel(self) -> None:
        """Esc: stop the reply (within a token), else leave edit mode, else focus the
        input."""
        if self.stream.active:
            self._host.engine.cancel()
        elif self._editing.active:
            self._editing.end()
            self.view.prompt.set_text("")
        else:
            self.view.prompt.focus()

    # -- the engine's answers ------------------------------------------------------------

    def model_named(self, name: str) -> None:
        """The model loaded while a reply waited for it: now we know who answers."""
        current = self.stream.current
        if current is not None:
            current.view.set_label(f"Assistant · {name}")
            self.view.status.set_state("writing…")

    def began(self, event: ReplyStarted) -> None:
        if not self.stream.is_for(event.request_id):
            return
        self.view.status.set_state("writing…")
        if event.dropped_turns:
            self.view.ui.notify(
                f"{event.dropped_turns} old turn(s) left out to fit the model's context",
                severity="warning",
            )

    def reading(self, event: PrefillProgress) -> None:
        """A long prompt is being read in: how far, and how to stop."""
        current = self.stream.current
        if current is None or current.request_id != event.request_id:
            return
        current.reading = True
        stage = progress_text("reading the chat, tokens", event.done, event.total)
        current.view.set_meta(f"{stage} · Esc stops")  # where the reply will be
        self.view.status.set_state(f"reading {event.done * 100 // event.total}%")

    async def done(self, done: ReplyDone) -> bool:
        """The reply ended; False when it was not the one streaming (one stopped)."""
        if not self.stream.is_for(done.request_id):
            return False
        current = self.stream.end()
        assert current is not None
        message = self.view.session.record_reply(
            done.text, done.finish_reason, done.stats, done.tokens
        )
        await current.view.finish(done.text, describe_stats(message))
        await self.view.transcript.reply_finished(current.view, message)
        self.view.status.set_state("")
        self.view.status.reply_stats(done.stats)
        self._models.probe_memory()
        self._changed()
        return True

    async def failed(self, failed: ReplyFailed) -> None:
        if not self.stream.is_for(failed.request_id):
            return
        current = self.stream.end()
        assert current is not None
        self.view.status.set_state("")
        if failed.partial_text:
            message = self.view.session.record_failure(failed.partial_text)
            meta = describe_stats(message) if message else "⚠ interrupted"
            await current.view.finish(failed.partial_text, meta)
        else:
            await current.view.remove()
            text = self.view.session.drop_unanswered()
            if text is not None:
                await self.view.transcript.drop_last(1)
                if not self.view.prompt.text.strip():
                    self.view.prompt.set_text(text)
            elif not self.view.session.awaiting_reply:  # the reply shown before, again
                await self.view.redraw()
        self._changed()
        if isinstance(failed.error, ModelProcessLost):
            self._models.lost(failed.error.message)
        self.view.ui.app.push_screen(
            ErrorScreen("The reply failed", failed.error.message, failed.error.hint)
        )

    # -- ending early ----------------------------------------------------------------------

    async def stop(self, reason: str = "") -> None:
        """Stop the reply in flight now, keeping its text (before switching chats)."""
        current = self.stream.end()
        if current is None:
            return
        self._host.engine.cancel()
        message = self.view.session.record_reply(current.view.text, "cancelled")
        await current.view.finish(current.view.text, describe_stats(message))
        if reason:
            self.view.ui.notify(reason)

    def keep_partial(self) -> None:
        """On quit: save the reply in progress as it stands, marked cancelled."""
        current = self.stream.end()
        if current is not None:
            self.view.session.record_reply(current.view.text, "cancelled")
            self._host.engine.cancel()
