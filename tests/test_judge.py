"""``vicuna-tui judge`` and ``judge show``: verdicts read exactly, pairs judged in both
orders, FastChat's judgment JSONL and win rates, errors counted and judged again."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastchat_env import ensure
from helpers import REPO, run_cli
from openai_stub import serve

from vicuna_tui.evaluation import answers, results
from vicuna_tui.evaluation.judge_prompts import JudgePromptError, parse_prompts, read_prompts
from vicuna_tui.evaluation.verdicts import (
    read_score,
    read_two_scores,
    read_verdict,
    read_winner,
)

QUESTIONS = Path(__file__).parent / "fixtures" / "bench_questions.jsonl"


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Clear and right. Rating: [[8]]", 8),
        ("The format is [[rating]]; so: Rating: [[7.5]].", 7.5),
        ("Rating: [[3]] at first, but on reflection [[6]]", 6),  # the last strict one
        ("I would give it [6].", 6),
        ("Rating: 9/10", 9),
        ("a score of 4 seems fair", 4),
        ("Rating: [[11]]", None),  # out of range
        ("I cannot decide.", None),
    ],
)
def test_scores_are_read_with_fallbacks(text: str, score: float | None) -> None:
    assert read_score(text) == score


@pytest.mark.parametrize(
    ("text", "winner"),
    [
        ("[[A]]", "A"),
        ("Both are fine, but [[B]]", "B"),
        ("[[C]]", "tie"),
        ('Reply "[[A]]", "[[B]]" or "[[C]]"... My verdict: [[B]]', "B"),
        ("My final verdict: A", "A"),
        ("My final verdict is a tie.", "tie"),  # "a" is not assistant A
        ("Assistant B is better overall.", "B"),
        ("[[a]]", None),
        ("No idea.", None),
    ],
)
def test_winners_are_read_with_fallbacks(text: str, winner: str | None) -> None:
    assert read_winner(text) == winner


@pytest.mark.parametrize(
    ("output_format", "text", "fastchat", "last"),
    [
        ("[[rating]]", "Rating: [[3]] at first, but on reflection [[6]]", 3, 6),
        ("[[rating]]", 'Follow the format "[[rating]]"... Rating: [[7.5]]', 7.5, 7.5),
        ("[[rating]]", "I would give it [6].", 6, 6),
        ("[[rating]]", "Rating: 9/10", None, 9),
        ("[[rating]]", "Rating: [[11]]", 11, None),  # FastChat does not bound it
        ("[[A]]", 'Reply "[[A]]", "[[B]]" or "[[C]]"... My verdict: [[B]]', "A", "B"),
        ("[[A]]", "[[B]] is clearly better than [[A]]", "A", "A"),
        ("[[A]]", "Assistant B is better overall.", None, "B"),
        ("[[rating_a,rating_b]]", "[[3,8]] then [[9,1]]", "B", "A"),
        ("[[rating_a,rating_b]]", "[7, 7.05]", "tie", "tie"),
    ],
)
def test_fastchats_rule_is_the_default_and_ours_is_a_flag(
    output_format: str, text: str, fastchat: Any, last: Any
) -> None:
    """The same messy reply reads as FastChat reads it (its first [[...]], [[A]] before
    [[B]] wherever they stand), unless --verdict-rule last."""
    assert read_verdict(output_format, text) == fastchat
    assert read_verdict(output_format, text, "last") == last


def test_a_negated_tie_is_not_a_tie() -> None:
    assert read_winner("Both are good, so this is not a tie. Assistant B is better.") == "B"
    assert read_winner("This is not a tie.") is None
    assert read_winner("It's no tie: [[A]]") == "A"
    assert read_winner("I call it a tie.") == "tie"


def test_two_scores_within_fastchats_delta_are_a_tie() -> None:
    assert read_two_scores("[[7, 7.05]]") == "tie"
    assert read_two_scores("[8,3]") == "A"
    assert read_two_scores("[[2, 9]]") == "B"
    assert read_two_scores("none") is None


def test_fastchats_own_judge_prompts_have_our_placeholders() -> None:
    ours = read_prompts(None)
    assert len(ours) == 8
    for prompt in ours.values():
        assert prompt.output_format in ("[[rating]]", "[[A]]")
        assert prompt.system_prompt and prompt.fields()
    assert ours["pair-math-v1-multi-turn"].fields() == {
        "question_1", "question_2", "ref_answer_1", "ref_answer_2",
        "answer_a_1", "answer_a_2", "answer_b_1", "answer_b_2",
    }  # fmt: skip
    line = json.dumps(
        {
            "name": "x",
            "type": "single",
            "system_prompt": "s",
            "prompt_template": "{question",
            "output_format": "[[rating]]",
        }
    )
    with pytest.raises(JudgePromptError, match="malformed"):
        parse_prompts(line, "p.jsonl")
    with pytest.raises(JudgePromptError, match=r"p\.jsonl:1 has no 'type' text"):
        parse_prompts('{"name": "x"}', "p.jsonl")


def _pair(m1: str, m2: str, g1: str, g2: str, qid: int = 1) -> dict[str, Any]:
    return {"question_id": qid, "model_1": m1, "model_2": m2, "g1_winner": g1, "g2_winner": g2}


def test_a_win_counts_only_when_both_orders_agree() -> None:
    records = [
        _pair("a", "b", "model_1", "model_1"),  # a wins
        _pair("a", "b", "model_1", "model_2", 2),  # the orders disagree: a tie
        _pair("a", "b", "tie", "tie", 3),
        _pair("a", "b", "model_2", "model_2", 4),  # b wins
        _pair("a", "b", "model_2", "error", 5),  # left out, counted
        _pair("c", "b", "model_1", "model_1", 6),
    ]
    table = results.pair_results(records)
    rows = {r.model: r for r in table.pairs}
    assert (rows["a"].win, rows["a"].loss, rows["a"].tie) == (1, 1, 2)
    assert rows["a"].win_rate == 0.25 and rows["a"].win_rate_adjusted == 0.5
    assert (rows["b"].win, rows["b"].loss, rows["b"].tie) == (1, 2, 2)
    assert rows["b"].win_rate_adjusted == pytest.approx(2 / 5)
    assert table.errors == 1
    assert [r.model for r in table.pairs] == ["c", "a", "b"]  # best adjusted rate first
    against_b = results.pair_results(records, baseline="b")
    assert [r.model for r in against_b.pairs] == ["c", "a"]  # the baseline left out


def test_judge_show_filters_by_either_side_and_says_when_nothing_matches(
    home: Path, tmp_path: Path
) -> None:
    """--models picks a model on either side of a pair (against a baseline it is
    model_1, but in pairwise-all it may be model_2); a filter that matches nothing says
    so and lists what was judged, instead of printing an empty table."""
    records = [
        _pair("a", "b", "model_1", "model_1"),
        _pair("c", "b", "model_1", "model_1", 2),  # c beats the baseline
        _pair("a", "c", "model_1", "model_1", 3),  # c is model_2 here, and loses
    ]
    only_c = results.pair_results(records, models=["c"])
    assert [(r.model, r.win, r.loss) for r in only_c.pairs] == [("c", 1, 1)]
    against_b = results.pair_results(records, baseline="b", models=["b", "c"])
    assert [(r.model, r.win, r.loss) for r in against_b.pairs] == [("c", 1, 0)]
    path = tmp_path / "model_judgment" / "j_pair.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps({**r, "turn": 1}) + "\n" for r in records))
    shown = run_cli("judge", "show", str(path), "--models", "c", "--baseline", "b")
    assert shown.returncode == 0, shown.stderr
    assert "c " in shown.stdout
    missing = run_cli("judge", "show", str(path), "--models", "z", "--baseline", "b")
    assert missing.returncode == 2
    assert f"no judgment in {path} matches --models z and --baseline b" in missing.stderr
    assert "the models judged there: a, b, c" in missing.stderr


def test_single_scores_average_per_turn_and_category() -> None:
    def rec(qid: int, model: str, score: float, turn: int = 1) -> dict[str, Any]:
        return {"question_id": qid, "model": model, "score": score, "turn": turn}

    records = [rec(1, "a", 8), rec(2, "a", 4), rec(2, "a", 6, 2), rec(1, "b", -1), rec(2, "b", 3)]
    table = results.single_results(records, {1: "writing", 2: "math"})
    a, b = table.scores
    assert (a.model, a.score, a.turn_1, a.turn_2) == ("a", 6.0, 6.0, 6.0)
    assert a.by_category == {"math": 5.0, "writing": 8.0}
    assert (b.model, b.score, b.errors, b.judged) == ("b", 3.0, 1, 1)
    assert table.errors == 1 and table.categories == ["math", "writing"]


def _bench_folder(tmp_path: Path) -> Path:
    """A bench folder as FastChat lays it out, with two models' answers written by hand."""
    folder = tmp_path / "minibench"
    (folder / "model_answer").mkdir(parents=True)
    (folder / "reference_answer").mkdir()
    shutil.copy(QUESTIONS, folder / "question.jsonl")
    turns = {81: ["A llama poem."], 111: ["42.", "84."], 7: ["Jupiter."]}
    for model in ("good", "poor"):
        with (folder / "model_answer" / f"{model}.jsonl").open("w") as handle:
            for qid, texts in turns.items():
                mine = [f"{model.upper()}: {t}" for t in texts]
                handle.write(json.dumps(answers.answer_record(qid, model, [mine])) + "\n")
    ref = answers.answer_record(111, "stub-model", [["12 + 30 = 42.", "42 * 2 = 84."]])
    (folder / "reference_answer" / "stub-model.jsonl").write_text(json.dumps(ref) + "\n")
    return folder


