"""Speculative decoding's rules and counts, the same on both local engines: a draft
model must share the model's vocabulary (``check_vocabulary``); during one reply the
tokens drafted and kept so far and the text the kept drafts wrote (``DraftTally``);
over a load the rate to measure it against (``Baseline``); and ``auto``'s decision
for a chat (``AutoSwitch``).

llama.cpp says only how many drafted tokens it has kept so far, on each streamed
token, and sends a checked batch's tokens one after another, the kept drafts first,
then the model's own next token: when the count grows by k, the token it came with and
the k-1 after it are kept drafts.  The transformers engine knows each token's origin
and says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Protocol

from vicuna_tui.engine.events import ReplyStats
from vicuna_tui.errors import ModelNotFoundError, SettingsError, VicunaError

MIN_TOKENS = 16  # a reply shorter than this says little about a rate

# auto's rule, judged on the first reply written with speculation that has MIN_TOKENS
# new tokens: a draft model is off when fewer than MIN_USEFUL of the reply's tokens came
# from its drafts (a draft that guesses nothing still runs at every step, and is often
# too unsure to draft at all); either mode is off when, over MIN_DRAFTED drafted tokens,
# fewer than MIN_ACCEPTED were kept, or when it decoded slower than PAYS of the baseline
# (the reply before, written without it: ReplyStats.baseline_rate).
MIN_USEFUL = 0.2
MIN_DRAFTED = 16
MIN_ACCEPTED = 0.3
PAYS = 0.95
VOCAB_SLACK = 128  # llama.cpp's own: the vocabularies may differ in size by this much


def draft_not_found(exc: VicunaError) -> ModelNotFoundError:
    """A draft model that cannot be had, told as the draft (with the draft's flags)."""
    hint = (exc.hint or "").replace("--gguf-file", "--draft-gguf-file")
    return ModelNotFoundError(
        f"the draft model: {exc.message}", hint.replace("--model-path", "--draft-model")
    )


class Tokens(Protocol):
    """A vocabulary: each token's string by its id."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> str: ...


def check_vocabulary(target: str, target_tokens: Tokens, draft: str, draft_tokens: Tokens) -> None:
    """Refuse a draft model whose vocabulary is not the model's: its tokens would mean
    other text, and every draft would be rejected (or worse, llama.cpp refuses late)."""
    size = abs(len(target_tokens) - len(draft_tokens))
    differ = []
    for index in range(min(len(target_tokens), len(draft_tokens))):
        if target_tokens[index] != draft_tokens[index]:
            differ.append(index)
            if len(differ) == 3:
                break
    if size <= VOCAB_SLACK and not differ:
        return
    if differ:
        shown = ", ".join(f"#{i} {target_tokens[i]!r} against {draft_tokens[i]!r}" for i in differ)
        what = f"their tokens differ ({shown})"
    else:
        what = f"it has {len(draft_tokens)} tokens, the model {len(target_tokens)}"
    raise SettingsError(
        f"the draft model {draft} does not share {target}'s vocabulary: {what}",
        "pick a draft from the same family (the same tokenizer), or use --speculate "
        "ngram, which needs no draft model",
    )


def described(kind: str, draft: str | None) -> str | None:
    """How the status bar and the saved replies name what drafts: "ngram", "draft
    x.gguf" (``draft``: the draft model's name), None for nothing."""
    if kind == "ngram":
        return "ngram"
    if kind == "draft" and draft is not None:
        return f"draft {draft}"
    return None


def speculation_state(kind: str, draft: str | None, auto: AutoSwitch | None) -> str | None:
    """The model's speculation as its info says it: what drafts now (``kind``), or
    auto's state."""
    shown = described(kind, draft)
    if auto is None:
        return shown
    if auto.decided and not auto.on:
        return "speculation off (auto)"
    return shown or "auto (from the second reply)"


PAUSE = 32  # tokens drafting first rests within a reply after it lost (then twice as long)


@dataclass
class Pacing:
    """Within one reply, where drafting can stop at any token (transformers): each
    time the counts since it last began fail ``guard``'s rules (``AutoSwitch.losing``),
    drafting rests for PAUSE tokens, then tries again with fresh counts; each time it
    loses again it rests twice as long.  A reply that strays from what could be copied
    costs little; one that comes back to repeating itself (a list, a loop) drafts
    again.  No guard: it always drafts."""

    guard: AutoSwitch | None
    _began: tuple[int, int, int] = (0, 0, 0)  # written, drafted, kept when it began
    _rest_until: int = 0
    _rest: int = PAUSE

    def drafts_now(self, written: int, tally: DraftTally) -> bool:
        if self.guard is None:
            return True
        if written < self._rest_until:
            return False
        began_at, drafted, kept = self._began
        lost = self.guard.losing(written - began_at, tally.drafted - drafted, tally.accepted - kept)
        if lost:
            self._rest_until = written + self._rest
            self._rest *= 2
            self._began = (self._rest_until, tally.drafted, tally.accepted)
        return not lost


@dataclass
class DraftTally:
    drafted: int = 0
    accepted: int = 0
    spans: list[str] = field(default_factory=list)
    _coming: int = 0  # kept drafts still to be streamed (llama.cpp)
    _open: bool = False  # the last token came from a draft: the next kept one joins it

    def checked(self, drafted: int, kept: int) -> None:
        """One draft checked (transformers): ``drafted`` tokens, ``kept`` of them."""
        self.drafted += drafted
        self.accepted += kept

    def counts(self, drafted: int, accepted: int) -> None:
        """llama.cpp's running counts, as a streamed token carries them."""
        self._coming += max(0, accepted - self.accepted)
        self.drafted, self.accepted = max(self.drafted, drafted), max(self.accepted, accepted)

    def token(self, text: str, from_draft: bool | None = None) -> None:
        """One streamed token's text; ``from_draft`` None: as llama.cpp's counts say."""
        if from_draft is None:
            from_draft = self._coming > 0
            self._coming = max(0, self._coming - 1)
        if not from_draft:
            self._open = False
        elif self._open:
            self.spans[-1] += text
        else:
            self.spans.append(text)
            self._open = True

    def live(self) -> tuple[int | None, int | None]:
        """The counts a streamed piece of the reply carries (None: nothing drafted)."""
        return (self.drafted, self.accepted) if self.drafted else (None, None)

    def into(self, stats: ReplyStats) -> ReplyStats:
        return dataclasses.replace(
            stats,
            drafted=self.drafted,
            accepted=self.accepted,
            kept_spans=tuple(span for span in self.spans if span.strip()),
        )


@dataclass
class Baseline:
    """The decode rate of the last reply of a load written without speculation (or,
    where drafting costs nothing while it finds nothing to draft, as n-gram lookup
    does, one that drafted nothing)."""

    rate: float | None = None

    def after(self, stats: ReplyStats, *, idle_drafting_free: bool) -> ReplyStats:
        """The reply's stats with the rate to compare it with; it becomes the new
        baseline when it was written without speculation."""
        shown = dataclasses.replace(stats, baseline_rate=self.rate)
        unspeculated = stats.speculation is None or (idle_drafting_free and not stats.drafted)
        if unspeculated and stats.new_tokens >= MIN_TOKENS and stats.tokens_per_second:
            self.rate = stats.tokens_per_second
        return shown


@dataclass
class AutoSwitch:
    """auto's decision for one chat: a reply without speculation (the baseline),
    then one with it, then whether speculation stays (``decided``)."""

    kind: str  # what speculates when on: ngram or draft
    decided: bool = False
    on: bool = False

    def losing(self, written: int, drafted: int, accepted: int) -> bool:
        """During a reply, where drafting can stop at any token (transformers): the
        counts so far already fail the rule below, so drafting stops for the rest of
        the reply (and the reply's counts then turn it off for the chat).  A draft
        model is judged from the reply's MIN_TOKENS-th token; n-gram drafts as soon as
        MIN_DRAFTED were checked (each failed one costs a wider forward)."""
        if self.kind == "draft":
            if written < MIN_TOKENS:
                return False
            if accepted < MIN_USEFUL * written:
                return True
        return drafted >= MIN_DRAFTED and accepted < MIN_ACCEPTED * drafted

    def after_reply(self, stats: ReplyStats) -> tuple[bool | None, str]:
        """After a reply: (turn speculation on/off for the next reply, or None to keep
        it as it is; why, for the user, when it goes off)."""
        if self.decided or stats.new_tokens < MIN_TOKENS:
            return None, ""  # decided, or too short to tell anything
        rate = stats.tokens_per_second
        if not self.on:
            if not rate:
                return None, ""
            self.on = True
            return True, ""
        drafted, accepted = stats.drafted or 0, stats.accepted or 0
        why = ""
        if self.kind == "draft" and accepted < MIN_USEFUL * stats.new_tokens:
            why = (
                f"{accepted} of the reply's {stats.new_tokens} tokens came from the draft "
                f"model's guesses (it pays from about {MIN_USEFUL:.0%})"
            )
        elif drafted < MIN_DRAFTED:
            return None, ""  # n-gram: nothing repeated yet, and it costs nothing idle
        elif accepted < MIN_ACCEPTED * drafted:
            why = (
                f"it kept {accepted} of {drafted} drafted tokens ({accepted / drafted:.0%}; "
                f"it pays from about {MIN_ACCEPTED:.0%})"
            )
        elif rate and stats.baseline_rate and rate < PAYS * stats.baseline_rate:
            why = (
                f"it decoded {rate:.1f} tok/s against {stats.baseline_rate:.1f} without it (it "
                f"kept {accepted / drafted:.0%} of its drafts, but drafting cost more than "
                "it saved)"
            )
        self.decided = True
        if not why:
            return None, ""
        self.on = False
        return False, f"speculation is off for this chat: {why}"
