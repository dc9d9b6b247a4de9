"""The token view: each token's probability and alternatives, what the sampler made of
them, a branch from any token (the prefix taken from the KV cache), and the tokens
saved with each reply."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from test_tui_real import Preloaded
from textual.widgets import Static
from tui_helpers import make_app, ready, reply_done, run_test, send, wait_for

from vicuna_tui.engine.events import (
    ChatRequest,
    ReplyDelta,
    ReplyDone,
    ReplyStarted,
    TokenChoice,
    TokenLogprob,
)
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.engine.tokens import (
    LIKELY,
    SURE,
    UNLIKELY,
    UNSURE,
    level,
    sampler_effect,
    saved_tokens,
)
from vicuna_tui.session import ChatSession
from vicuna_tui.store import Store
from vicuna_tui.tui.widgets.tokens import NOT_RECORDED, shown_tokens

CAPITAL = "What is the capital of France?"
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=12)


def _token(written: str, probabilities: dict[str, float]) -> TokenLogprob:
    top = tuple(TokenChoice(t, math.log(p)) for t, p in probabilities.items())
    return TokenLogprob(written, math.log(probabilities[written]), top)


# -- what the sampler made of the alternatives ---------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        GenerationSettings(temperature=0.7),
        GenerationSettings(temperature=1.3, top_k=3),
        GenerationSettings(temperature=0.7, top_p=0.8),
        GenerationSettings(temperature=1.0, top_k=4, top_p=0.6),
    ],
)
def test_sampler_effect_matches_transformers_own_processors(settings: GenerationSettings) -> None:
    """With the whole vocabulary recorded the "after" column is exact: transformers'
    own warpers over the same logits give the same probabilities."""
    import torch

    from vicuna_tui.engine.transformers.sampling import processors

    probabilities = [0.38, 0.22, 0.15, 0.1, 0.08, 0.04, 0.02, 0.01]
    logits = torch.log(torch.tensor([probabilities]))
    warped = processors(settings)(torch.zeros((1, 1), dtype=torch.long), logits.clone())
    expected = torch.softmax(warped, dim=-1)[0].tolist()
    names = [f"t{i}" for i in range(len(probabilities))]
    effect = sampler_effect(_token("t1", dict(zip(names, probabilities, strict=True))), settings)
    assert not effect.approximate
    after = {a.token: a.after for a in effect.alternatives}
    for name, value in zip(names, expected, strict=True):
        assert after[name] == pytest.approx(value, abs=1e-5), name
    for alternative in effect.alternatives:  # what is cut says by what
        assert bool(alternative.cut) == (alternative.after == 0.0)


def test_sampler_effect_greedy_and_an_unlisted_written_token() -> None:
    token = TokenLogprob("x", math.log(0.01), (TokenChoice("a", math.log(0.6)),))
    effect = sampler_effect(token, GenerationSettings(temperature=0.0, repetition_penalty=1.2))
    assert [(a.token, a.after, a.cut, a.written) for a in effect.alternatives] == [
        ("a", 1.0, "", False),
        ("x", 0.0, "greedy", True),  # the written token is shown even when not in the top
    ]
    assert any("repetition penalty" in note for note in effect.notes)
    # the rest of the vocabulary (39%) under a temperature: an estimate, and said so
    assert sampler_effect(token, GenerationSettings(temperature=0.5)).approximate


def test_levels_and_saved_tokens() -> None:
    assert [level(math.log(p)) for p in (0.95, 0.6, 0.2, 0.05)] == [SURE, LIKELY, UNSURE, UNLIKELY]
    token = _token(" Paris", {" Paris": 0.8, " Lyon": 0.1})
    saved = saved_tokens(json.loads(json.dumps([token.compact()])))
    assert saved is not None and saved[0].token == " Paris"
    assert saved[0].logprob == pytest.approx(token.logprob, abs=1e-4)
    assert [c.token for c in saved[0].top] == [" Paris", " Lyon"]
    assert saved_tokens([["only two", 1]]) is None  # damaged: no view, no crash
    assert saved_tokens("nonsense") is None and saved_tokens([]) is None
    # a stop string cut from the saved text: its tokens are not shown
    tokens = [_token(t, {t: 0.9}) for t in ("Hi", " there", "</", "s", ">")]
    assert [t.token for t in shown_tokens(tokens, "Hi there")] == ["Hi", " there"]


# -- saved with the reply ------------------------------------------------------------------


def test_tokens_and_forks_are_saved_and_damage_reads_as_none(home: Path) -> None:
    with Store() as store:
        session = ChatSession(store)
        session.add_user(CAPITAL)
        tokens = (_token("L", {"L": 0.16, "The": 0.13}), _token("'", {"'": 0.66}))
        first = session.record_reply("L'", "length", tokens=tokens)
        request = session.branch_from_token(1, 0, "The")
        assert request is not None
        assert request.reply_prefix == "The"
        assert session.messages[-1].role == "user"  # the old reply stays, as a sibling
        written = (_token(" capital", {" capital": 0.9}),)
        second = session.record_reply("The capital", "stop", tokens=written)
        assert second.fork == {"from": first.uid, "at": 0, "token": "The"}
        assert session.branches.branch_at(1) == (2, 2)
        conv = store.get(session.conversation.id)  # type: ignore[union-attr]
        saved = {m.uid: m for m in conv.tree}
        again = saved_tokens(saved[second.uid].tokens)
        assert again is not None
        # the given start (the chosen alternative, at its own probability), then the rest
        assert [t.token for t in again] == ["The", " capital"]
        assert again[0].logprob == pytest.approx(math.log(0.13), abs=1e-4)
        assert saved[first.uid].fork is None
    db = sqlite3.connect(home / "data" / "conversations.db")
    db.execute("UPDATE messages SET tokens = '[[1', fork = '\"x\"'")
    db.commit()
    db.close()
    with Store() as store:
        conv = store.get(store.resolve("last"))
        assert all(m.tokens is None and m.fork is None for m in conv.tree)


def test_a_branch_needs_a_recorded_alternative(home: Path) -> None:
    session = ChatSession(None)
    session.add_user(CAPITAL)
    session.record_reply("Paris", "stop")  # no tokens recorded
    assert session.branch_from_token(1, 0, "The") is None
    session.regenerate()
    session.record_reply("L", "stop", tokens=(_token("L", {"L": 0.2, "The": 0.1}),))
    assert session.branch_from_token(1, 0, "Rome") is None  # not an alternative there
    assert session.branch_from_token(1, 5, "The") is None  # no such token
    assert session.branch_from_token(0, 0, "The") is None  # a user message
    request = session.branch_from_token(1, 0, "The")
    assert request is not None and request.reply_prefix == "The"
    assert request.generation.max_new_tokens == session.generation.max_new_tokens - 1


# -- the engines: a branch starts with its given text, from the KV cache -------------------


def _run(backend: Any, request: ChatRequest) -> tuple[str, ReplyStarted, ReplyDone]:
    events = list(backend.generate(request, threading.Event()))
    started = next(e for e in events if isinstance(e, ReplyStarted))
    done = events[-1]
    assert isinstance(done, ReplyDone)
    streamed = "".join(e.text for e in events if isinstance(e, ReplyDelta))
    return streamed, started, done


def _branch_exactly(backend: Any) -> None:
    """Greedy: a branch that keeps the written token at k writes the same reply as
    before, from the cache (the prompt and the k tokens before it are not read again);
    a branch with another token writes another reply that starts with it."""
    ask = ChatRequest(turns=(("user", CAPITAL),), generation=GREEDY, logprobs=5)
    text, started, done = _run(backend, ask)
    assert done.tokens is not None and len(done.tokens) >= 6
    at = 4
    prefix = "".join(t.token for t in done.tokens[: at + 1])
    ids = tuple(t.id for t in done.tokens[: at + 1] if t.id is not None)
    assert len(ids) == at + 1  # each backend gives its tokens' ids
    same = ChatRequest(
        turns=ask.turns,
        generation=GenerationSettings(temperature=0.0, max_new_tokens=12 - (at + 1)),
        logprobs=5,
        reply_prefix=prefix,
        reply_prefix_ids=ids,  # as the session sends them for the model that wrote them
    )
    streamed, branch_started, branch = _run(backend, same)
    assert branch.text == done.text and streamed == text  # the given start streamed first
    assert branch.stats.new_tokens == done.stats.new_tokens - (at + 1)
    assert branch.stats.cached_tokens >= started.prompt_tokens + at  # from the KV cache
    assert branch_started.prompt_tokens == started.prompt_tokens + at + 1
    # another token, given as text only (its id unknown): read with the prompt
    other = next(c.token for c in done.tokens[0].top if c.token != done.tokens[0].token)
    streamed, _, branch = _run(
        backend, ChatRequest(turns=ask.turns, generation=GREEDY, reply_prefix=other)
    )
    assert branch.text.startswith(other.strip()) and branch.text != done.text


@pytest.mark.real_model
def test_llamacpp_branches_from_a_token_exactly(llama: Any) -> None:
    _branch_exactly(llama)


@pytest.mark.real_model
def test_transformers_branches_from_a_token_exactly(backend: Any) -> None:
    _branch_exactly(backend)


def test_a_server_refuses_a_branch_from_a_token() -> None:
    from vicuna_tui.engine.remote.backend import RemoteBackend
    from vicuna_tui.engine.settings import RemoteSettings
    from vicuna_tui.errors import SettingsError

    remote = RemoteBackend(RemoteSettings(endpoint="http://127.0.0.1:9/v1", model="m"))
    request = ChatRequest(turns=(("user", CAPITAL),), reply_prefix="The")
    with pytest.raises(SettingsError, match="branching from a token needs the model here"):
        list(remote.generate(request, threading.Event()))


# -- the TUI, on the real model ------------------------------------------------------------


def _detail(view: Any) -> str:
    return str(view.query_one(".token-detail", Static).render())


@pytest.mark.real_model
async def test_token_view_end_to_end(home: Path, llama: Any, smollm_gguf: Path) -> None:
    """F9 shows replies as tokens (an old reply says it has none), ←/→ move along
    them, the detail names the alternatives and the sampler's effect, and a digit
    branches from the focused token: a sibling reply that starts with that token."""
    preloaded = Preloaded(llama)
    app = make_app(
        lambda load: preloaded,
        load=LoadSettings(model_path=str(smollm_gguf), device="cpu"),
        max_new_tokens=16,
    )
    async with run_test(app, size=(120, 44)) as pilot:
        screen = await ready(pilot)
        await send(pilot, CAPITAL)  # written with the view off
        await reply_done(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: screen.transcript.token_mode)
        assert "token view" in screen.status.text
        old = screen.transcript.views[-1]
        assert NOT_RECORDED in str(old.query_one(".tokens", Static).render())

        await pilot.press("ctrl+r")  # written again, with its tokens
        await reply_done(pilot)
        await pilot.pause()
        reply = screen.transcript.views[-1]
        assert reply.token_text is not None and not reply.markdown.display
        assert reply.token_text.tokens[0].token == "L"  # the demo file's first misstep
        # marks that read without colour: every token under 10% is underlined
        marked = reply.token_text.marked()
        underlined = [
            marked.plain[s.start : s.end] for s in marked.spans if "underline" in str(s.style)
        ]
        unlikely = [t.token for t in reply.token_text.tokens if level(t.logprob) == UNLIKELY]
        assert unlikely and all(any(t in u for u in underlined) for t in unlikely)
        reply.focus()
        await pilot.press("right")  # the first token
        detail = _detail(reply)
        assert "token 1/" in detail and "'L'" in detail and "'The'" in detail
        assert "◀ written" in detail and "greedy" in detail
        the = reply.token_text.alternatives().index("The") + 1
        await pilot.press(str(the))  # branch from the first token with "The"
        await reply_done(pilot)
        await pilot.pause()
        asked = preloaded.generated[-1]  # the id the model gave "The", not its text again
        assert asked.reply_prefix == "The" and len(asked.reply_prefix_ids) == 1
        branch = screen.transcript.views[-1]
        assert branch.text.startswith("The") and "Paris" in branch.text
        assert branch.branch == (3, 3)
        assert "branched at token 1 ('The')" in str(branch.query_one(".meta", Static).render())
        assert branch.token_text is not None
        assert branch.token_text.tokens[0].token == "The"

        await pilot.press("f9")  # off: Markdown again, and no probabilities asked for
        await wait_for(pilot, lambda: not screen.transcript.token_mode)
        assert branch.markdown.display and screen.session.logprobs == 0

    with Store() as store:
        conv = store.get(store.resolve("last"))
    replies = [m for m in conv.tree if m.role == "assistant"]
    assert [m.tokens is not None for m in replies] == [False, True, True]
    assert replies[2].fork == {"from": replies[1].uid, "at": 0, "token": "The"}


def test_the_ids_go_only_to_the_model_that_wrote_them(home: Path) -> None:
    """Another model's token ids would mean other tokens: then the text is read."""
    from vicuna_tui.engine.events import ModelInfo

    session = ChatSession(None)
    writer = ModelInfo(name="smol", path="/m/smol.gguf", source="local", engine="llamacpp")
    session.set_model(writer)
    session.add_user(CAPITAL)
    top = (TokenChoice("L", -1.8, 43), TokenChoice("The", -2.0, 504))
    session.record_reply("L", "stop", tokens=(TokenLogprob("L", -1.8, top, 43),))
    request = session.branch_from_token(1, 0, "The")
    assert request is not None and request.reply_prefix_ids == (504,)
    session.record_reply("The", "stop")
    session.set_model(ModelInfo(name="other", path="/m/other.gguf", source="local"))
    session.switch_branch(1, -1)
    request = session.branch_from_token(1, 0, "The")
    assert request is not None
    assert request.reply_prefix == "The" and request.reply_prefix_ids == ()


def test_tokens_and_forks_survive_an_export_and_import(home: Path) -> None:
    from vicuna_tui import formats

    with Store() as store:
        session = ChatSession(store)
        session.add_user(CAPITAL)
        session.record_reply("L", "stop", tokens=(_token("L", {"L": 0.2, "The": 0.1}),))
        session.branch_from_token(1, 0, "The")
        session.record_reply("The", "stop", tokens=())
        conv = store.get(session.conversation.id)  # type: ignore[union-attr]
        data = formats.to_json(conv, all_branches=True)
        copy = store.get(store.imports.one(*formats.from_ours(data, "a file"), as_tree=True))
    replies = [m for m in copy.tree if m.role == "assistant"]
    first, branch = replies
    assert saved_tokens(first.tokens) is not None
    assert branch.fork == {"from": first.uid, "at": 0, "token": "The"}  # the new uid
    assert saved_tokens(branch.tokens) is not None  # the given start, kept
