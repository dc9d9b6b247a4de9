"""The engine on the real SmolLM2-135M-Instruct model (CPU), loaded once per session."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from helpers import ask

from vicuna_tui.engine.events import ChatRequest, PrefillProgress, ReplyDone, ReplyStarted
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.engine.transformers.backend import LocalBackend

pytestmark = pytest.mark.real_model


def test_capital_of_france_is_paris(backend: LocalBackend) -> None:
    done, deltas, _ = ask(backend, (("user", "What is the capital of France?"),))
    assert "Paris" in done.text
    assert done.finish_reason == "stop"
    assert "".join(deltas).rstrip() == done.text
    assert len(deltas) > 3  # streamed, not delivered at once
    stats = done.stats
    assert stats.prompt_tokens > 10
    assert stats.time_to_first_token is not None and stats.time_to_first_token > 0
    assert stats.tokens_per_second is not None and stats.tokens_per_second > 0


def test_same_seed_same_reply(backend: LocalBackend) -> None:
    gen = GenerationSettings(temperature=1.0, top_p=0.95, max_new_tokens=30, seed=1234)
    turns = (("user", "Write one sentence about the sea."),)
    first, _, _ = ask(backend, turns, gen)
    backend.reset_cache()
    second, _, _ = ask(backend, turns, gen)
    assert first.text == second.text
    assert first.stats.seed == 1234


def test_unseeded_replies_record_a_seed_that_reproduces_them(backend: LocalBackend) -> None:
    gen = GenerationSettings(temperature=1.0, max_new_tokens=20)
    turns = (("user", "Name a colour."),)
    first, _, _ = ask(backend, turns, gen)
    assert first.stats.seed is not None
    again, _, _ = ask(backend, turns, dataclasses.replace(gen, seed=first.stats.seed))
    assert again.text == first.text


def test_cancel_keeps_the_partial_reply(backend: LocalBackend) -> None:
    gen = GenerationSettings(temperature=0.0, max_new_tokens=200)
    done, deltas, _ = ask(
        backend, (("user", "Tell me a long story about a dragon."),), gen, cancel_after=3
    )
    assert done.finish_reason == "cancelled"
    assert done.text == "".join(deltas)
    assert len(deltas) == 3  # stopped within one token of the cancel
    assert done.stats.new_tokens <= 4


def test_long_history_is_truncated_to_the_context(backend: LocalBackend) -> None:
    original = backend._info
    assert original is not None
    backend._info = dataclasses.replace(original, context_length=300)
    history: list[tuple[str, str]] = []
    for i in range(8):
        history += [
            ("user", f"Remember the number {i}. " + "Please. " * 5),
            ("assistant", f"I will remember {i}."),
        ]
    turns = (*history, ("user", "What is the capital of France?"))
    gen = GenerationSettings(temperature=0.0, max_new_tokens=30)
    try:
        prepared = backend.prepare(ChatRequest(turns=turns, generation=gen))
        done, _, started = ask(backend, turns, gen)
    finally:
        backend._info = original
    assert started.dropped_turns == prepared.dropped_turns > 0
    assert started.prompt_tokens + 30 <= 300
    # Whole oldest turns went; the newest stayed, and so did the system prompt.
    assert "number 7" in prepared.text and "number 0" not in prepared.text
    assert prepared.text.rstrip().endswith(
        "What is the capital of France?<|im_end|>\n<|im_start|>assistant"
    )
    assert prepared.text.startswith("<|im_start|>system")
    assert done.finish_reason in ("stop", "length") and done.text
    assert done.stats.dropped_turns == started.dropped_turns


def test_kv_cache_reuse_gives_the_same_tokens_as_a_fresh_prefill(backend: LocalBackend) -> None:
    questions = ["What is the capital of France?", "And of Germany?", "Which one is bigger?"]

    def chat(reuse: bool) -> tuple[list[str], list[int]]:
        backend.reset_cache()
        turns: tuple[tuple[str, str], ...] = ()
        replies, cached = [], []
        for question in questions:
            if not reuse:
                backend.reset_cache()
            done, _, started = ask(backend, (*turns, ("user", question)))
            replies.append(done.text)
            cached.append(started.cached_tokens)
            turns = (*turns, ("user", question), ("assistant", done.text))
        return replies, cached

    fresh, fresh_cached = chat(reuse=False)
    reused, reused_cached = chat(reuse=True)
    assert reused == fresh
    assert fresh_cached == [0, 0, 0]
    assert reused_cached[0] == 0 and reused_cached[1] > 0 and reused_cached[2] > reused_cached[1]


def test_a_long_prompt_is_read_in_chunks_with_progress_and_the_same_reply(
    backend: LocalBackend,
) -> None:
    notes = " ".join(f"note {i}: the llama number {i} eats grass." for i in range(20))
    turns = (("user", f"{notes}\nWhat do the llamas eat?"),)
    gen = GenerationSettings(temperature=0.0, max_new_tokens=12)
    request = ChatRequest(turns=turns, generation=gen)
    default, chunk = backend.prefill_chunk, 128  # small chunks: a short prompt is enough
    backend.prefill_chunk = chunk
    try:
        events = list(backend.generate(request, threading.Event()))
    finally:
        backend.prefill_chunk = default
    progress = [e for e in events if isinstance(e, PrefillProgress)]
    total = next(e for e in events if isinstance(e, ReplyStarted)).prompt_tokens
    assert 2 * chunk + 1 < total < default  # chunked at 128, one forward at the default
    assert [p.done for p in progress] == list(range(chunk, total - 1, chunk))
    assert {p.total for p in progress} == {total}
    chunked = events[-1]
    assert isinstance(chunked, ReplyDone) and "grass" in chunked.text

    backend.reset_cache()
    whole = list(backend.generate(request, threading.Event()))  # one forward: 512 a chunk
    assert not any(isinstance(e, PrefillProgress) for e in whole)
    assert whole[-1].text == chunked.text  # type: ignore[union-attr]

    # Esc during the reading stops at the next chunk, before any token
    backend.reset_cache()
    cancel = threading.Event()
    stopped = []
    backend.prefill_chunk = chunk
    try:
        for event in backend.generate(request, cancel):
            stopped.append(event)
            if isinstance(event, PrefillProgress):
                cancel.set()
    finally:
        backend.prefill_chunk = default
    assert [type(e).__name__ for e in stopped] == ["ReplyStarted", "PrefillProgress", "ReplyDone"]
    last = stopped[-1]
    assert isinstance(last, ReplyDone) and last.finish_reason == "cancelled"


def test_fast_path_matches_plain_transformers_generate(
    backend: LocalBackend, smollm_dir: object
) -> None:
    """The engine (with its CPU fast path) gives the same greedy text as HF generate."""
    import torch
    from transformers import AutoModelForCausalLM

    assert getattr(backend._loaded.model, "_vicuna_fast_groups", None)  # the fast path is on
    plain = AutoModelForCausalLM.from_pretrained(str(smollm_dir), dtype=torch.float32).eval()
    tokenizer = backend._loaded.tokenizer
    for prompt in (
        "What is the capital of France?",
        "Write a haiku about the sea.",
        "Explain recursion in two sentences.",
    ):
        backend.reset_cache()
        done, _, _ = ask(
            backend, (("user", prompt),), GenerationSettings(temperature=0.0, max_new_tokens=48)
        )
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
        out = plain.generate(ids, max_new_tokens=48, do_sample=False)
        expected = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
        assert done.text == expected, prompt
