"""Replaying a saved chat in the TUI: its user turns, sent again as a new linked chat."""

from __future__ import annotations

from dataclasses import dataclass, field

from vicuna_tui import replay_plan as replay_mod
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.store import Conversation
from vicuna_tui.tui.chat.models import ModelControl


@dataclass
class ReplayRun:
    original: Conversation
    plan: list[replay_mod.ReplayStep]
    base: GenerationSettings
    reuse_seeds: bool
    index: int = 0
    comparisons: list[replay_mod.Comparison] = field(default_factory=list)


class ReplayControl(ModelControl):
    replaying: ReplayRun | None = None

    async def action_replay_chat(self) -> None:
        await self.start_replay(self.reuse_seeds)

    async def start_replay(self, reuse_seeds: bool = True) -> None:
        """Send this chat's user turns again, as a new chat linked to it."""
        conv = self.session.conversation
        if conv is None or self.session.store is None:
            self.notify("Open a saved chat to replay it.")
            return
        if self.busy_writing():
            return
        original = self.session.store.get(conv.id)
        plan = replay_mod.steps(original)
        if not plan:
            self.notify("This chat has no messages to replay.")
            return
        self.replaying = ReplayRun(original, plan, self.session.generation, reuse_seeds)
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

    async def _reply_finished(self, text: str, *, stopped: bool) -> None:
        replay = self.replaying
        if replay is None:
            return
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
            from vicuna_tui.tui.screens.replay_result import ReplayScreen

            self.app.push_screen(
                ReplayScreen(f"Replay of “{replay.original.title}”", replay.comparisons, note)
            )