def _last_user(body: dict[str, Any]) -> str:
    return str([m for m in body["messages"] if m["role"] == "user"][-1]["content"])


def _scripted(body: dict[str, Any]) -> str:
    """The stub judge: GOOD scores 8, POOR 4; on question 7 POOR's verdict cannot be
    read, even when asked again.  Pairs: it prefers GOOD on 81 and 111, and on 7 it
    always picks the first answer shown (position bias)."""
    prompt = _last_user(body)
    first = next(m for m in body["messages"] if m["role"] == "user")["content"]
    if "I could not find your verdict" in prompt:
        return "I still cannot say." if "POOR: Jupiter" in first else "[[5]]"
    if "Assistant A's answer" in first or "Assistant A's conversation" in first:
        a_first = first.index("GOOD") < first.index("POOR")
        if "Jupiter" in first:
            return "Both are fine; the first one reads better. [[A]]"
        return f"GOOD is right. [[{'A' if a_first else 'B'}]]"
    if "POOR: Jupiter" in first:
        return "Hard to say."
    return "Solid. Rating: [[8]]" if "GOOD" in first else "Weak. Rating: [[4]]"


def test_judge_single_and_pairs_against_a_scripted_server(home: Path, tmp_path: Path) -> None:
    folder = _bench_folder(tmp_path)
    with serve() as (url, stub):
        stub.models = ["stub-model"]
        stub.respond = _scripted
        stub.delay = 0.2  # a reply takes a while: the three workers overlap
        server = ["--judge-endpoint", url, "--judge-model", "stub-model"]
        single = run_cli("judge", str(folder / "question.jsonl"), *server, "--parallel", "3")
        assert single.returncode == 1, single.stderr  # one judgment has no verdict
        assert stub.most_streaming > 1  # --parallel: judgments at once
        stub.delay = 0.0
        requests = list(stub.requests)
        stub.requests.clear()
        pair = run_cli("judge", str(folder / "question.jsonl"), "--mode", "pairwise-all", *server)
    assert pair.returncode == 0, pair.stderr

    # single: FastChat's records; the judge's system prompt, greedy, 2048 tokens
    output = folder / "model_judgment" / "stub-model_single.jsonl"
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert {k for r in records for k in r} == {
        "question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp",
        "constrained",  # ours: whether the verdict was held to its form (not on a server)
        "verdict_rule",  # ours: how the verdict was read (FastChat's rule by default)
    }  # fmt: skip
    assert {r["verdict_rule"] for r in records} == {"fastchat"}
    assert not any(r["constrained"] for r in records)
    scores = {(r["question_id"], r["model"], r["turn"]): r["score"] for r in records}
    assert scores == {
        (7, "good", 1): 8, (7, "poor", 1): -1, (81, "good", 1): 8, (81, "poor", 1): 4,
        (111, "good", 1): 8, (111, "poor", 1): 4, (111, "good", 2): 8, (111, "poor", 2): 4,
    }  # fmt: skip
    judges = {(r["question_id"], r["turn"]): tuple(r["judge"]) for r in records}
    assert judges[(81, 1)] == ("stub-model", "single-v1")
    assert judges[(111, 1)] == ("stub-model", "single-math-v1")  # math: with the reference
    assert judges[(111, 2)] == ("stub-model", "single-math-v1-multi-turn")
    math = next(r for r in records if (r["question_id"], r["model"], r["turn"]) == (111, "poor", 2))
    assert "42 * 2 = 84." in math["user_prompt"] and "POOR: 84." in math["user_prompt"]
    unreadable = next(r for r in records if r["score"] == -1)
    assert "[asked again for the verdict]\nI still cannot say." in unreadable["judgment"]
    first = requests[0]
    assert first["messages"][0]["role"] == "system"
    assert "You grade answers" in first["messages"][0]["content"]
    assert first["temperature"] == 0 and first["max_tokens"] == 2048
    assert "1 without a verdict (a rerun judges them again)" in single.stderr
    assert "asked again 1 time(s)" in single.stderr

    # pairs: both orders, swapped back; position bias on 7 becomes a tie
    pairs = folder / "model_judgment" / "stub-model_pair.jsonl"
    records = [json.loads(line) for line in pairs.read_text().splitlines()]
    winners = {(r["question_id"], r["turn"]): (r["g1_winner"], r["g2_winner"]) for r in records}
    assert winners == {
        (7, 1): ("model_1", "model_2"),
        (81, 1): ("model_1", "model_1"),
        (111, 1): ("model_1", "model_1"),
        (111, 2): ("model_1", "model_1"),
    }
    assert all(r["model_1"] == "good" and r["model_2"] == "poor" for r in records)
    assert not any(r["g1_constrained"] or r["g2_constrained"] for r in records)
    swapped = records[0]["g2_user_prompt"]
    assert swapped.index("POOR") < swapped.index("GOOD")  # the second order, really swapped

    shown = json.loads(run_cli("judge", "show", str(pairs), "--json").stdout)
    rows = {r["model"]: r for r in shown["models"]}
    assert (rows["good"]["win"], rows["good"]["loss"], rows["good"]["tie"]) == (3, 0, 1)
    assert rows["good"]["win_rate_adjusted"] == 0.875
    assert rows["poor"]["win_rate_adjusted"] == 0.125
    single_shown = json.loads(run_cli("judge", "show", str(output), "--json").stdout)
    assert single_shown["errors"] == 1
    good = next(r for r in single_shown["models"] if r["model"] == "good")
    assert good["by_category"] == {"math": 8.0, "stem": 8.0, "writing": 8.0}
    table = run_cli("judge", "show", str(output)).stdout
    assert re.search(r"good\s+8\.00\s+8\.00\s+8\.00", table), table

    # a rerun judges only the error again
    with serve() as (url, stub):
        stub.respond = lambda body: "Fine after all. [[6]]"
        again = run_cli(
            "judge", str(folder / "question.jsonl"), "--judge-endpoint", url,
            "--judge-model", "stub-model",
        )  # fmt: skip
        assert len(stub.requests) == 1
    assert again.returncode == 0, again.stderr
    assert "7 of 8 already judged" in again.stderr
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 8 and not [r for r in records if r["score"] == -1]


