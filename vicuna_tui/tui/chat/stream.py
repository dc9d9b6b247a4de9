"""Sending a prompt and streaming its reply into the transcript, a frame at a time."""

from __future__ import annotations

from textual import on
from textual.timer import Timer

from vicuna_tui.engine.events import ChatRequest, ReplyDone, ReplyFailed
from vicuna_tui.errors import ModelProcessLost
from vicuna_tui.tui.chat.base import ChatScreenBase, Streaming
from vicuna_tui.tui.messages import PromptSubmitted
from vicuna_tui.tui.screens.dialogs import ErrorScreen
from vicuna_tui.tui.widgets.transcript import describe_stats


class ReplyStream(ChatScreenBase):
    _frame_timer: Timer | None = None

    def _pending_text(self) -> str:
        """Reply text that arrived since the last frame (none once the reply ended)."""
        return self.host.replies.take() if self.streaming is not None else ""

    async def _draw_reply(self) -> None:
        """A frame of the streamed reply: everything that arrived since the last one.

        Runs a few times a second while a reply streams (FramePacer).  Each update costs
        the same whether it carries one token or fifty, so the UI's share of the CPU
        does not grow with the model's speed.
        """
        self._frame_timer = None
        text = self._pending_text()
        if text and self.streaming is not None:
            if self.streaming.reading:  # the prompt is in: the reply has begun
                self.streaming.reading = False
                self.streaming.view.set_meta("")
                self.status.set_state("writing…")
            await self.streaming.view.write(text)
        wait = self._pacer.next()
        if self.streaming is not None:
            self._frame_timer = self.set_timer(wait, self._draw_reply)

    def _stop_drawing(self) -> None:
        """Stop the frames and keep any text not drawn yet in the reply's text."""
        if self._frame_timer is not None:
            self._frame_timer.stop()
            self._frame_timer = None
        text = self._pending_text()
        if text and self.streaming is not None:
            self.streaming.view.add_text(text)

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
            tokens_per_second=stats.tokens_per_second,
            ttft=stats.time_to_first_token,
            dropped=stats.dropped_turns,
            threads=stats.threads,
            prompt_cache=stats.prompt_cache_bytes,
        )
        self._probe_memory()
        self._after_change()
        await self._reply_finished(done.text, stopped=done.finish_reason == "cancelled")

    async def _reply_finished(self, text: str, *, stopped: bool) -> None:
        """A reply came to its end (ReplayControl sends the next turn here)."""

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
            self.model = self.model.failed(failed.error.message)
        self.app.push_screen(
            ErrorScreen("The reply failed", failed.error.message, failed.error.hint)
        )

    @on(PromptSubmitted)
    async def _submitted(self, message: PromptSubmitted) -> None:
        if self.busy_writing(first=False):
            return
        text = message.text
        self.prompt.remember(text)
        self.prompt.set_text("")
        if self.editing:
            index = self.editing_at if self.editing_at is not None else 0
            self.end_edit()
            views = len(self.transcript.views)
            request = self.session.edit_at(index, text)
            await self.transcript.drop_last(views - index)
        else:
            request = self.session.add_user(text)
        if request is None:  # pragma: no cover - edit_last with no turn
            return
        await self.transcript.add("user", text)
        await self._start_reply(request)

    async def _start_reply(self, request: ChatRequest) -> None:
        info = self.session.model_info
        view = await self.transcript.add(
            "assistant", label=f"Assistant · {info.name}" if info else "Assistant"
        )
        view.set_branch(*self.session.coming_branch())  # ‹ 3/3 › while it is written
        view.start_stream()
        self.streaming = Streaming(request.request_id, view)
        self.host.replies.expect(request.request_id)  # nothing from an earlier reply
        self._frame_timer = self.set_timer(self._pacer.start(), self._draw_reply)
        self._start_engine()  # the load is queued first, the prompt waits for it
        self.host.engine.generate(request)
        self.status.set_state("writing…" if self.model_ready else "waiting for the model to load…")
        self._after_change()

    async def stop_reply(self, reason: str = "") -> None:
        """Stop the reply in flight now, keeping its text (used before switching chats)."""
        stream = self.streaming
        if stream is None:
            return
        self._stop_drawing()
        self.streaming = None
        self.host.engine.cancel()
        message = self.session.record_reply(stream.view.text, "cancelled")
        await stream.view.finish(stream.view.text, describe_stats(message))
        if reason:
            self.notify(reason)

    def keep_partial_reply(self) -> None:
        """On quit: save the reply in progress as it stands, marked cancelled."""
        stream = self.streaming
        if stream is not None:
            self._stop_drawing()
            self.streaming = None
            self.session.record_reply(stream.view.text, "cancelled")
            self.host.engine.cancel()

    def action_send(self) -> None:
        if self.prompt.text.strip():
            self.post_message(PromptSubmitted(self.prompt.text))

    def action_newline(self) -> None:
        self.prompt.insert("\n")
        self.prompt.focus()

    def action_cancel(self) -> None:
        if self.streaming is not None:
            self.host.engine.cancel()
        elif self.editing:
            self.end_edit()
            self.prompt.set_text("")
        else:
            self.prompt.focus()

    async def action_regenerate(self) -> None:
        if self.busy_writing():
            return
        had_reply = bool(self.session.messages) and self.session.messages[-1].role == "assistant"
        request = self.session.regenerate()
        if request is None:
            self.notify("There is no message to answer again.")
            return
        if had_reply:
            await self.transcript.drop_last(1)
        await self._start_reply(request)
        self.mark_branches()

    def action_edit_last(self) -> None:
        if self.busy_writing():
            return
        text = self.session.last_user_text()
        if text is None:
            self.notify("There is no message to edit yet.")
            return
        last = max(i for i, m in enumerate(self.session.messages) if m.role == "user")
        self.begin_edit(last, text)
        self.notify(
            "Editing your last message: Enter resends it as a new branch (the old one "
            "stays), Esc leaves it as it was."
        )
