"""What speculative decoding did, as both local engines count it: during one reply the
tokens drafted and kept so far and the text the kept drafts wrote (``DraftTally``),
and over a load the rate to measure it against (``Baseline``).

llama.cpp says only how many drafted tokens it has kept so far, on each streamed
token, and sends a checked batch's tokens one after another, the kept drafts first,
then the model's own next token: when the count grows by k, the token it came with and
the k-1 after it are kept drafts.  The transformers engine knows each token's origin
and says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from vicuna_tui.engine.events import ReplyStats

MIN_TOKENS = 16  # a reply shorter than this says little about a rate


@dataclass
class DraftTally:
    drafted: int = 0
    accepted: int = 0
    spans: list[str] = field(default_factory=list)
    _coming: int = 0  # kept drafts still to be streamed (llama.cpp)
    _open: bool = False  # the last token came from a draft: the next kept one joins it

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
