"""--logprobs: each token's log-probability and its likeliest alternatives, from each
backend's own numbers, in OpenAI's shape."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli
from openai_stub import serve

from vicuna_tui.engine.events import ChatRequest, ReplyDone, TokenLogprob
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.frontends.linechat import least_likely

CAPITAL = "What is the capital of France?"


def _check_distribution(tokens: tuple[TokenLogprob, ...], alternatives: int) -> None:
    """Greedy: the written token is the likeliest alternative; the alternatives are
    sorted, and their probabilities sum to at most 1."""
    assert tokens
    for token in tokens:
        assert len(token.top) == alternatives
        assert token.top[0].token == token.token
        assert token.top[0].logprob == pytest.approx(token.logprob, abs=1e-4)
        values = [choice.logprob for choice in token.top]
        assert values == sorted(values, reverse=True)
        assert sum(math.exp(v) for v in values) <= 1.0 + 1e-4


def _ask(backend: Any, alternatives: int) -> ReplyDone:
    request = ChatRequest(
        turns=(("user", CAPITAL),),
        generation=GenerationSettings(temperature=0.0, max_new_tokens=6),
        logprobs=alternatives,
    )
    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone)
    return done


@pytest.mark.real_model
def test_llamacpp_reports_its_own_probabilities(llama: Any) -> None:
    """The demo file goes wrong at the first token: "L" at -1.85 against "The" at
    -2.01, and both are there to see."""
    done = _ask(llama, 5)
    assert done.tokens is not None
    _check_distribution(done.tokens, 5)
    first = {choice.token: choice.logprob for choice in done.tokens[0].top}
    assert {"L", "The"} <= set(first)
    assert first["L"] == pytest.approx(-1.85, abs=0.05)
    assert first["The"] == pytest.approx(-2.01, abs=0.05)
    assert "".join(t.token for t in done.tokens).startswith(done.text[:3])
    assert _ask(llama, 0).tokens is None  # not asked, not sent


@pytest.mark.real_model
def test_transformers_reports_its_own_probabilities(backend: Any) -> None:
    done = _ask(backend, 5)
    assert done.tokens is not None
    _check_distribution(done.tokens, 5)
    assert {"L", "The"} <= {choice.token for choice in done.tokens[0].top}
    assert "".join(t.token for t in done.tokens) == done.text


@pytest.mark.real_model
def test_json_output_carries_openai_shaped_logprobs(smollm_gguf: Path, home: Path) -> None:
    result = run_cli(
        "--model-path", str(smollm_gguf), "--no-save", "-p", CAPITAL, "--temperature", "0",
        "--max-new-tokens", "4", "--logprobs", "3", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    content = record["logprobs"]["content"]
    assert len(content) == 4
    for item in content:
        assert set(item) == {"token", "logprob", "bytes", "top_logprobs"}
        assert item["bytes"] == list(item["token"].encode())
        assert len(item["top_logprobs"]) == 3
    result = run_cli(
        "--model-path", str(smollm_gguf), "--no-save", "-p", CAPITAL, "--temperature", "0",
        "--max-new-tokens", "4", "--logprobs", "3", "--debug",
    )  # fmt: skip
    assert "[least likely] 'L' 16% ('The' 13%, 'La' 9%)" in result.stderr


def test_least_likely_names_what_was_likelier() -> None:
    from vicuna_tui.engine.events import TokenChoice

    tokens = (
        TokenLogprob("Paris", -0.1, (TokenChoice("Paris", -0.1),)),
        TokenLogprob("L", -1.85, (TokenChoice("L", -1.85), TokenChoice("The", -2.01))),
    )
    assert least_likely(tokens, 1) == "[least likely] 'L' 16% ('The' 13%)"


def test_a_server_is_asked_for_logprobs_and_one_without_them_is_named(home: Path) -> None:
    with serve() as (url, stub):
        flags = ["--endpoint", url, "--no-save", "-p", "hi", "--logprobs", "2", "--json"]
        result = run_cli(*flags)
        assert result.returncode == 0, result.stderr
        sent = stub.requests[-1]
        assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
        content = json.loads(result.stdout)["logprobs"]["content"]
        assert [item["token"] for item in content] == stub.reply
        assert [a["token"] for a in content[0]["top_logprobs"]] == ["Hello", "HELLO"]
        stub.logprobs = False  # a server that ignores the request
        result = run_cli(*flags)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["logprobs"] == {"content": []}
        assert "sent no token log-probabilities" in result.stderr


@pytest.mark.parametrize("value", ["0", "21"])
def test_logprobs_out_of_range_is_refused(value: str, home: Path) -> None:
    result = run_cli("-p", "hi", "--logprobs", value)
    assert result.returncode == 2
    assert "from 1 to 20" in result.stderr
