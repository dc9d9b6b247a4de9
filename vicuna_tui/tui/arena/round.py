"""One round of a battle: one prompt sent to both sides and the two replies streamed
(each side's ``ReplyStream`` draws its own, a frame at a time); with ``one_at_a_time``
each side loads, answers and unloads in turn.

``ArenaRound`` owns what is in flight: the sides still to answer and their requests.
What it needs of the screen (its panes, its input, its notices) comes through the
``RoundHost`` it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from textual.notifications import SeverityLevel

from vicuna_tui.arena.battle import ArenaBattle
from vicuna_tui.engine.events import ChatRequest, ReplyDone, ReplyFailed
from vicuna_tui.errors import ModelProcessLost
from vicuna_tui.tui.arena.pane import ArenaPane
from vicuna_tui.tui.arena.side import FAILED, READY, ArenaSide
from vicuna_tui.tui.widgets.composer import PromptInput
from vicuna_tui.tui.widgets.transcript import describe_stats


class RoundHost(Protocol):
    """What a round uses of the arena screen."""

    @property
    def battle(self) -> ArenaBattle: ...

    @property
    def prompt(self) -> PromptInput: ...

    def pane(self, letter: str) -> ArenaPane: ...

    def pane_of(self, side: int) -> ArenaPane: ...

    def letter(self, side: ArenaSide) -> str: ...

    def blind_loading(self) -> bool: ...

    def update_votes(self) -> None: ...

    def notify(self, message: str, *, severity: SeverityLevel = "information") -> None: ...


class ArenaRound:
    def __init__(self, host: RoundHost, sides: Sequence[ArenaSide], one_at_a_time: bool) -> None:
        self._host = host
        self._sides = sides
        self._one_at_a_time = one_at_a_time
        self._waiting: list[int] = []  # one at a time: the sides still to answer
        self._requests: dict[int, ChatRequest] = {}

    @property
    def streaming(self) -> bool:
        return any(s.stream.active for s in self._sides)

    async def send(self, text: str) -> None:
        host = self._host
        if self.streaming:
            host.notify("The replies are being written: Esc stops them first.", severity="warning")
            return
        if host.blind_loading():
            ready = sum(s.state == READY for s in self._sides)
            host.notify(
                f"The models are still loading ({ready} of 2 ready). In a blind battle "
                "both start together, so the first ready cannot give either away; your "
                "prompt stays in the input.",
                severity="warning",
            )
            return
        usable = [s for s in self._sides if s.state != FAILED]
        if not usable:
            host.notify("Neither model loaded; see each pane for why.", severity="error")
            return
        host.prompt.remember(text)
        host.prompt.set_text("")
        requests = host.battle.ask(text, [host.letter(s) for s in usable])
        host.update_votes()
        for side in usable:
            letter = host.letter(side)
            pane = host.pane(letter)
            await pane.transcript.add("user", text)
            view = await pane.transcript.add("assistant", label=f"Model {letter}")
            view.start_stream()
            side.stream.begin(requests[letter].request_id, view)
        self._waiting = [s.index for s in usable]
        self._requests = {s.index: requests[host.letter(s)] for s in usable}
        if self._one_at_a_time:
            self._next_in_turn()
        else:
            for side in usable:
                side.engine.generate(self._requests[side.index])
                host.pane_of(side.index).set_status("writing…")

    def _next_in_turn(self) -> None:
        """One at a time: the next side loads, answers and unloads."""
        while self._waiting:
            side = self._sides[self._waiting[0]]
            if not side.stream.active:
                self._waiting.pop(0)
                continue
            side.load()
            side.engine.generate(self._requests[side.index])
            side.unload()
            self._host.pane_of(side.index).set_status("loading, then writing…")
            return

    async def end_stream(self, side: ArenaSide, text: str, meta: str) -> None:
        stream = side.stream.end()
        if stream is None:
            return
        await stream.view.finish(text, meta)
        if side.index in self._waiting and self._one_at_a_time:
            self._waiting.remove(side.index)

    async def finished(self, side: ArenaSide, done: ReplyDone) -> None:
        if not side.stream.is_for(done.request_id):
            return
        battle = self._host.battle
        saved = battle.sessions[side.index].record_reply(done.text, done.finish_reason, done.stats)
        await self.end_stream(side, done.text, describe_stats(saved, timing=battle.revealed))
        self._host.pane_of(side.index).set_status(
            "stopped" if done.finish_reason == "cancelled" else "done"
        )
        self.after_reply(side)

    async def failed(self, side: ArenaSide, failed: ReplyFailed) -> None:
        if not side.stream.is_for(failed.request_id):
            return
        session = self._host.battle.sessions[side.index]
        session.record_failure(failed.partial_text)
        if not failed.partial_text:
            session.drop_unanswered()
        await self.end_stream(side, failed.partial_text, f"⚠ {failed.error.message}")
        if isinstance(failed.error, ModelProcessLost):
            side.state = FAILED
        self._host.pane_of(side.index).set_status(f"⚠ {failed.error.message}")
        self.after_reply(side)

    def after_reply(self, side: ArenaSide) -> None:
        host = self._host
        host.battle.save()
        if self._one_at_a_time:
            self._next_in_turn()
        if not self.streaming:
            host.update_votes()
            if host.battle.can_vote() is None and host.battle.vote is None:
                host.notify(
                    "Both replies are in: which is better? Type a or b, t (tie) or x (both bad)."
                )

    async def stop(self) -> bool:
        """Esc: both replies stop (within a token); one at a time, the side still
        waiting for its turn is not started.  False when nothing was streaming."""
        streaming = [s for s in self._sides if s.stream.active]
        running = self._waiting[:1] if self._one_at_a_time else [s.index for s in streaming]
        for side in streaming:
            if side.index in running:
                side.engine.cancel()
                continue
            self._host.battle.sessions[side.index].record_reply("", "cancelled")
            await self.end_stream(side, "", "⏹ stopped before its turn")
            self._host.pane_of(side.index).set_status("stopped")
        return bool(streaming)

    def abandon(self) -> None:
        """A new battle: the replies still streaming are kept as they stand, cancelled."""
        for side in self._sides:
            stream = side.stream.end()
            if stream is not None:
                side.engine.cancel()
                session = self._host.battle.sessions[side.index]
                session.record_reply(stream.view.text, "cancelled")
        self._waiting = []
