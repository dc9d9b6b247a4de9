"""What a token view shows of a reply: each token's probability, how sure the model
was, and what the sampler made of the alternatives.

Every local backend samples in transformers' order (temperature, then top-k, then
top-p; the llama.cpp backend asks for that order too), so one function says what the
sampler did on both.  The recorded log-probabilities are the model's own, before the
sampler; the vocabulary beyond the recorded alternatives is known only by its total
probability, so an "after" that depends on it is an estimate (``approximate``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from vicuna_tui.engine.events import TokenChoice, TokenLogprob
from vicuna_tui.engine.settings import GenerationSettings

# How sure the model was of a token it wrote, as the token view marks it.
SURE, LIKELY, UNSURE, UNLIKELY = "sure", "likely", "unsure", "unlikely"
UNLIKELY_BELOW = 0.10  # a token written at under 10%: marked (underlined) in every theme


def probability(logprob: float) -> float:
    return math.exp(logprob) if logprob > -745 else 0.0


def level(logprob: float) -> str:
    """How sure: ≥ 90% sure, ≥ 50% likely, ≥ 10% unsure, else unlikely."""
    p = probability(logprob)
    if p >= 0.9:
        return SURE
    if p >= 0.5:
        return LIKELY
    if p >= UNLIKELY_BELOW:
        return UNSURE
    return UNLIKELY


@dataclass(frozen=True)
class Alternative:
    """A token the model could have written: its probability under the model and after
    the sampler (0 when the sampler cut it, ``cut`` says by what)."""

    token: str
    before: float
    after: float
    cut: str = ""  # "", "greedy", "top-k" or "top-p"
    written: bool = False


@dataclass(frozen=True)
class SamplerEffect:
    alternatives: tuple[Alternative, ...]
    approximate: bool  # the rest of the vocabulary mattered and is estimated
    notes: tuple[str, ...] = ()


def sampler_effect(token: TokenLogprob, gen: GenerationSettings) -> SamplerEffect:
    """The recorded alternatives at ``token`` (the written one added when it is not
    among them), each with its probability before and after the sampler ``gen``."""
    choices: list[TokenChoice] = sorted(token.top, key=lambda c: -c.logprob)
    if not any(c.token == token.token for c in choices):
        choices.append(TokenChoice(token.token, token.logprob))
        choices.sort(key=lambda c: -c.logprob)
    before = [probability(c.logprob) for c in choices]
    notes = []
    if gen.repetition_penalty != 1.0:
        notes.append(f"the repetition penalty ({gen.repetition_penalty:g}) is not shown")
    if gen.greedy or not choices:
        after = [1.0 if i == 0 else 0.0 for i in range(len(choices))]
        cuts = ["" if i == 0 else "greedy" for i in range(len(choices))]
        return _effect(choices, token, before, after, cuts, False, notes)
    # The rest of the vocabulary: its total probability, in tokens no likelier than the
    # least likely one recorded; after a temperature its weight is estimated as if it
    # were all at that probability.
    rest = max(0.0, 1.0 - sum(before))
    floor = before[-1] if before[-1] > 0 else 1e-12
    power = 1.0 / gen.temperature
    weights = [p**power for p in before]
    rest_weight = rest * floor ** (power - 1.0) if rest > 0 else 0.0
    estimated = gen.temperature != 1.0
    cuts = [""] * len(choices)
    if gen.top_k > 0:
        for i in range(gen.top_k, len(choices)):
            cuts[i] = "top-k"
        if gen.top_k <= len(choices):
            rest_weight = 0.0  # the rest is beyond the k kept
    if gen.top_p < 1.0:
        # transformers' rule: a token stays while the tokens likelier than it hold less
        # than top_p of the probability (so the smallest set reaching top_p is kept).
        target = gen.top_p * (
            sum(w for w, c in zip(weights, cuts, strict=True) if not c) + rest_weight
        )
        ahead = 0.0
        for i, w in enumerate(weights):
            if cuts[i]:
                continue
            if ahead >= target:
                cuts[i] = "top-p"
            else:
                ahead += w
        trimmed = min(rest_weight, max(0.0, target - ahead))
        estimated = estimated or trimmed < rest_weight
        rest_weight = trimmed
    kept = sum(w for w, c in zip(weights, cuts, strict=True) if not c) + rest_weight
    after = [0.0 if c else w / kept for w, c in zip(weights, cuts, strict=True)]
    approximate = estimated and rest_weight > 0.01 * kept
    return _effect(choices, token, before, after, cuts, approximate, notes)


def _effect(
    choices: Sequence[TokenChoice],
    token: TokenLogprob,
    before: Sequence[float],
    after: Sequence[float],
    cuts: Sequence[str],
    approximate: bool,
    notes: list[str],
) -> SamplerEffect:
    return SamplerEffect(
        tuple(
            Alternative(c.token, b, a, cut, c.token == token.token)
            for c, b, a, cut in zip(choices, before, after, cuts, strict=True)
        ),
        approximate,
        tuple(notes),
    )


def saved_tokens(raw: object) -> tuple[TokenLogprob, ...] | None:
    """A reply's saved tokens (``TokenLogprob.compact`` items), or None when there are
    none or the record is damaged."""
    if not isinstance(raw, list) or not raw:
        return None
    try:
        return tuple(TokenLogprob.from_compact(item) for item in raw)
    except ValueError:
        return None
