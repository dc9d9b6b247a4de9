"""The arena: one input box, two transcripts side by side, each streamed live from its
own model's process, and the vote.

Each side has its own engine thread (``side.ArenaSide``); the battle itself (the order
shown, the vote, what is saved) is ``arena.battle.ArenaBattle``, which knows nothing of
the screen.  Esc stops both replies; Ctrl+N starts a new battle, in a new random order.
With ``one_at_a_time`` (two models that do not fit in memory together) each side loads,
answers and unloads in turn.

Who owns what: the screen owns the battle (a new one per Ctrl+N), the layout and the
votes; each ``ArenaSide`` its engine and its streamed reply; the ``ArenaRound`` the round
in flight (which sides are still to answer, and their requests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Footer, Static

from vicuna_tui import runtime
from vicuna_tui.arena.battle import LETTERS, ArenaBattle, VoteRefused
from vicuna_tui.engine.events import (
    LoadFailed,
    LoadProgress,
    ModelReady,
    Notice,
    ReplyDone,
    ReplyFailed,
)
from vicuna_tui.session import ChatSession
from vicuna_tui.store import Store, StoreError
from vicuna_tui.tui.arena.pane import ArenaPane
from vicuna_tui.tui.arena.round import ArenaRound
from vicuna_tui.tui.arena.side import FAILED, LOADING, READY, ArenaSide, SideFactory
from vicuna_tui.tui.messages import PromptSubmitted, SideMessage, StoreFailed, StoreResult
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


class ArenaScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "stop", "Stop both", priority=True),
        Binding("ctrl+n", "new_battle", "New battle", priority=True),
        *(
            Binding(key, f"key_vote('{vote}')", VOTE_LABELS[vote], priority=True)
            for vote, key in VOTE_KEYS.items()
        ),
        *(
            Binding(key, f"vote('{vote}')", VOTE_LABELS[vote], show=False, priority=True)
            for vote, key in VOTE_ALIASES.items()
        ),
        Binding("f9", "results", "Leaderboard"),
        Binding("f10", "close", "Close"),
    ]

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
        self.round = ArenaRound(self, self.sides, one_at_a_time)
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
        return f"ready: {what} · {self.battle.describe_settings(self.letter(side))}"

    def _show_titles(self) -> None:
        for letter in LETTERS:
            self.pane(letter).set_title(self.battle.title(letter))

    def update_votes(self) -> None:
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

    def letter(self, side: ArenaSide) -> str:
        return next(x for x in LETTERS if self.battle.side_of(x) == side.index)

    async def on_store_result(self, message: StoreResult[Any]) -> None:
        await message.handle()

    def on_store_failed(self, message: StoreFailed) -> None:
        if not message.handle():
            self.notify(f"Could not save: {message.error.message}", severity="warning")

    @on(PromptSubmitted)
    async def _submitted(self, message: PromptSubmitted) -> None:
        await self.round.send(message.text)

    async def action_stop(self) -> None:
        if not await self.round.stop():
            self.prompt.focus()

    def action_send(self) -> None:
        if self.prompt.text.strip():
            self.post_message(PromptSubmitted(self.prompt.text))

    def compose(self) -> ComposeResult:
        yield Static(id="arena-head")
        yield Static(id="arena-notice")  # notices, in a line of their own
        with Horizontal(id="arena-panes"):
            for letter in LETTERS:
                yield ArenaPane(letter)
        with Horizontal(id="vote-bar"):
            for vote, label in VOTE_LABELS.items():
                yield Button(
                    plain(f"{label} ({VOTE_KEYS[vote]})"), id=f"vote-{vote}", disabled=True
                )
        yield PromptInput(id="arena-prompt", passes=self._votes_now)
        yield Footer()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """A notice goes on the line under the head, not in a toast: in the arena a
        toast would cover a pane's title, where the names are revealed.  (It is still
        the app's notification, kept in its list; the toast itself is hidden here.)"""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)
        line = self.query_one("#arena-notice", Static)
        line.update(plain(("⚠ " if severity != "information" else "") + message))
        line.set_class(severity != "information", "warning")
        line.display = True
        if self._notice_timer is not None:
            self._notice_timer.stop()
        wait = timeout if timeout is not None else self.app.NOTIFICATION_TIMEOUT
        self._notice_timer = self.set_timer(max(wait, 8.0), self._clear_notice)

    def _clear_notice(self) -> None:
        self._notice_timer = None
        self.query_one("#arena-notice", Static).display = False

    def on_mount(self) -> None:
        self._show_head()
        self._show_titles()
        self.prompt.focus()
        if self.one_at_a_time:
            for side in self.sides:
                self.pane_of(side.index).set_status(
                    "loads when a prompt is sent (one model at a time)"
                )
            return
        for side in self.sides:
            side.load()
            self.pane_of(side.index).set_status("loading…")

    def on_unmount(self) -> None:
        for side in self.sides:
            side.shutdown()

    async def on_side_message(self, message: SideMessage) -> None:
        if not self.is_attached:
            return
        side = self.sides[message.side]
        event = message.event
        pane = self.pane_of(side.index)
        if isinstance(event, LoadProgress):  # a stage may name the engine: not when blind
            if self.battle.revealed:
                pane.set_status(f"loading: {event.stage}…")
            else:
                self._show_blind_loading()
        elif isinstance(event, ModelReady):
            self._ready(side, event)
        elif isinstance(event, LoadFailed):
            side.state = FAILED
            side.error = event.error.message
            pane.set_status(f"⚠ did not load: {event.error.message}")
            await self._load_failed(side, event)
        elif isinstance(event, ReplyDone):
            await self.round.finished(side, event)
        elif isinstance(event, ReplyFailed):
            await self.round.failed(side, event)
        elif isinstance(event, Notice):
            self._notice(f"Model {self.letter(side)}: {event.text}")

    def _notice(self, text: str) -> None:
        """A model's notice (its template, a context cut) may name it: held back until
        the names are shown."""
        if self.battle.revealed:
            self.notify(text, severity="warning")
        else:
            self.held_notices.append(text)

    def _ready(self, side: ArenaSide, event: ModelReady) -> None:
        side.state = READY
        side.info = event.info
        self.pane_of(side.index).transcript.reset_welcome()  # a failed load's words go
        for session in [self.battle.sessions[side.index]]:
            session.set_model(event.info)
        if self.battle.revealed:
            self.pane_of(side.index).set_status(self.ready_status(side.index))
        else:
            self._show_blind_loading()
        for notice in event.info.notices:
            self._notice(f"Model {self.letter(side)}: {notice}")
        self._show_titles()
        if not self._warned_identical and self.battle.identical:
            self._warned_identical = True
            self.notify(
                "Both sides run the same model on the same engine: the votes will only "
                "measure sampling. Give two models (or two engines) to compare them.",
                severity="warning",
                timeout=10,
            )

    async def _load_failed(self, side: ArenaSide, event: LoadFailed) -> None:
        # Its pane says why, in place of the "both models answer" card.
        self.pane_of(side.index).transcript.set_welcome(
            f"⚠ Model {self.letter(side)} did not load: {event.error.message}",
            how_to=event.error.hint or "",
        )
        self._show_blind_loading()
        other = self.sides[1 - side.index]
        keeps = "The other side stays usable; " if other.state != FAILED else ""
        self.notify(
            f"Model {self.letter(side)} did not load: {event.error.inline()}. "
            f"{keeps}votes need both models.",
            severity="error",
            timeout=12,
        )
        if side.stream.active:  # it was to answer the prompt sent meanwhile
            self.battle.sessions[side.index].drop_unanswered()
            await self.round.end_stream(side, "", f"⚠ {event.error.message}")
            self.round.after_reply(side)

    @on(Button.Pressed)
    async def _vote_button(self, event: Button.Pressed) -> None:
        if event.button.id and event.button.id.startswith("vote-"):
            await self.action_vote(event.button.id.removeprefix("vote-"))

    def _votes_now(self, key: str) -> bool:
        """Whether ``key`` is a vote now (else the input types it)."""
        return (
            key in VOTE_KEYS.values()
            and not self.prompt.text
            and self.battle.can_vote() is None
            and self.battle.vote is None
        )

    async def action_key_vote(self, vote: str) -> None:
        """A plain letter votes only in the empty input once both replies are in;
        otherwise it is typed as usual."""
        if not self._votes_now(VOTE_KEYS[vote]):
            raise SkipAction()
        await self.action_vote(vote)

    async def action_vote(self, vote: str) -> None:
        revealed = self.battle.revealed
        try:
            words = self.battle.cast(vote)
        except VoteRefused as refused:
            self.notify(str(refused), severity="warning")
            return
        if not revealed:  # the names, and the speeds and notices that were held back
            for text in self.held_notices:
                self.notify(text, severity="warning")
            self.held_notices = []
            for letter in LETTERS:
                await self.pane(letter).transcript.show(self.battle.session(letter).messages)
        self._show_titles()
        for side in self.sides:
            if side.info is not None and side.state == READY:  # its model and settings
                self.pane_of(side.index).set_status(self.ready_status(side.index))
        self.update_votes()
        self.prompt.focus()  # a vote by its button: typing goes on in the input
        names = " · ".join(f"{x}: {self.battle.name(x)}" for x in LETTERS)
        self.notify(f"Voted: {words}. {names}. You may change it until the next prompt.")

    async def action_new_battle(self) -> None:
        self.round.abandon()
        self.battle.save()
        self.battle = self._new_battle()
        for side in self.sides:  # a side that failed gets another try
            if side.state == FAILED and not self.one_at_a_time:
                side.load()
        for letter in LETTERS:
            await self.pane(letter).transcript.show([])
        for side in self.sides:
            state = {READY: "ready", LOADING: "loading…", FAILED: f"⚠ {side.error}"}
            self.pane_of(side.index).set_status(state.get(side.state, "idle"))
        self._show_head()
        self._show_titles()
        self.update_votes()
        self.prompt.focus()
        self.notify(f"Battle {self.battles}: a new pair of chats, in a new order.")

    def action_close(self) -> None:
        """Back to the chat when the arena was opened from it; else quit."""
        if len(self.app.screen_stack) > 2:
            self.dismiss(None)  # the chat's callback brings its list up to date
        else:
            self.app.exit(0)

    def action_results(self) -> None:
        from vicuna_tui.tui.screens.arena_results import ArenaResultsScreen

        self.app.push_screen(ArenaResultsScreen(self.store_calls))
