"""KV-cache reuse across turns, and every way it must be invalidated (real model).

Each check answers a request twice, once on top of the cache left by the previous
turn and once after clearing it: the replies must be token for token the same, and
the cache must have been used only up to where the two prompts stop agreeing.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vicuna_tui.engine.events import ChatRequest, ReplyDone, ReplyStarted
from vicuna_tui.engine.prompting import common_prefix
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.engine.transformers.backend import LocalBackend
from vicuna_tui.session import ChatSession

pytestmark = pytest.mark.real_model
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=24)


def answer(backend: LocalBackend, request: ChatRequest) -> tuple[str, int]:
    events = list(backend.generate(request, threading.Event()))
    started = next(e for e in events if isinstance(e, ReplyStarted))
    done = events[-1]
    assert isinstance(done, ReplyDone)
    return done.text, started.cached_tokens


def check(backend: LocalBackend, request: ChatRequest) -> int:
    """Reply with the cache as it is; compare with a fresh prefill; return tokens reused."""
    previous_ids = list(backend.kv.ids)
    prompt_ids = backend.prepare(request).ids
    reused_text, cached = answer(backend, request)
    assert cached == min(common_prefix(previous_ids, prompt_ids), len(prompt_ids) - 1)
    backend.reset_cache()
    fresh_text, fresh_cached = answer(backend, request)
    assert fresh_cached == 0
    assert reused_text == fresh_text
    return cached


@pytest.fixture
def one_cache(backend: LocalBackend) -> Iterator[LocalBackend]:
    """The backend with its one cache only: the rules of reusing it (the spare that
    keeps the branch left is tested at the end)."""
    spare, backend._spare = backend._spare, None
    try:
        yield backend
    finally:
        backend._spare = spare
        backend.reset_cache()


@pytest.fixture
def session(one_cache: LocalBackend) -> ChatSession:
    backend = one_cache
    chat = ChatSession(None, generation=GREEDY)
    chat.set_model(backend.info)
    for question in ("What is the capital of France?", "And of Germany?"):
        request = chat.add_user(question)
        text, _ = answer(backend, request)
        chat.record_reply(text, "stop")
    return chat


def test_a_new_turn_reuses_the_whole_history(backend: LocalBackend, session: ChatSession) -> None:
    request = session.add_user("Which one is bigger?")
    history = backend.prepare(dataclasses.replace(request, turns=request.turns[:-1])).ids
    assert check(backend, request) >= len(history) - 8  # all but the re-rendered tail


def test_regenerate(backend: LocalBackend, session: ChatSession) -> None:
    request = session.regenerate()
    assert request is not None
    prompt = backend.prepare(request).ids
    reused = check(backend, request)
    assert 0 < reused <= len(prompt) - 1


def test_edit_the_last_message(backend: LocalBackend, session: ChatSession) -> None:
    before = backend.prepare(session.preview_request("And of Germany?")).ids
    request = session.edit_last("And of Italy?")
    assert request is not None
    after = backend.prepare(request).ids
    reused = check(backend, request)
    assert reused <= common_prefix(before, after) < len(after) - 2


def test_delete_the_last_turn(backend: LocalBackend, session: ChatSession) -> None:
    assert session.remove_last_turn()
    request = session.add_user("And of Spain?")
    assert check(backend, request) > 0


def test_context_truncation(backend: LocalBackend, session: ChatSession) -> None:
    original = backend._info
    assert original is not None
    request = session.add_user("Tell me about both cities.")
    full = backend.prepare(request).ids
    backend._info = dataclasses.replace(original, context_length=len(full) + 10)
    try:
        prepared = backend.prepare(request)
        assert prepared.dropped_turns > 0
        reused = check(backend, request)
    finally:
        backend._info = original
    assert reused == min(common_prefix(full, prepared.ids), len(prepared.ids) - 1)
    assert reused < len(prepared.ids) // 2  # only the system prompt survived


@pytest.mark.parametrize("change", ["template", "system_message"])
def test_template_and_system_prompt_changes(
    backend: LocalBackend, session: ChatSession, change: str
) -> None:
    if change == "template":
        session.update_settings(template="chatml")
    else:
        session.update_settings(system_message="You answer in one word.")
    request = session.add_user("And of Spain?")
    assert check(backend, request) < 10


def test_reloading_starts_with_an_empty_cache(smollm_dir: Path) -> None:
    fresh = LocalBackend(LoadSettings(model_path=str(smollm_dir), device="cpu"))
    fresh.load()
    try:
        request = ChatRequest(turns=(("user", "Hi"),), generation=GREEDY)
        _, cached = answer(fresh, request)
        assert cached == 0
    finally:
        fresh.unload()


def test_static_cache_gives_the_same_replies(backend: LocalBackend, smollm_dir: Path) -> None:
    """The --compile path's static KV cache (here without compiling) changes nothing."""
    static = LocalBackend(LoadSettings(model_path=str(smollm_dir), device="cpu"))
    static.load()
    static.use_static_cache(compile=False)
    try:
        turns: tuple[tuple[str, str], ...] = ()
        for question in (
            "What is the capital of France?",
            "And of Germany?",
            "Which one is bigger?",
        ):
            request = ChatRequest(turns=(*turns, ("user", question)), generation=GREEDY)
            expected, _ = answer(backend, request)
            got, cached = answer(static, request)
            assert got == expected
            if turns:
                assert cached > 0  # the static cache is reused across turns too
            turns = (*turns, ("user", question), ("assistant", got))
        # an edit: the stale positions past the shared prefix must not leak in
        edited = ChatRequest(turns=(*turns[:2], ("user", "And of Spain?")), generation=GREEDY)
        backend.reset_cache()
        expected, _ = answer(backend, edited)
        got, _ = answer(static, edited)
        assert got == expected
    finally:
        static.unload()


