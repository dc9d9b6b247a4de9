"""Replaying a saved chat in the TUI: its user turns, sent again as a new branch of it
(the first new reply beside the saved one, ``‹ 2/2 ›``; Alt+Left shows the saved path).

The run itself (which turn, which seed, how each compares) is ``replay_plan.ReplayRun``,
the same one the ``replay`` command drives.
"""

from __future__ import annotations

from vicuna_tui.replay_plan import ReplayRun, steps
from vicuna_tui.store import Conversation
from vicuna_tui.tui.chat.models import ModelControl


class ReplayControl(ModelControl):
    replaying: ReplayRun | None = None

    async def action_replay_chat(self) -> None:
        await self.start_replay(self.reuse_seeds)

    async def start_replay(self, reuse_seeds: bool = True) -> None:
        """Send this chat's user turns again, as a new branch of it."""
        conv = self.session.conversation
        calls = self.host.store_calls
        if conv is None or calls is None:
            self.notify("Open a saved chat to replay it.")
            return
        if self.busy_writing():
            return
        calls.call(
            self,
            lambda store: store.get(conv.id),
            lambda original: self._begin_replay(original, reuse_seeds),
        )

    async def _begin_replay(self, original: Conversation, reuse_seeds: bool) -> None:
        if self.busy_writing():
            return
        if not steps(original):
            self.notify("This chat has no messages to replay.")
            return
        run = ReplayRun(original, self.session.generation, reuse_seeds)
        self.replaying = run
        self.session.show(original)
        self.session.generation = run.base
        self.session.branch_for_replay()
        await self.show_path()
        self.notify(
            f"Replaying {len(run.plan)} turn(s) of “{run.original.title}” as a new branch "
            "(the saved replies stay); Esc stops."
        )
        await self._replay_send(run)

    async def _replay_send(self, run: ReplayRun) -> None:
        step = run.current
        assert step is not None
        self.session.generation = run.settings()
        request = self.session.replay_turn(step.prompt)
        if len(self.transcript.views) < len(self.session.messages):
            await self.transcript.add("user", step.prompt)
        await self._start_reply(request)

    async def _reply_finished(self, text: str, *, stopped: bool) -> None:
        run = self.replaying
        if run is None:
            return
        run.record(text)
        if stopped:
            self._end_replay("stopped with Esc")
        elif run.current is not None:
            await self._replay_send(run)
        else:
            self._end_replay()

    def _end_replay(self, note: str = "") -> None:
        run = self.replaying
        if run is None:
            return
        self.replaying = None
        self.session.generation = run.base
        if run.comparisons:
            from vicuna_tui.tui.screens.replay_result import ReplayScreen

            self.app.push_screen(
                ReplayScreen(f"Replay of “{run.original.title}”", run.comparisons, note)
            )
        self.mark_branches()
