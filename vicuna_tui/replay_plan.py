"""Replaying a saved conversation through the current model: the plan and the run,
with no UI (the ``replay`` command and the TUI both drive a ``ReplayRun``).

A conversation replay sends the saved user turns, in order, as a new branch of the
conversation (``ChatSession.branch_for_replay``), or as a new conversation linked to
the original (``replay_of``).  Unless told otherwise it reuses each saved
reply's seed, so with the same model and settings (or greedy decoding) the replies
come out exactly as saved.  ``compare`` pairs old and new replies with a word diff.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field

from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.errors import SettingsError
from vicuna_tui.store import Conversation, SavedMessage


@dataclass(frozen=True)
class ReplayStep:
    prompt: str
    old: SavedMessage | None


def steps(conv: Conversation) -> list[ReplayStep]:
    """Each user message with the reply saved after it (if any)."""
    out = []
    messages = conv.messages
    for index, message in enumerate(messages):
        if message.role != "user":
            continue
        nxt = messages[index + 1] if index + 1 < len(messages) else None
        out.append(ReplayStep(message.content, nxt if nxt and nxt.role == "assistant" else None))
    return out


def settings_for(
    step: ReplayStep, base: GenerationSettings, *, reuse_seeds: bool
) -> GenerationSettings:
    """The saved reply's seed, when the run has none of its own and sampling is on."""
    if reuse_seeds and base.seed is None and step.old is not None and step.old.seed is not None:
        return dataclasses.replace(base, seed=step.old.seed)
    return base


@dataclass(frozen=True)
class Comparison:
    prompt: str
    old: str | None
    new: str
    identical: bool
    diff: list[tuple[str, str]]  # (op, words): op is "=", "-" or "+"


def compare(prompt: str, old: str | None, new: str) -> Comparison:
    if old is None:
        return Comparison(prompt, None, new, False, [("+", new)])
    a, b = old.split(" "), new.split(" ")
    ops: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(("=", " ".join(a[i1:i2])))
        else:
            if i2 > i1:
                ops.append(("-", " ".join(a[i1:i2])))
            if j2 > j1:
                ops.append(("+", " ".join(b[j1:j2])))
    return Comparison(prompt, old, new, old == new, ops)


def side_by_side(comparison: Comparison, width: int = 100) -> list[str]:
    """Old and new reply in two columns (plain text)."""
    import textwrap

    column = max(20, (width - 3) // 2)
    left = textwrap.wrap(comparison.old or "(no saved reply)", column) or [""]
    right = textwrap.wrap(comparison.new, column) or [""]
    rows = max(len(left), len(right))
    left += [""] * (rows - len(left))
    right += [""] * (rows - len(right))
    return [f"{a:<{column}} │ {b}" for a, b in zip(left, right, strict=True)]


def inline_diff(comparison: Comparison) -> str:
    """A word diff: [-removed-] {+added+}."""
    parts = []
    for op, words in comparison.diff:
        parts.append(words if op == "=" else f"[-{words}-]" if op == "-" else f"{{+{words}+}}")
    return " ".join(p for p in parts if p)


@dataclass
class ReplayRun:
    """A replay in progress: which turn is next, with what settings, and how each went."""

    original: Conversation
    base: GenerationSettings
    reuse_seeds: bool = True
    plan: list[ReplayStep] = field(init=False)
    comparisons: list[Comparison] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.plan = steps(self.original)
        if not self.plan:
            raise SettingsError(
                f"conversation {self.original.short_id} has no user messages",
                "pick another with `vicuna-tui sessions list`",
            )

    @property
    def current(self) -> ReplayStep | None:
        """The turn to send next; None when every turn has been sent."""
        index = len(self.comparisons)
        return self.plan[index] if index < len(self.plan) else None

    def settings(self) -> GenerationSettings:
        """The sampling settings for the current turn (its saved seed, unless told not)."""
        step = self.current
        assert step is not None, "the replay is over"
        return settings_for(step, self.base, reuse_seeds=self.reuse_seeds)

    def record(self, new_text: str) -> Comparison:
        """The reply the current turn got now; moves on to the next turn."""
        step = self.current
        assert step is not None, "the replay is over"
        comparison = compare(step.prompt, step.old.content if step.old else None, new_text)
        self.comparisons.append(comparison)
        return comparison

    @property
    def identical(self) -> int:
        return sum(c.identical for c in self.comparisons)