def test_compile_on_a_cpu_warns_that_it_is_slower(smollm_dir: Path) -> None:
    """--compile loads on a CPU (nothing is compiled before the first reply) and says
    why it should not be used there."""
    compiled = LocalBackend(LoadSettings(model_path=str(smollm_dir), device="cpu", compile=True))
    info = compiled.load()
    try:
        assert any("--compile is made for GPUs" in notice for notice in info.notices)
        assert info.context_length <= LocalBackend.STATIC_CAP
    finally:
        compiled.unload()


def test_the_fast_decode_step_and_growing_cache_give_the_same_replies(
    backend: LocalBackend,
) -> None:
    """The CPU fast path's own decode step and in-place KV cache, against transformers'
    forward and cache (torch.cat): the same replies over two turns and an edit."""
    model = backend._loaded.model
    real_step = model._vicuna_step
    assert real_step is not None  # SmolLM2 is a plain LLaMA: the check at load passed
    steps = 0

    def counting(token, cache):  # type: ignore[no-untyped-def]
        nonlocal steps
        steps += 1
        return real_step(token, cache)

    model._vicuna_step = counting
    replies: dict[tuple[bool, bool], list[str]] = {}
    kinds: dict[tuple[bool, bool], set[str]] = {}
    used: dict[tuple[bool, bool], int] = {}
    forwards = 0  # in the first configuration

    def tokens_in(text: str) -> int:
        return len(backend._loaded.tokenizer(text, add_special_tokens=False).input_ids)

    try:
        for grow, fast_step in ((True, True), (True, False), (False, False)):
            backend.grow_cache, backend.fast_step = grow, fast_step
            backend.reset_cache()
            steps, layer_types = 0, set()
            turns: tuple[tuple[str, str], ...] = ()
            got = []
            for question in ("What is the capital of France?", "And of Germany?"):
                request = ChatRequest(turns=(*turns, ("user", question)), generation=GREEDY)
                text, _ = answer(backend, request)
                layer_types |= {type(layer).__name__ for layer in backend.kv.value.layers}
                got.append(text)
                turns = (*turns, ("user", question), ("assistant", text))
            edited = ChatRequest(turns=(*turns[:2], ("user", "And of Spain?")), generation=GREEDY)
            text, cached = answer(backend, edited)  # crops the cache, then grows it again
            assert cached > 0
            got.append(text)
            replies[(grow, fast_step)], kinds[(grow, fast_step)] = got, layer_types
            if not forwards:
                forwards = sum(tokens_in(text) + 1 for text in got)  # + the EOS
            used[(grow, fast_step)] = steps
    finally:
        model._vicuna_step = real_step
        backend.grow_cache = backend.fast_step = True
    assert kinds == {
        (True, True): {"GrowingLayer"},
        (True, False): {"GrowingLayer"},
        (False, False): {"DynamicLayer"},
    }
    # Every forward but each reply's first (its prompt): one per token, the EOS too.
    assert used[(True, True)] == forwards - 3, (used, forwards)
    assert used[(True, False)] == used[(False, False)] == 0
    assert replies[(True, True)] == replies[(True, False)] == replies[(False, False)]


def test_switching_back_to_the_branch_left_finds_it_cached(backend: LocalBackend) -> None:
    """A second cache on a CPU: an early edit goes there, the branch it leaves stays."""
    assert backend._spare is not None  # SmolLM2's full context of KV is small
    session = ChatSession(None, generation=dataclasses.replace(GREEDY, max_new_tokens=12))
    session.set_model(backend.info)

    def turn(request: ChatRequest | None) -> ReplyDone:
        assert request is not None
        done = list(backend.generate(request, threading.Event()))[-1]
        assert isinstance(done, ReplyDone)
        session.record_reply(done.text, done.finish_reason, done.stats)
        return done

    for n in range(4):
        last = turn(session.add_user(f"Tell me one short fact about the number {n + 1}."))
    edited = turn(session.edit_at(2, "Tell me one short fact about the number 22."))
    assert edited.stats.cached_tokens == 0  # a new branch, in the other cache
    assert session.switch_branch(2, -1)
    request = session.add_user("And about the number 5?")
    after = turn(request)
    assert after.stats.cached_tokens >= last.stats.prompt_tokens
    backend.reset_cache()  # and the reply is the one a fresh prefill gives
    fresh = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(fresh, ReplyDone) and fresh.text == after.text


def test_which_cache_a_prompt_goes_to() -> None:
    from vicuna_tui.engine.prompting import switch_cache

    assert not switch_cache(prompt=120, kept_here=100, cached_here=100, kept_there=0)  # a turn
    assert not switch_cache(prompt=100, kept_here=99, cached_here=100, kept_there=0)  # regenerate
    assert switch_cache(prompt=60, kept_here=50, cached_here=300, kept_there=0)  # an early edit
    assert not switch_cache(prompt=2000, kept_here=1900, cached_here=3000, kept_there=0)  # late
