"""``vicuna-tui bench``: FastChat's question files in, its model-answer JSONL out."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastchat_env import ensure
from helpers import run_cli
from openai_stub import serve

from vicuna_tui.commands.progress import RunProgress
from vicuna_tui.errors import SettingsError
from vicuna_tui.evaluation import answers as bench_files
from vicuna_tui.evaluation.temperatures import Temperatures, read_temperatures
from vicuna_tui.store import Store

QUESTIONS = Path(__file__).parent / "fixtures" / "bench_questions.jsonl"


def test_category_temperatures_are_fastchats() -> None:
    temperatures = Temperatures()
    assert temperatures.of("math") == 0.0
    assert temperatures.of("writing") == 0.7
    assert temperatures.of("humanities") == 0.1
    assert temperatures.of("not-a-category") == 0.7
    assert temperatures.of(None) == 0.7


def test_a_temperature_file_goes_over_fastchats_table(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("writing = 1.0\ndefault = 0.2\n")
    temperatures = read_temperatures(path)
    assert temperatures.of("writing") == 1.0
    assert temperatures.of("math") == 0.0  # FastChat's, where the file is silent
    assert temperatures.of("poetry") == 0.2
    path.write_text("[temperatures]\ncoding = 0.3\n")
    assert read_temperatures(path).of("coding") == 0.3
    path.write_text('math = "cold"\n')
    with pytest.raises(SettingsError, match="math = 'cold' is not a temperature"):
        read_temperatures(path)
    path.write_text("math = \n")
    with pytest.raises(SettingsError, match="is not TOML"):
        read_temperatures(path)


def test_tidy_keeps_the_last_answer_per_question_sorted(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    lines = [
        bench_files.answer_record(111, "m", [["old"]]),
        bench_files.answer_record(7, "m", [["seven"]]),
        bench_files.answer_record(111, "m", [["new"]], [[None]]),  # nothing drafted: no key
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"question_id": 5, "cho')
    assert bench_files.tidy(path) == 2  # the cut last line (a killed run) is dropped
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["question_id"], r["choices"][0]["turns"]) for r in records] == [
        (7, ["seven"]),
        (111, ["new"]),
    ]
    assert "speculation" not in records[1]["choices"][0]
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.real_model
def test_bench_answers_in_fastchats_format_and_resumes(
    smollm_gguf: Path, home: Path, tmp_path: Path
) -> None:
    questions = tmp_path / "question.jsonl"
    shutil.copy(QUESTIONS, questions)
    flags = ["--model-path", str(smollm_gguf), "--max-new-tokens", "24", "--seed", "5"]
    temperatures = tmp_path / "temperatures.toml"
    temperatures.write_text("stem = 0.3\n")
    first = run_cli(
        "bench",
        str(questions),
        "--model-id",
        "smol",
        "--num-choices",
        "2",
        "--temperatures",
        str(temperatures),
        *flags,
    )
    assert first.returncode == 0, first.stderr
    output = tmp_path / "model_answer" / "smol.jsonl"  # where FastChat keeps them
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["question_id"] for r in records] == [7, 81, 111]  # sorted
    for record in records:
        assert set(record) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        assert record["model_id"] == "smol"
        assert [c["index"] for c in record["choices"]] == [0, 1]
    by_id = {r["question_id"]: r["choices"] for r in records}
    assert [len(c["turns"]) for c in by_id[111]] == [2, 2]  # both turns, one conversation
    first_turn, second_turn = by_id[111][0]["turns"]
    assert first_turn.strip() and second_turn.strip() and first_turn != second_turn
    # math is greedy (temperature 0, as FastChat): both choices alike; writing samples
    assert by_id[111][0]["turns"] == by_id[111][1]["turns"]
    assert by_id[81][0]["turns"] != by_id[81][1]["turns"]
    assert re.search(r"\[2/3\] question 111 \(math\): t=0 \(about \d+:\d\d left\)", first.stderr)
    assert "[3/3] question 7 (stem): t=0.3\n" in first.stderr  # from the file

    # every answer is a conversation too, tagged with the run, kept apart from chats
    run = f"{tmp_path.name}/smol"
    with Store() as store:
        assert store.listing.conversations(run=None) == []
        saved = store.listing.conversations(run=run)
        assert store.listing.runs() == {run: 6}  # 3 questions, 2 choices each
    math = [c for c in saved if c.title.startswith(f"{run} #111 choice 1:")]
    assert len(math) == 1 and math[0].message_count == 4  # two turns
    listing = run_cli("sessions", "list")
    assert "and 6 bench conversation(s), kept apart" in listing.stdout
    assert f"sessions list --run {run}" in listing.stdout
    assert "#111" not in listing.stdout
    assert run_cli("sessions", "list", "--run", run).stdout.count("#111") == 2
    # ... and replays exactly (math is greedy)
    replayed = run_cli("replay", math[0].id, "--max-new-tokens", "24")
    assert replayed.returncode == 0, replayed.stderr
    assert "differ" not in replayed.stdout + replayed.stderr

    # FastChat's own llm_judge code reads our files as its own
    fastchat = ensure()
    script = (
        "import sys, types, importlib.machinery\n"
        "for name in ('openai', 'anthropic'):  # only its API calls need them\n"
        "    module = types.ModuleType(name)\n"
        "    module.__spec__ = importlib.machinery.ModuleSpec(name, None)\n"
        "    sys.modules[name] = module\n"
        "from fastchat.llm_judge.common import load_model_answers, load_questions\n"
        "questions = load_questions(sys.argv[1], None, None)\n"
        "answers = load_model_answers(sys.argv[2])\n"
        "print([q['question_id'] for q in questions], sorted(answers['smol']),\n"
        "      len(answers['smol'][111]['choices'][0]['turns']))\n"
    )
    read = subprocess.run(
        [str(fastchat), "-c", script, str(questions), str(output.parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "[81, 111, 7] [7, 81, 111] 2"

    again = run_cli("bench", str(questions), "--model-id", "smol", *flags)
    assert again.returncode == 0, again.stderr
    assert "3 of 3 already answered" in again.stderr
    assert [json.loads(line) for line in output.read_text().splitlines()] == records


def test_bench_says_when_it_cannot_write_the_answers(home: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the answers' folder should be")
    result = run_cli(
        "bench", str(QUESTIONS), "--model-id", "m", "-o", str(blocker / "answers.jsonl")
    )
    assert result.returncode == 2, result.stderr
    assert "cannot write the answers to" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr and "loading" not in result.stderr


def test_bench_refuses_a_bad_question_file(home: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question_id": 1, "turns": []}\n')
    result = run_cli("bench", str(questions), "--model-id", "m")
    assert result.returncode == 2
    assert 'q.jsonl:1 has no "prompt" text' in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.real_model
def test_bench_on_the_transformers_backend(smollm_dir: Path, home: Path, tmp_path: Path) -> None:
    questions = tmp_path / "question.jsonl"
    shutil.copy(QUESTIONS, questions)
    result = run_cli(
        "bench", str(questions), "--model-id", "smol-hf", "--model-path", str(smollm_dir),
        "--max-new-tokens", "12", "--no-save", "--speculate", "ngram",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "on cpu (float32)" in result.stderr  # transformers; llama.cpp says its quant type
    records = [json.loads(line) for line in (tmp_path / "model_answer" / "smol-hf.jsonl").open()]
    assert [len(r["choices"][0]["turns"]) for r in records] == [1, 1, 2]
    assert all(t.strip() for r in records for t in r["choices"][0]["turns"])
    # each answer says what drafted its turns (sampled replies speculate on transformers)
    drafted = [r["choices"][0]["speculation"] for r in records]
    assert drafted == [["ngram"], ["ngram"], ["ngram", "ngram"]]
    with Store() as store:
        assert store.listing.runs() == {}  # --no-save


def test_bench_through_a_server(home: Path, tmp_path: Path) -> None:
    questions = tmp_path / "question.jsonl"
    shutil.copy(QUESTIONS, questions)
    with serve() as (url, stub):
        result = run_cli(
            "bench", str(questions), "--model-id", "served", "--endpoint", url,
            "--model", "stub-model",
        )  # fmt: skip
        sent = list(stub.requests)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "model_answer" / "served.jsonl").open()]
    assert [r["choices"][0]["turns"] for r in records] == [
        ["Hello from the server."],
        ["Hello from the server."],
        ["Hello from the server.", "Hello from the server."],
    ]
    # FastChat's temperatures went to the server; the second turn carried the first
    assert sorted(r["temperature"] for r in sent) == [0.0, 0.0, 0.1, 0.7]
    second = next(r for r in sent if len(r["messages"]) > 2)
    assert [m["content"] for m in second["messages"] if m["role"] == "user"] == [
        "What is 12 plus 30?",
        "And that number times two?",
    ]
    with Store() as store:
        saved = store.listing.conversations(run=f"{tmp_path.name}/served")
    assert len(saved) == 3 and {c.backend for c in saved} == {"remote"}


def test_bench_holds_answers_to_a_schema(home: Path, tmp_path: Path) -> None:
    """Each answer is asked as JSON under the schema; one that does not hold is a
    failure, written as FastChat's $ERROR$ and named on stderr."""
    questions = tmp_path / "question.jsonl"
    shutil.copy(QUESTIONS, questions)
    schema = '{"type": "object", "properties": {"answer": {"type": "string"}}}'
    with serve() as (url, stub):
        stub.respond = lambda body: (
            '{"answer": "42"}' if "12 plus 30" in _last_user(body) else "forty-two"
        )
        result = run_cli(
            "bench", str(questions), "--model-id", "held", "--endpoint", url,
            "--json-schema", schema,
        )  # fmt: skip
        sent = list(stub.requests)
    assert all(r["response_format"]["json_schema"]["schema"]["type"] == "object" for r in sent)
    assert result.returncode == 1
    assert "the reply is not JSON" in result.stderr
    records = [json.loads(line) for line in (tmp_path / "model_answer" / "held.jsonl").open()]
    turns = [r["choices"][0]["turns"] for r in records]
    assert ['{"answer": "42"}', "$ERROR$"] in turns  # the second turn did not hold
    assert ["$ERROR$"] in turns


def _last_user(body: dict[str, Any]) -> str:
    return str([m for m in body["messages"] if m["role"] == "user"][-1]["content"])


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_pipe() -> None:
    terminal = _Terminal()
    bar = RunProgress(terminal, 4)
    bar.step(1, "question 7 \x1b[31m(stem)")
    bar.step(4, "question 9")
    bar.clear()
    drawn = terminal.getvalue()
    assert drawn.startswith("\r\x1b[2K██████░░░░░░░░░░░░░░░░░░ 1/4 (about")
    assert "\x1b[31m" not in drawn  # a question's text never reaches the terminal raw
    assert "\r\x1b[2K████████████████████████ 4/4  question 9" in drawn
    assert drawn.endswith("\r\x1b[2K") and "\n" not in drawn
    pipe = io.StringIO()
    lines = RunProgress(pipe, 2)
    lines.step(1, "question 1")
    lines.step(2, "question 2")
    assert re.fullmatch(
        r"\[1/2\] question 1 \(about \d+:\d\d left\)\n\[2/2\] question 2\n", pipe.getvalue()
    )
