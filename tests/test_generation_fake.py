"""The engine's decode loop on a scripted fake model: stops, UTF-8, cancel, limits."""

from __future__ import annotations

import threading

import pytest
from helpers import EOS, fake_loaded, script_text

from vicuna_tui.engine.events import (
    ChatRequest,
    ReplyDelta,
    ReplyDone,
    ReplyStarted,
)
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.engine.transformers.backend import LocalBackend
from vicuna_tui.errors import PromptTooLongError

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=64)


def make(script: list[int], **kwargs: object) -> LocalBackend:
    backend = LocalBackend(LoadSettings())
    backend.attach(fake_loaded(script, **kwargs))  # type: ignore[arg-type]
    # The fake answers one scripted token per forward, so the prompt is read in one
    # forward here (test_real_model checks reading it in chunks).
    backend.prefill_chunk = 10**6
    return backend


def run(
    backend: LocalBackend,
    text: str = "hi",
    gen: GenerationSettings = GREEDY,
    template: str = "vicuna_v1.1",
    cancel: threading.Event | None = None,
    turns: tuple[tuple[str, str], ...] | None = None,
) -> tuple[list[str], ReplyDone]:
    request = ChatRequest(turns=turns or (("user", text),), generation=gen, template=template)
    deltas: list[str] = []
    done = None
    for event in backend.generate(request, cancel or threading.Event()):
        if isinstance(event, ReplyDelta):
            deltas.append(event.text)
        elif isinstance(event, ReplyDone):
            done = event
    assert done is not None
    return deltas, done


def test_eos_stops_and_is_not_shown() -> None:
    deltas, done = run(make([*script_text("Paris."), EOS]))
    assert "".join(deltas) == "Paris."
    assert done.finish_reason == "stop"
    assert done.stats.new_tokens == 7


def test_template_stop_string_split_across_tokens() -> None:
    # one_shot stops at "###"; the model writes it one byte at a time.
    deltas, done = run(make(script_text("Paris.\n### Human: next")), template="one_shot")
    assert "".join(deltas) == "Paris.\n"
    assert "#" not in "".join(deltas)
    assert done.finish_reason == "stop"
    assert done.text == "Paris."  # trailing whitespace is trimmed from the saved reply


def test_user_stop_strings() -> None:
    gen = GenerationSettings(temperature=0.0, max_new_tokens=64, stop=("END",))
    _deltas, done = run(make(script_text("one two END three")), gen=gen)
    assert done.text == "one two"


def test_emoji_and_cjk_stream_as_whole_characters() -> None:
    deltas, done = run(make([*script_text("中文 😀!"), EOS]))
    assert done.text == "中文 😀!"
    assert all("\ufffd" not in d for d in deltas)
    assert "😀" in deltas


def test_max_new_tokens_gives_length() -> None:
    gen = GenerationSettings(temperature=0.0, max_new_tokens=5)
    _deltas, done = run(make(script_text("abcdefghij")), gen=gen)
    assert done.text == "abcde"
    assert done.finish_reason == "length"


def test_cancel_takes_effect_within_one_token() -> None:
    backend = make(script_text("x" * 50))
    cancel = threading.Event()
    request = ChatRequest(turns=(("user", "hi"),), generation=GREEDY, template="vicuna_v1.1")
    seen = 0
    done = None
    for event in backend.generate(request, cancel):
        if isinstance(event, ReplyDelta):
            seen += 1
            if seen == 3:
                cancel.set()
        if isinstance(event, ReplyDone):
            done = event
    assert done is not None
    assert done.finish_reason == "cancelled"
    assert done.text == "xxx"
    model = backend._loaded.model
    assert model.calls == 3  # no forward pass after the cancel


def test_prompt_too_long_is_a_clear_error() -> None:
    backend = make([EOS], context=64)
    with pytest.raises(PromptTooLongError, match="this model's context holds 64"):
        run(backend, text="x" * 200)


def test_oldest_turns_are_dropped_to_fit() -> None:
    backend = make([EOS], context=600)
    history = []
    for i in range(6):
        history += [("user", f"question {i} " + "q" * 30), ("assistant", "answer " + "a" * 30)]
    turns = (*history, ("user", "last question"))
    gen = GenerationSettings(temperature=0.0, max_new_tokens=20)
    request = ChatRequest(turns=tuple(turns), generation=gen, template="vicuna_v1.1")
    prepared = backend.prepare(request)
    assert prepared.dropped_turns > 0
    assert len(prepared.ids) + 20 <= 600
    assert prepared.text.startswith("A chat between")  # the system message stays
    assert prepared.text.endswith("USER: last question ASSISTANT:")
    kept = 6 - prepared.dropped_turns
    assert kept > 0
    assert f"question {6 - kept}" in prepared.text
    assert f"question {5 - kept}" not in prepared.text
    events = list(backend.generate(request, threading.Event()))
    started = next(e for e in events if isinstance(e, ReplyStarted))
    assert started.dropped_turns == prepared.dropped_turns


def test_kv_cache_feeds_only_new_tokens() -> None:
    backend = make([*script_text("ok"), EOS, *script_text("fine"), EOS])
    _, first = run(backend, "hi")
    _, second = run(backend, turns=(("user", "hi"), ("assistant", "ok"), ("user", "more")))
    assert first.stats.cached_tokens == 0
    assert second.stats.cached_tokens > 0
    fed = backend._loaded.model.fed
    # The second prompt's first forward pass fed only what the cache did not hold.
    second_prefill = fed[first.stats.new_tokens]
    assert len(second_prefill) == second.stats.prompt_tokens - second.stats.cached_tokens
