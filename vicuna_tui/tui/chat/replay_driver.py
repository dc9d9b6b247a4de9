"""Replaying a saved chat in the TUI: its user turns, sent again as a new branch of it
(the first new reply beside the saved one, ``‹ 2/2 ›``; Alt+Left shows the saved path).

The run itself (which turn, which seed, how each compares) is ``replay_plan.ReplayRun``,
the same one the ``replay`` command drives; ``ReplayDriver`` owns the run in progress
and drives it with the chat's replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vicuna_tui.replay_plan import ReplayRun, steps
from vicuna_tui.store import Conversation
from vicuna_tui.tui.chat.branches import BranchNavigator
from vicuna_tui.tui.chat.replies import ChatReplies
from vicuna_tui.tui.chat.view import ChatView


@dataclass(eq=False)
class ReplayDriver:
    view: ChatView
    _replies: ChatReplies
    _branches: BranchNavigator
    run: ReplayRun | None = field(default=None, init=False)

    def start(self, reuse_seeds: bool = True) -> None:
        """Send this chat's user turns again, as a new branch of it (read from the
        store first, on its thread)."""
        conv = self.view.session.conversation
        calls = self.view.store
        if conv is None or calls is None:
            self.view.ui.notify("Open a saved chat to replay it.")
            return
        if self._replies.busy():
            return
        calls.call(
            self.view.ui,
            lambda store: store.get(conv.id),
            lambda original: self._begin(original, reuse_seeds),
        )

    async def _begin(self, original: Conversation, reuse_seeds: bool) -> None:
        if self._replies.busy():
            return
        if not steps(original):
            self.view.ui.notify("This chat has no messages to replay.")
            return
        run = ReplayRun(original, self.view.session.generation, reuse_seeds)
        self.run = run
        self.view.session.show(original)
        self.view.session.generation = run.base
        self.view.session.branch_for_replay()
        await self._branches.show_path()
        self.view.ui.notify(
            f"Replaying {len(run.plan)} turn(s) of “{run.original.title}” as a new branch "
            "(the saved replies stay); Esc stops."
        )
        await self._send(run)

    async def _send(self, run: ReplayRun) -> None:
        step = run.current
        assert step is not None
        self.view.session.generation = run.settings()
        saved = step.old.content if step.old is not None else ""
        request = self.view.session.replay_turn(step.prompt, saved)
        if len(self.view.transcript.views) < len(self.view.session.messages):
            await self.view.transcript.add("user", step.prompt)
        await self._replies.start(request)

    async def reply_finished(self, text: str, stopped: bool) -> None:
        """A reply came to its end: record it, and send the next turn (if replaying)."""
        run = self.run
        if run is None:
            return
        run.record(text)
        if stopped:
            self._end("stopped with Esc")
        elif run.current is not None:
            await self._send(run)
        else:
            self._end()

    def _end(self, note: str = "") -> None:
        run = self.run
        if run is None:
            return
        self.run = None
        self.view.session.generation = run.base
        if run.comparisons:
            from vicuna_tui.tui.screens.replay_result import ReplayScreen

            self.view.ui.app.push_screen(
                ReplayScreen(f"Replay of “{run.original.title}”", run.comparisons, note)
            )
        self._branches.mark()
