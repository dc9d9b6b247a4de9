"""Output that must parse: --json-schema and --grammar (reading them bounded, checking
replies), on llama.cpp and on transformers (xgrammar) for real, on a server through
response_format."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli
from openai_stub import serve

from vicuna_tui.engine.constraints import (
    GRAMMAR,
    MAX_REPEAT,
    ConstraintError,
    OutputConstraint,
    check_reply,
    grammar_constraint,
    schema_constraint,
    schema_problems,
)
from vicuna_tui.engine.events import ChatRequest, ReplyDone
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.errors import SettingsError, VicunaError
from vicuna_tui.store import Store

# Every string bounded: a reply held to it always ends (llama.cpp bounds the whitespace).
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "hobbies": {
            "type": "array",
            "items": {"type": "string", "maxLength": 20},
            "maxItems": 3,
        },
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


# -- reading a schema or a grammar -------------------------------------------------------


def test_a_schema_is_read_from_json_text_or_a_file(tmp_path: Path) -> None:
    inline = schema_constraint(json.dumps(PERSON))
    assert inline.schema == PERSON and inline.source == "the --json-schema text"
    path = tmp_path / "person.json"
    path.write_text(json.dumps(PERSON))
    from_file = schema_constraint(str(path))
    assert from_file.schema == PERSON and from_file.source == str(path)
    assert from_file.record() == {"json_schema": PERSON}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "no such file"),  # not an object, and not a path either
        ('{"type": "array", "maxItems": 1000000}', "asks for maxItems 1000000"),
        ('{"type": "string", "minLength": 99999}', "asks for minLength 99999"),
        ("{" + '"items": {' * 40 + "}" * 40 + "}", "nests schemas more than"),
    ],
)
def test_a_schema_that_cannot_be_used_is_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(VicunaError, match=message) as info:
        schema_constraint(text)
    assert info.value.hint


def test_a_schema_file_is_read_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text('{"description": "' + "x" * (2 * 2**20) + '"}')
    with pytest.raises(VicunaError, match="MiB"):
        schema_constraint(str(big))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(VicunaError, match="not a regular file"):  # a FIFO would block
        schema_constraint(str(fifo))
    not_object = tmp_path / "list.json"
    not_object.write_text("[1]")
    with pytest.raises(SettingsError, match="not a JSON schema"):
        schema_constraint(str(not_object))


def test_a_grammar_is_read_bounded(tmp_path: Path) -> None:
    good = tmp_path / "yes_no.gbnf"
    good.write_text('root ::= "yes" | "no"\n')
    assert grammar_constraint(str(good)).grammar == 'root ::= "yes" | "no"\n'
    rootless = tmp_path / "rootless.gbnf"
    rootless.write_text('answer ::= "yes"\n')
    with pytest.raises(SettingsError, match="no root rule"):
        grammar_constraint(str(rootless))
    huge = tmp_path / "huge.gbnf"
    huge.write_text(f"root ::= [a-z]{{0,{MAX_REPEAT + 1}}}\n")
    with pytest.raises(SettingsError, match=f"repeats a rule {MAX_REPEAT + 1} times"):
        grammar_constraint(str(huge))
    with pytest.raises(VicunaError, match="no such file"):
        grammar_constraint(str(tmp_path / "missing.gbnf"))


# -- checking a reply ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"name": "Ada", "age": 36}, None),
        ({"name": "Ada", "age": 36, "hobbies": ["chess"]}, None),
        ({"name": "Ada"}, "$: 'age' is missing"),
        ({"name": "Ada", "age": "36"}, "$.age: must be integer, not string"),
        ({"name": "Ada", "age": 36.5}, "$.age: must be integer, not number"),
        ({"name": "Ada", "age": True}, "$.age: must be integer, not boolean"),
        ({"name": "Ada", "age": 300}, "$.age: must be at most 120"),
        ({"name": "", "age": 3}, "$.name: needs at least 1 characters, has 0"),
        ({"name": "Ada", "age": 3, "x": 1}, "$: 'x' is not one of its properties"),
        ({"name": "A", "age": 3, "hobbies": ["a", "b", "c", "d"]}, "allows at most 3 items"),
        ({"name": "A", "age": 3, "hobbies": [1]}, "$.hobbies[0]: must be string"),
        ([], "$: must be object, not array"),
    ],
)
def test_replies_are_checked_against_the_schema(value: Any, problem: str | None) -> None:
    problems = schema_problems(PERSON, value)
    if problem is None:
        assert problems == []
    else:
        assert problems and problem in problems[0]


def test_refs_enums_and_choices_are_checked() -> None:
    schema = {
        "$defs": {"colour": {"enum": ["red", "green"]}},
        "type": "object",
        "properties": {
            "colour": {"$ref": "#/$defs/colour"},
            "size": {"anyOf": [{"type": "integer"}, {"const": "large"}]},
            "one": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
        },
    }
    assert schema_problems(schema, {"colour": "red", "size": "large", "one": 1.5}) == []
    assert "must be one of" in schema_problems(schema, {"colour": "blue"})[0]
    assert "must match one of" in schema_problems(schema, {"size": "small"})[0]
    assert "exactly one" in schema_problems(schema, {"one": 2})[0]  # both match
    assert "leads nowhere" in schema_problems({"$ref": "#/$defs/none"}, 1)[0]


def test_check_reply_says_why_a_reply_is_refused() -> None:
    constraint = OutputConstraint("json_schema", "person.json", schema=PERSON)
    assert check_reply(constraint, '{"name": "Ada", "age": 36}', "stop") == {
        "name": "Ada",
        "age": 36,
    }
    with pytest.raises(ConstraintError, match="cut at the token limit") as cut:
        check_reply(constraint, '{"name": "Ad', "length")
    assert "--max-new-tokens" in (cut.value.hint or "")
    with pytest.raises(ConstraintError, match="not JSON"):
        check_reply(constraint, "Sure! Here it is", "stop")
    with pytest.raises(ConstraintError, match=re.escape("does not match person.json: $: 'age'")):
        check_reply(constraint, '{"name": "Ada"}', "stop")


# -- the command line, on the demo model ---------------------------------------------------


def test_the_tui_refuses_a_schema_before_loading(home: Path) -> None:
    result = run_cli("--style", "tui", "--json-schema", '{"type": "object"}')
    assert result.returncode == 2
    assert "--json-schema, --grammar and --logprobs are for -p" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_schema_is_refused_before_the_model_loads(home: Path) -> None:
    result = run_cli("-p", "hi", "--json-schema", "{oops")
    assert result.returncode == 2
    assert "the --json-schema text is not JSON" in result.stderr
    assert "loading" not in result.stderr


@pytest.mark.real_model
def test_every_reply_of_the_demo_model_holds_to_the_schema(
    smollm_gguf: Path, home: Path, tmp_path: Path
) -> None:
    """Ten sampled replies (a seed each), every one JSON valid under the schema; and the
    schema is saved with each reply."""
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps(PERSON))
    prompts = "".join(f"Describe person number {n} as JSON.\n" for n in range(10))
    result = run_cli(
        "--model-path",
        str(smollm_gguf),
        "--json-schema",
        str(schema),
        "--temperature",
        "0.9",
        "--max-new-tokens",
        "400",  # more than the longest reply the schema allows
        "--json",
        input=prompts,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 10
    assert len({r["stats"]["seed"] for r in records}) == 10
    for record in records:
        assert record["finish_reason"] == "stop"
        assert schema_problems(PERSON, json.loads(record["text"])) == []
    store = Store()
    try:
        conversation = store.get(records[0]["conversation_id"])
    finally:
        store.close()
    replies = [m for m in conversation.messages if m.role == "assistant"]
    assert len(replies) == 10
    assert all(m.settings is not None and m.settings["json_schema"] == PERSON for m in replies)


@pytest.mark.real_model
def test_a_grammar_holds_the_reply_and_a_broken_one_is_named(
    smollm_gguf: Path, home: Path, tmp_path: Path
) -> None:
    grammar = tmp_path / "yes_no.gbnf"
    grammar.write_text('root ::= ("yes" | "no") "."\n')
    flags = ["--model-path", str(smollm_gguf), "--no-save", "--grammar", str(grammar)]
    result = run_cli(*flags, "-p", "Is Paris in France?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("yes.", "no.")
    grammar.write_text('root ::= ("yes" | "no"\n')  # the parenthesis is never closed
    result = run_cli(*flags, "-p", "Is Paris in France?")
    assert result.returncode == 1
    assert f"llama.cpp cannot use the GBNF grammar {grammar}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.real_model
def test_transformers_holds_a_schema_and_a_grammar_with_xgrammar(backend: Any) -> None:
    """A sampled reply holds to the schema (without it the demo model writes "age" as a
    string); a grammar holds the reply; a broken grammar is named."""
    constraint = schema_constraint(json.dumps(PERSON))
    for seed in (1,):
        request = ChatRequest(
            turns=(("user", "Describe a person as JSON."),),
            generation=GenerationSettings(temperature=0.9, seed=seed, max_new_tokens=120),
            constraint=constraint,
        )
        done = list(backend.generate(request, threading.Event()))[-1]
        assert isinstance(done, ReplyDone) and done.finish_reason == "stop", done
        assert schema_problems(PERSON, json.loads(done.text)) == []
    yes_no = OutputConstraint(GRAMMAR, "yes_no.gbnf", grammar='root ::= ("yes" | "no") "."\n')
    request = ChatRequest(turns=(("user", "Is Paris in France?"),), constraint=yes_no)
    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone) and done.text in ("yes.", "no.")
    broken = OutputConstraint(GRAMMAR, "broken.gbnf", grammar='root ::= ("yes" | "no"\n')
    request = ChatRequest(turns=(("user", "Is Paris in France?"),), constraint=broken)
    named = re.escape("xgrammar cannot use the GBNF grammar broken.gbnf")
    with pytest.raises(SettingsError, match=named):
        list(backend.generate(request, threading.Event()))


def test_without_xgrammar_transformers_refuses_with_the_way_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from vicuna_tui.engine.transformers.grammar import GrammarCompiler

    monkeypatch.setitem(sys.modules, "xgrammar", None)  # an import of it fails
    compiler = GrammarCompiler(tokenizer=None, vocab_size=10, stop_ids=())
    with pytest.raises(SettingsError) as refused:
        compiler.held(schema_constraint('{"type": "object"}'), ())
    assert "needs xgrammar" in refused.value.message
    assert "vicuna-tui[grammar]" in (refused.value.hint or "")


# -- a server -------------------------------------------------------------------------------


def test_a_server_is_asked_for_json_and_one_that_ignores_it_fails_clearly(
    home: Path, tmp_path: Path
) -> None:
    with serve() as (url, stub):
        stub.reply = ['{"name": "Ada", ', '"age": 36}']
        flags = ["--endpoint", url, "--no-save", "--json-schema", json.dumps(PERSON)]
        result = run_cli(*flags, "-p", "a person")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"name": "Ada", "age": 36}
        sent = stub.requests[-1]["response_format"]
        assert sent == {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": PERSON, "strict": True},
        }
        stub.reply = ["Sure! ", "Ada is 36."]  # a server that ignores response_format
        result = run_cli(*flags, "-p", "a person")
        assert result.returncode == 1
        assert result.stdout.strip() == ""  # nothing of a reply that does not parse
        assert "the reply is not JSON" in result.stderr
        assert "response_format json_schema" in result.stderr
        grammar = tmp_path / "yes.gbnf"
        grammar.write_text('root ::= "yes"\n')
        asked = len(stub.requests)
        result = run_cli("--endpoint", url, "--no-save", "--grammar", str(grammar), "-p", "x")
        assert result.returncode == 1
        assert "a GBNF grammar (--grammar) is for models run here" in result.stderr
        assert len(stub.requests) == asked  # refused before anything was sent