def test_references_fall_back_to_fastchats_gpt4_answers_and_say_so(
    home: Path, tmp_path: Path
) -> None:
    """A judge with no reference file of its own is graded against MT-bench's GPT-4
    references, as FastChat does, and the judge says which file; a question that needs
    a reference and has none is named."""
    folder = _bench_folder(tmp_path)
    references = folder / "reference_answer"
    (references / "stub-model.jsonl").rename(references / "gpt-4.jsonl")
    with serve() as (url, stub):
        stub.respond = _scripted
        server = ["--judge-endpoint", url, "--judge-model", "stub-model", "--models", "good"]
        result = run_cli("judge", str(folder / "question.jsonl"), *server)
        math = [b for b in stub.requests if "12 plus 30" in _last_user(b)]
        assert math and all("12 + 30 = 42." in _last_user(b) for b in math)
        assert f"reference answers (1 question(s) need one): {references / 'gpt-4.jsonl'}" in (
            result.stderr
        )
        shutil.rmtree(references)
        again = run_cli(
            "judge", str(folder / "question.jsonl"), *server, "-o", str(tmp_path / "j.jsonl")
        )
    assert 'reference answers (1 question(s) need one): the questions\' own "reference"' in (
        again.stderr
    )
    assert "1 of them have no reference answer and are graded without one: question(s) 111" in (
        again.stderr
    )


