"""One arena battle: two chats asked the same prompts, the order they are shown in,
and the user's vote.  UI-free: the TUI drives it and shows what it says.

The sides are numbered as given on the command line (0 and 1).  The pane on the left
is "Model A"; in a blind battle which side that is, is drawn at random, and the names
stay hidden until the vote.  A vote can be changed until the next prompt is sent.
Every battle is saved with both conversations (tagged with the run ``arena``), the
order shown, the vote and the settings.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from vicuna_tui.arena.ratings import VOTE_WORDS, VOTES
from vicuna_tui.engine.events import ChatRequest, ModelInfo
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.session import ChatSession
from vicuna_tui.store import ARENA_RUN, Battle, Store, StoreError, make_title, now

RUN = ARENA_RUN
LETTERS = ("A", "B")

# Hands a store job to whatever writes (at once, or on the TUI's store thread).
BattleWriter = Callable[[Callable[[Store], Any], Callable[[StoreError], None]], None]


def arena_name(info: ModelInfo) -> str:
    """A model's name on the leaderboard: the same weights on another engine or in
    another quantization are another contestant."""
    if info.backend == "remote":
        return info.name
    if info.engine == "llamacpp":
        return f"{info.name} (llama.cpp {info.quantization or 'gguf'})"
    quant = f" {info.quantization}" if info.quantization else ""
    return f"{info.name} (transformers {info.dtype}{quant})"


def setting_words(
    gen: GenerationSettings, template: str, system_message: str | None
) -> dict[str, str]:
    """A side's sampling, reply length, template (as asked for: "auto" follows each
    model) and system message, in words."""
    return {
        "temperature": f"{gen.temperature:g}",
        "top-p": f"{gen.top_p:g}",
        "top-k": str(gen.top_k) if gen.top_k else "off",
        "repetition penalty": f"{gen.repetition_penalty:g}",
        "max new tokens": str(gen.max_new_tokens),
        "seed": "random" if gen.seed is None else str(gen.seed),
        "stop strings": ", ".join(repr(s) for s in gen.stop) or "none",
        "template": template,
        "system message": "the template's" if system_message is None else repr(system_message[:40]),
    }


def differences(
    first: dict[str, str], second: dict[str, str], names: tuple[str, str] = ("A", "B")
) -> list[str]:
    """Each setting two sides do not share, as "max new tokens: A 80, B 60"."""
    return [
        f"{name}: {names[0]} {first[name]}, {names[1]} {second[name]}"
        for name in first
        if first[name] != second[name]
    ]


class ArenaBattle:
    def __init__(
        self,
        sessions: Sequence[ChatSession],
        *,
        blind: bool = True,
        swapped: bool | None = None,
        writer: BattleWriter | None = None,
        settings: dict[str, Any] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if len(sessions) != 2:
            raise ValueError("a battle has two sides")
        self.sessions = tuple(sessions)
        self.blind = blind
        self.swapped = (rng or random.SystemRandom()).random() < 0.5 if swapped is None else swapped
        self.id = secrets.token_hex(8)
        self.vote: str | None = None
        self.voted_at: str | None = None
        self.locked = False  # a prompt was sent after the vote
        self.turns = 0
        self.settings = settings or {}
        self._writer = writer
        self._created_at = ""

    # -- who is shown where ------------------------------------------------------------

    def side_of(self, letter: str) -> int:
        """The side (0: the first model given) shown as ``letter`` ("A" or "B")."""
        shown_first = 1 if self.swapped else 0
        return shown_first if letter == "A" else 1 - shown_first

    def session(self, letter: str) -> ChatSession:
        return self.sessions[self.side_of(letter)]

    def name(self, letter: str) -> str:
        info = self.session(letter).model_info
        return arena_name(info) if info is not None else "(not loaded)"

    @property
    def revealed(self) -> bool:
        return not self.blind or self.vote is not None

    def title(self, letter: str) -> str:
        """The pane's title: "Model A", and the model's name once it may be known."""
        if not self.revealed:
            return f"Model {letter}"
        return f"Model {letter} · {self.name(letter)}"

    @property
    def identical(self) -> bool:
        """Both sides run the same model the same way (votes then only weigh sampling)."""
        first, second = (s.model_info for s in self.sessions)
        return first is not None and second is not None and arena_name(first) == arena_name(second)

    def settings_shown(self, letter: str) -> dict[str, str]:
        """What shapes the replies of the side shown as ``letter``, in words."""
        session = self.session(letter)
        return setting_words(session.generation, session.template, session.system_message)

    def differences(self) -> list[str]:
        """Each setting the two sides do not share, as "max new tokens: A 80, B 60"."""
        return differences(self.settings_shown("A"), self.settings_shown("B"))

    def describe_settings(self, letter: str) -> str:
        """The side's settings in one short line (those at their usual values left out
        but temperature, length and template)."""
        shown = self.settings_shown(letter)
        session = self.session(letter)
        if session.template == "auto" and session.model_info is not None:
            shown["template"] = f"{session.resolved_template} (auto)"
        usual = {"top-p": "1", "top-k": "off", "repetition penalty": "1", "seed": "random"}
        usual |= {"stop strings": "none", "system message": "the template's"}
        parts = [f"{name} {value}" for name, value in shown.items() if usual.get(name) != value]
        return " · ".join(parts)

    # -- the prompt and the vote ---------------------------------------------------------

    def ask(self, text: str, letters: Sequence[str] = LETTERS) -> dict[str, ChatRequest]:
        """The same prompt to each side in ``letters`` (a side that failed to load is
        left out); the vote given so far is final from now on."""
        if self.vote is not None:
            self.locked = True
        if self.turns == 0:
            for letter in letters:
                session = self.session(letter)
                session.join_run(RUN, f"{make_title(text, 48)} · arena {letter}")
        self.turns += 1
        requests = {letter: self.session(letter).add_user(text) for letter in letters}
        self.save()
        return requests

    def can_vote(self) -> str | None:
        """Why a vote cannot be given now, or None when it can."""
        if any(s.model_info is None for s in self.sessions):
            return "A vote needs both models, and one of them is not loaded."
        if self.turns == 0:
            return "Send a prompt first: the vote compares the two replies."
        if self.locked:
            return (
                "This battle's vote is final (a prompt was sent after it): "
                "Ctrl+N starts a new battle."
            )
        if any(s.awaiting_reply for s in self.sessions if s.model_info is not None):
            return "Wait for both replies (Esc stops them), then vote."
        return None

    def cast(self, vote: str) -> str:
        """Record (or change) the vote; returns what was recorded, in words."""
        if vote not in VOTES:
            raise ValueError(f"unknown vote {vote!r}")
        why = self.can_vote()
        if why is not None:
            raise VoteRefused(why)
        self.vote = vote
        self.voted_at = now()
        self.save()
        return VOTE_WORDS[vote]

    # -- the store -------------------------------------------------------------------------

    def record(self) -> Battle:
        conversation = [self.session(letter).conversation for letter in LETTERS]
        return Battle(
            id=self.id,
            model_a=self.name("A"),
            model_b=self.name("B"),
            conversation_a=conversation[0].id if conversation[0] else None,
            conversation_b=conversation[1].id if conversation[1] else None,
            blind=self.blind,
            swapped=self.swapped,
            turns=self.turns,
            vote=self.vote,
            voted_at=self.voted_at,
            settings=dict(self.settings),
            created_at=self._created_at,
        )

    def save(self) -> None:
        """Hand the battle's row to the writer (after both chats' own writes)."""
        if self._writer is None or any(s.model_info is None for s in self.sessions):
            return  # a battle is a battle only when both models answer
        record = self.record()
        self._created_at = record.created_at = self._created_at or now()

        def failed(error: StoreError) -> None:
            self.sessions[0].writes.state.failed(error)  # said once, not per side

        self._writer(lambda store: store.battles.save(record), failed)


class VoteRefused(Exception):
    """A vote given when it cannot count; the message says why and what to do."""
