"""The arena screen's state: the two sides, the battle, the panes, and the store.

The screen is built in layers, each a class over the one before: ``ArenaBase``
(state, building a battle, the store) → ``ArenaReplies`` (sending a prompt and
streaming both replies) → ``ArenaScreen`` (layout, engine events, votes, new battles).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Static

from vicuna_tui import runtime
from vicuna_tui.arena.battle import LETTERS, ArenaBattle
from vicuna_tui.engine.events import (
    ChatRequest,
)
from vicuna_tui.session import ChatSession
from vicuna_tui.store import Store, StoreError
from vicuna_tui.tui.arena.pane import ArenaPane
from vicuna_tui.tui.arena.side import FAILED, LOADING, READY, ArenaSide, SideFactory
from vicuna_tui.tui.messages import StoreFailed, StoreResult
from vicuna_tui.tui.plain import plain
from vicuna_tui.tui.store_calls import StoreCalls
from vicuna_tui.tui.widgets.composer import PromptInput

# A vote is one key, as Chatbot Arena's buttons are one click: typed into the empty
# input once both replies are in (else the letter is typed as usual).  Alt+A, Alt+T and
# Alt+X stay as aliases; Alt+B does not, since a terminal that sends Alt as an ESC prefix
# sends ESC b, which is Ctrl+Left (one word left) for every terminal program.
VOTE_KEYS = {"a": "a", "b": "b", "tie": "t", "bothbad": "x"}
VOTE_ALIASES = {"a": "alt+a", "tie": "alt+t", "bothbad": "alt+x"}
VOTE_HELP = "a / b / t (tie) / x (both bad) in the empty input vote"
VOTE_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "bothbad": "Both are bad"}


class ArenaBase(Screen[None]):
    def __init__(
        self,
        sides: Sequence[runtime.Resolved],
        factory: SideFactory,
        store_calls: StoreCalls | None,
        *,
        blind: bool = True,
        one_at_a_time: bool = False,
        debug: bool = False,
        swapped: Callable[[], bool | None] = lambda: None,
        settings: dict[str, Any] | None = None,
        not_saving: str | None = None,
    ) -> None:
        super().__init__()
        self.store_calls = store_calls
        # Why the battles are not saved (the store could not be opened), shown in the
        # head; "--no-save" when asked; None while they are saved.
        self.not_saving = not_saving or (None if store_calls is not None else "--no-save")
        self.blind = blind
        self.one_at_a_time = one_at_a_time
        self.sides = [ArenaSide(i, r, factory, self, debug=debug) for i, r in enumerate(sides)]
        self._swapped = swapped  # tests fix the order; None draws it
        self._settings = settings or {}
        self.battles = 0
        self.battle = self._new_battle()
        self._waiting: list[int] = []  # one at a time: the sides still to answer
        self._requests: dict[int, ChatRequest] = {}
        self._warned_identical = False
        self.held_notices: list[str] = []  # a blind battle's model notices, until the vote
        self._notice_timer: Timer | None = None  # clears the notice line

    def _session(self, side: int) -> ChatSession:
        return runtime.new_session(
            self.sides[side].resolved,
            None,
            warn=lambda text: self.notify(text, severity="warning", timeout=8),
            writer=self.store_calls.writer(lambda: self) if self.store_calls is not None else None,
        )

    def _new_battle(self) -> ArenaBattle:
        sessions = [self._session(i) for i in range(2)]
        for side, session in zip(self.sides, sessions, strict=True):
            if side.info is not None:
                session.set_model(side.info)
        self.battles += 1
        return ArenaBattle(
            sessions,
            blind=self.blind,
            swapped=self._swapped(),
            writer=self._write_battle if self.store_calls is not None else None,
            settings={
                **self._settings,
                "one_at_a_time": self.one_at_a_time,
                "threads": [s.resolved.load.threads for s in self.sides],
            },
        )

    def _write_battle(
        self, job: Callable[[Store], Any], failed: Callable[[StoreError], None]
    ) -> None:
        assert self.store_calls is not None
        self.store_calls.call(self, job, None, failed)

    def pane(self, letter: str) -> ArenaPane:
        return self.query_one(f"#pane-{letter.lower()}", ArenaPane)

    def pane_of(self, side: int) -> ArenaPane:
        return self.pane(next(x for x in LETTERS if self.battle.side_of(x) == side))

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    def _show_head(self) -> None:
        mode = "blind" if self.blind else "named"
        order = " · one model at a time" if self.one_at_a_time else ""
        saving = f" · NOT SAVING ({self.not_saving})" if self.not_saving else ""
        head = (
            f"Arena · battle {self.battles} · {mode}{order}{saving} · {VOTE_HELP} · "
            "Esc stops · Ctrl+N new battle · F9 leaderboard · F10 close"
        )
        differences = self.battle.differences()
        if differences:  # a vote would weigh the settings as well as the models
            head += "\n⚠ The sides' settings differ: " + "; ".join(differences)
        self.query_one("#arena-head", Static).update(plain(head))

    def ready_status(self, index: int) -> str:
        """A loaded side's status once names may be shown: the model, and its settings."""
        side = self.sides[index]
        what = side.info.describe() if side.info is not None else "ready"
        return f"ready: {what} · {self.battle.describe_settings(self._letter(side))}"

    def _show_titles(self) -> None:
        for letter in LETTERS:
            self.pane(letter).set_title(self.battle.title(letter))

    def _update_votes(self) -> None:
        why = self.battle.can_vote()
        for vote in VOTE_LABELS:
            button = self.query_one(f"#vote-{vote}", Button)
            button.disabled = why is not None
            button.variant = "primary" if self.battle.vote == vote else "default"

    def blind_loading(self) -> bool:
        """A blind battle whose models are not both loaded yet: both panes show the same
        status, and prompts wait, so which side is ready first cannot tell them apart."""
        return (
            not self.battle.revealed
            and not self.one_at_a_time
            and any(s.state == LOADING for s in self.sides)
        )

    def _show_blind_loading(self) -> None:
        ready = sum(s.state == READY for s in self.sides)
        text = f"loading the models… ({ready} of 2 ready)" if self.blind_loading() else "ready"
        for side in self.sides:
            if side.state != FAILED:
                self.pane_of(side.index).set_status(text)

    def _letter(self, side: ArenaSide) -> str:
        return next(x for x in LETTERS if self.battle.side_of(x) == side.index)

    async def on_store_result(self, message: StoreResult[Any]) -> None:
        await message.handle()

    def on_store_failed(self, message: StoreFailed) -> None:
        if not message.handle():
            self.notify(f"Could not save: {message.error.message}", severity="warning")