def test_ctrl_c_stops_the_judge_and_a_rerun_goes_on(home: Path, tmp_path: Path) -> None:
    folder = _bench_folder(tmp_path)
    output = folder / "model_judgment" / "stub-model_single.jsonl"
    with serve() as (url, stub):
        stub.respond = lambda body: "Fine. [[7]]"
        stub.delay = 0.3
        server = ["--judge-endpoint", url, "--judge-model", "stub-model"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "vicuna_tui", "judge", str(folder / "question.jsonl"), *server],
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        while not (output.exists() and len(output.read_text().splitlines()) >= 2):
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "stopped; run the same command again to go on" in err
        assert "Traceback" not in err
        kept = len(output.read_text().splitlines())
        assert 2 <= kept < 8
        stub.delay = 0.0
        again = run_cli("judge", str(folder / "question.jsonl"), *server)
    assert again.returncode == 0, again.stderr
    assert f"{kept} of 8 already judged" in again.stderr
    assert len(output.read_text().splitlines()) == 8


def test_fastchats_own_judge_prompt_file_can_be_passed_in(home: Path, tmp_path: Path) -> None:
    """tests/fixtures/fastchat_judge_prompts.jsonl is FastChat's
    fastchat/llm_judge/data/judge_prompts.jsonl (Apache-2.0), unchanged."""
    folder = _bench_folder(tmp_path)
    fastchat = Path(__file__).parent / "fixtures" / "fastchat_judge_prompts.jsonl"
    with serve() as (url, stub):
        stub.respond = lambda body: "[[6]]"
        result = run_cli(
            "judge", str(folder / "question.jsonl"), "--prompts", str(fastchat),
            "--judge-endpoint", url, "--judge-model", "stub-model", "-o", str(tmp_path / "j.jsonl"),
        )  # fmt: skip
        system = stub.requests[0]["messages"][0]
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert {r["judge"][1] for r in records} == {
        "single-v1", "single-math-v1", "single-math-v1-multi-turn"
    }  # fmt: skip
    assert all(r["score"] == 6 for r in records)
    first = next(r for r in records if (r["question_id"], r["model"]) == (81, "good"))
    assert first["user_prompt"].startswith("[Instruction]\nPlease act as an impartial judge")
    assert "[Question]\nWrite a two-line poem about a llama." in first["user_prompt"]
    assert "[The Start of Assistant's Answer]\nGOOD: A llama poem." in first["user_prompt"]
    assert system == {"role": "system", "content": "You are a helpful assistant."}


