"""Sampling on the local backend: transformers' own logits processors, so that the
settings mean what they mean in ``generate()``, and the choice of the next token."""

from __future__ import annotations

from typing import Any

from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.engine.transformers.grammar import HeldOutput


def processors(gen: GenerationSettings) -> Any:
    """transformers' own logits processors, so sampling means what it means in generate()."""
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    procs = LogitsProcessorList()
    if gen.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(gen.repetition_penalty))
    if not gen.greedy:
        if gen.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(gen.temperature))
        if gen.top_k > 0:
            procs.append(TopKLogitsWarper(gen.top_k))
        if gen.top_p < 1.0:
            procs.append(TopPLogitsWarper(gen.top_p))
    return procs if len(procs) else None


def draw(
    logits: Any,
    procs: Any,
    history: Any,
    gen: GenerationSettings,
    generator: Any,
    held: HeldOutput | None = None,
) -> int:
    """The next token: the sampler's processors over ``logits``, then what ``held``
    (a schema or grammar) allows, then the draw."""
    sampled = procs(history, logits) if procs else logits
    if held is not None:
        sampled = held.mask(sampled)
    token = next_token(sampled, gen, generator)
    if held is not None:
        held.accept(token)
    return token


def next_token(logits: Any, gen: GenerationSettings, generator: Any) -> int:
    """The argmax when greedy, else a draw from the softmax (seeded by ``generator``)."""
    import torch

    if gen.greedy:
        return int(torch.argmax(logits, dim=-1).item())
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def check_draft(
    logits: Any, procs: Any, history: Any, gen: GenerationSettings, generator: Any, drafted: int
) -> tuple[bool, int]:
    """Speculative sampling at one position of a draft (a drafted token that was
    certain to be guessed: n-gram lookup, or a draft model's argmax): ``drafted`` is
    kept with the probability the sampler gives it, else a token is drawn from the
    sampler's distribution without it.  Each token comes with exactly the sampler's own
    probability, as without a draft.  Greedy: kept when it is the argmax.  Returns
    (kept, the token written here)."""
    import torch

    sampled = procs(history, logits) if procs else logits
    if gen.greedy:
        token = int(torch.argmax(sampled, dim=-1).item())
        return token == drafted, token
    probs = torch.softmax(sampled, dim=-1)[0]
    chance = float(probs[drafted])
    roll = float(torch.rand(1, generator=generator, device=probs.device).item())
    if roll < chance:
        return True, drafted
    rest = probs.clone()
    rest[drafted] = 0.0
    if float(rest.sum()) <= 0.0:  # the sampler allows nothing else
        return True, drafted
    return False, int(torch.multinomial(rest, 1, generator=generator).item())


# A written token's id, its log-probability, and the likeliest ids with theirs.
Chosen = tuple[int, float, list[int], list[float]]


def logprobs_of(logits: Any, token: int, count: int) -> Chosen:
    """``token``'s log-probability under ``logits`` (the model's own, before the
    sampler), and the ``count`` most likely tokens' ids and log-probabilities."""
    import torch

    logp = torch.log_softmax(logits[0], dim=-1)
    top = torch.topk(logp, count)
    return token, float(logp[token]), top.indices.tolist(), top.values.tolist()
