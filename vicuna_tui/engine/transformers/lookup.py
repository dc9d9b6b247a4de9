"""Draftless n-gram speculation on the transformers engine (prompt lookup decoding):
the draft is what followed the chat's last few tokens where they appeared before, and
the model checks the whole draft in one forward, keeping what it would have written.

Greedy, the reply is exactly the tokens the model's argmax picks; sampled, each drafted
token is kept with the probability the sampler gives it (``sampling.check_draft``), so
the reply is drawn from the same distribution.  The rejected part of a draft is cropped
from the KV cache.  Not for replies held to a schema or asked for probabilities.
"""

from __future__ import annotations

from typing import Protocol

from vicuna_tui.engine.drafting import AutoSwitch, DraftTally

NGRAM = 3  # tokens matched
MOST = 10  # most tokens drafted at a time


class Drafter(Protocol):
    """What guesses a reply's next tokens for the model to check: n-gram lookup here,
    or a draft model (``draft_model``)."""

    kind: str  # ngram or draft
    tally: DraftTally  # drafted and kept, and the text kept drafts wrote
    from_draft: bool  # the token just given out was a kept draft
    guard: AutoSwitch | None  # when set, drafting rests within the reply where it loses

    def add(self, token: int) -> None: ...

    def propose(self, room: int) -> list[int]: ...


class PromptLookup:
    """The chat's tokens so far and, for each run of NGRAM tokens, where it last ended.
    ``earlier``: a reply this one replaces, looked up too (before the chat, so that
    where both hold a run of tokens the chat's own continuation is drafted)."""

    kind = "ngram"

    def __init__(
        self, ids: list[int], earlier: list[int] | None = None, ngram: int = NGRAM, most: int = MOST
    ) -> None:
        self.ngram = ngram
        self.most = most
        self.context: list[int] = []
        self._follows: dict[tuple[int, ...], int] = {}
        self.tally = DraftTally()  # drafted and kept, and the text kept drafts wrote
        self.from_draft = False  # the token just given out was a kept draft
        self.guard: AutoSwitch | None = None
        for token in [*(earlier or []), *ids]:
            self.add(token)

    def add(self, token: int) -> None:
        at = len(self.context)
        if at >= self.ngram:
            self._follows[tuple(self.context[at - self.ngram : at])] = at
        self.context.append(token)

    def propose(self, room: int) -> list[int]:
        """Up to ``room`` (and MOST) tokens that followed the last NGRAM tokens before."""
        if room <= 0 or len(self.context) < self.ngram:
            return []
        start = self._follows.get(tuple(self.context[-self.ngram :]))
        if start is None:
            return []
        return self.context[start : start + min(self.most, room)]