def test_judge_refuses_what_it_cannot_run(home: Path, tmp_path: Path) -> None:
    folder = _bench_folder(tmp_path)
    questions = str(folder / "question.jsonl")
    result = run_cli("judge", questions, "--mode", "pairwise-baseline")
    assert result.returncode == 2 and "needs --baseline MODEL_ID" in result.stderr
    result = run_cli("judge", questions, "--models", "good", "absent")
    assert result.returncode == 2 and "no answers from 'absent'" in result.stderr
    assert "bench QUESTIONS --model-id absent" in result.stderr
    result = run_cli("judge", questions, "--judge-endpoint", "http://127.0.0.1:9/v1")
    assert result.returncode == 2 and "needs --judge-model" in result.stderr
    result = run_cli("judge", "show", str(tmp_path / "nothing.jsonl"))
    assert result.returncode == 2 and "no such judgment file" in result.stderr
    for r in (result,):
        assert "Traceback" not in r.stderr


def _show_result(args: list[str]) -> str:
    """FastChat's own show_result.py, in the FastChat environment."""
    fastchat = ensure()
    script = subprocess.run(
        [str(fastchat), "-c", "import fastchat.llm_judge.show_result as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    done = subprocess.run(
        [str(fastchat), script, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _numbers(printed: str, model: str) -> list[float]:
    """The numbers on ``model``'s line of a pandas table."""
    for line in printed.splitlines():
        cells = line.split()
        if cells and cells[0] == model:
            return [float(c) for c in cells[1:]]
    raise AssertionError(f"no row for {model} in:\n{printed}")


def _varied(body: dict[str, Any]) -> str:
    """Verdicts that differ from one prompt to the next, as a real judge's do."""
    first = next(m for m in body["messages"] if m["role"] == "user")["content"]
    if "Assistant A" in first:
        if "llama" in first:  # prefers POOR, in both orders
            return "[[A]]" if first.index("POOR") < first.index("GOOD") else "[[B]]"
        return "[[A]]" if "planet" in first else "[[C]]"  # position bias; a tie
    return f"Rating: [[{sum(map(ord, first)) % 9 + 1}]]"


def test_fastchats_show_result_prints_our_numbers(home: Path, tmp_path: Path) -> None:
    folder = _bench_folder(tmp_path)
    with serve() as (url, stub):
        stub.respond = _varied
        server = ["--judge-endpoint", url, "--judge-model", "stub-model"]
        for mode in ("single", "pairwise-all"):
            run_cli("judge", str(folder / "question.jsonl"), "--mode", mode, *server)
    single = folder / "model_judgment" / "stub-model_single.jsonl"
    pair = folder / "model_judgment" / "stub-model_pair.jsonl"

    printed = _show_result(["--mode", "single", "--input-file", str(single)])
    ours = json.loads(run_cli("judge", "show", str(single), "--json").stdout)["models"]
    sections = printed.split("##########")
    first_turn, second_turn, average = sections[2], sections[4], sections[6]
    assert len({row["score"] for row in ours}) == 2  # the two models differ
    for row in ours:
        assert _numbers(first_turn, row["model"]) == [1, pytest.approx(row["turn_1"], abs=1e-4)]
        assert _numbers(second_turn, row["model"]) == [2, pytest.approx(row["turn_2"], abs=1e-4)]
        assert _numbers(average, row["model"]) == [pytest.approx(row["score"], abs=1e-4)]

    printed = _show_result(["--mode", "pairwise-all", "--input-file", str(pair)])
    ours = json.loads(run_cli("judge", "show", str(pair), "--json").stdout)["models"]
    assert {(r["model"], r["win"], r["loss"], r["tie"]) for r in ours} == {
        ("poor", 1, 0, 3),
        ("good", 0, 1, 3),
    }
    for row in ours:
        expected = [row[k] for k in ("win", "loss", "tie", "win_rate", "loss_rate")]
        expected.append(row["win_rate_adjusted"])
        assert _numbers(printed, row["model"]) == pytest.approx(expected, abs=1e-4)


def test_only_a_judge_here_is_held_and_no_constrain_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vicuna_tui.commands.judge_cmd import build_parser
    from vicuna_tui.commands.judge_worker import JudgeWorker
    from vicuna_tui.engine.events import ModelInfo
    from vicuna_tui.engine.settings import GenerationSettings

    def worker(backend: str, engine: str, constrain: bool = True) -> JudgeWorker:
        info = ModelInfo("judge", "/m", "a test", backend=backend, engine=engine)
        return JudgeWorker(None, None, info, GenerationSettings(), constrain=constrain)  # type: ignore[arg-type]

    assert worker("local", "llamacpp").can_constrain
    assert not worker("local", "llamacpp", constrain=False).can_constrain
    assert worker("local", "transformers").can_constrain  # with xgrammar (the Makefile's)
    assert not worker("remote", "llamacpp").can_constrain  # a server: plain reminder
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "xgrammar" else real(name)
    )
    assert not worker("local", "transformers").can_constrain  # without it: no grammar
    assert worker("local", "llamacpp").can_constrain
    args = build_parser().parse_args(["q.jsonl", "--no-constrain"])
    assert args.no_constrain and args.verdict_rule == "fastchat"


@pytest.mark.real_model
def test_the_demo_model_judges_itself_end_to_end(
    smollm_gguf: Path, home: Path, tmp_path: Path
) -> None:
    """Its judgments are poor, but every verdict parses: where none can be read from the
    judgment, the second ask is held to the verdict's form by a grammar (llama.cpp),
    and the record says so."""
    folder = _bench_folder(tmp_path)
    questions = str(folder / "question.jsonl")
    flags = ["--model-path", str(smollm_gguf), "--max-new-tokens", "24"]
    result = run_cli("judge", questions, *flags)
    assert result.returncode == 0, result.stderr
    output = folder / "model_judgment" / "SmolLM2-135M-Instruct.Q4_1_single.jsonl"
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 8  # 3 questions x 2 models, and the second turn of one
    for record in records:
        assert record["judge"][0] == "SmolLM2-135M-Instruct.Q4_1"
        assert 1 <= record["score"] <= 10
        if record["constrained"]:  # the verdict is the held answer, as it was given
            last = record["judgment"].split("[asked again for the verdict]\n")[-1]
            assert last == f"[[{record['score']}]]"
    held = sum(r["constrained"] for r in records)
    assert held > 0  # 24 tokens are too few for this judge to reach a verdict unheld
    assert "(held to the verdict's form)" in result.stderr
    shown = json.loads(run_cli("judge", "show", str(output), "--json").stdout)
    assert shown["errors"] == 0
    assert sum(r["judged"] for r in shown["models"]) == 8


@pytest.mark.real_model
def test_the_demo_model_judges_pairs_and_every_verdict_parses(
    smollm_gguf: Path, home: Path, tmp_path: Path
) -> None:
    folder = _bench_folder(tmp_path)
    flags = ["--model-path", str(smollm_gguf), "--max-new-tokens", "24"]
    result = run_cli("judge", str(folder / "question.jsonl"), "--mode", "pairwise-all", *flags)
    assert result.returncode == 0, result.stderr
    output = folder / "model_judgment" / "SmolLM2-135M-Instruct.Q4_1_pair.jsonl"
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 4
    for record in records:
        assert record["g1_winner"] in ("model_1", "model_2", "tie")
        assert record["g2_winner"] in ("model_1", "model_2", "tie")
        for order in ("g1", "g2"):
            if record[f"{order}_constrained"]:
                last = record[f"{order}_judgment"].split("[asked again for the verdict]\n")[-1]
                assert last in ("[[A]]", "[[B]]", "[[C]]")
