"""Sending one prompt to both sides and streaming the two replies (each side's
``ReplyStream`` draws its own, a frame at a time); with ``one_at_a_time`` each side
loads, answers and unloads in turn."""

from __future__ import annotations

from textual import on

from vicuna_tui.engine.events import (
    ReplyDone,
    ReplyFailed,
)
from vicuna_tui.errors import ModelProcessLost
from vicuna_tui.tui.arena.base import ArenaBase
from vicuna_tui.tui.arena.side import FAILED, READY, ArenaSide
from vicuna_tui.tui.messages import PromptSubmitted
from vicuna_tui.tui.widgets.transcript import describe_stats


class ArenaReplies(ArenaBase):
    @on(PromptSubmitted)
    async def _submitted(self, message: PromptSubmitted) -> None:
        if any(s.stream.active for s in self.sides):
            self.notify("The replies are being written: Esc stops them first.", severity="warning")
            return
        if self.blind_loading():
            ready = sum(s.state == READY for s in self.sides)
            self.notify(
                f"The models are still loading ({ready} of 2 ready). In a blind battle "
                "both start together, so the first ready cannot give either away; your "
                "prompt stays in the input.",
                severity="warning",
            )
            return
        usable = [s for s in self.sides if s.state != FAILED]
        if not usable:
            self.notify("Neither model loaded; see each pane for why.", severity="error")
            return
        text = message.text
        self.prompt.remember(text)
        self.prompt.set_text("")
        requests = self.battle.ask(text, [self._letter(s) for s in usable])
        self._update_votes()
        for side in usable:
            letter = self._letter(side)
            pane = self.pane(letter)
            await pane.transcript.add("user", text)
            view = await pane.transcript.add("assistant", label=f"Model {letter}")
            view.start_stream()
            side.stream.begin(requests[letter].request_id, view)
        self._waiting = [s.index for s in usable]
        self._requests = {s.index: requests[self._letter(s)] for s in usable}
        if self.one_at_a_time:
            self._next_in_turn()
        else:
            for side in usable:
                side.engine.generate(self._requests[side.index])
                self.pane_of(side.index).set_status("writing…")

    def _next_in_turn(self) -> None:
        """One at a time: the next side loads, answers and unloads."""
        while self._waiting:
            side = self.sides[self._waiting[0]]
            if not side.stream.active:
                self._waiting.pop(0)
                continue
            side.load()
            side.engine.generate(self._requests[side.index])
            side.unload()
            self.pane_of(side.index).set_status("loading, then writing…")
            return

    async def _end_stream(self, side: ArenaSide, text: str, meta: str) -> None:
        stream = side.stream.end()
        if stream is None:
            return
        await stream.view.finish(text, meta)
        if side.index in self._waiting and self.one_at_a_time:
            self._waiting.remove(side.index)

    async def _finished(self, side: ArenaSide, done: ReplyDone) -> None:
        if not side.stream.is_for(done.request_id):
            return
        session = self.battle.sessions[side.index]
        saved = session.record_reply(done.text, done.finish_reason, done.stats)
        await self._end_stream(side, done.text, describe_stats(saved, timing=self.battle.revealed))
        self.pane_of(side.index).set_status(
            "stopped" if done.finish_reason == "cancelled" else "done"
        )
        self._after_reply(side)

    async def _failed(self, side: ArenaSide, failed: ReplyFailed) -> None:
        if not side.stream.is_for(failed.request_id):
            return
        session = self.battle.sessions[side.index]
        session.record_failure(failed.partial_text)
        if not failed.partial_text:
            session.drop_unanswered()
        await self._end_stream(side, failed.partial_text, f"⚠ {failed.error.message}")
        if isinstance(failed.error, ModelProcessLost):
            side.state = FAILED
        self.pane_of(side.index).set_status(f"⚠ {failed.error.message}")
        self._after_reply(side)

    def _after_reply(self, side: ArenaSide) -> None:
        self.battle.save()
        if self.one_at_a_time:
            self._next_in_turn()
        if not any(s.stream.active for s in self.sides):
            self._update_votes()
            if self.battle.can_vote() is None and self.battle.vote is None:
                self.notify(
                    "Both replies are in: which is better? Type a or b, t (tie) or x (both bad)."
                )

    async def action_stop(self) -> None:
        """Esc: both replies stop (within a token); one at a time, the side still
        waiting for its turn is not started."""
        streaming = [s for s in self.sides if s.stream.active]
        running = self._waiting[:1] if self.one_at_a_time else [s.index for s in streaming]
        for side in streaming:
            if side.index in running:
                side.engine.cancel()
                continue
            self.battle.sessions[side.index].record_reply("", "cancelled")
            await self._end_stream(side, "", "⏹ stopped before its turn")
            self.pane_of(side.index).set_status("stopped")
        if not streaming:
            self.prompt.focus()

    def action_send(self) -> None:
        if self.prompt.text.strip():
            self.post_message(PromptSubmitted(self.prompt.text))
