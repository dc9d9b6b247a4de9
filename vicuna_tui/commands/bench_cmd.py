"""``vicuna-tui bench QUESTIONS.jsonl --model-id NAME``: answer a question set (FastChat's
llm_judge questions, MT-bench or the Vicuna bench, or our {"prompt"} lines) into
FastChat's model-answer JSONL, resumably."""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vicuna_tui import bench_files, locations, runtime, writable
from vicuna_tui.commands.console import say
from vicuna_tui.commands.flags import add_generation_flags, add_model_flags
from vicuna_tui.commands.startup import ask_turns, load_model
from vicuna_tui.engine.events import ModelInfo, ReplyDone, ReplyFailed
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.errors import SettingsError
from vicuna_tui.frontends.driver import Driver
from vicuna_tui.questions import read_questions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicuna-tui bench",
        description="Answer a question set the way FastChat's llm_judge does, into its "
        "model-answer JSONL. A rerun skips the questions already answered.",
    )
    parser.add_argument("questions", help="a question file (JSONL)")
    parser.add_argument("--model-id", required=True, help="the name the answers are filed under")
    parser.add_argument(
        "-o", "--output", help="answer file (default: model_answer/MODEL_ID.jsonl beside it)"
    )
    parser.add_argument(
        "--num-choices", type=int, default=1, help="answers per question (default 1)"
    )
    parser.add_argument("--debug", action="store_true")
    add_model_flags(parser)
    add_generation_flags(parser)
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if args.num_choices < 1:
        raise SettingsError("--num-choices must be 1 or more", "e.g. --num-choices 1")
    if not args.debug:
        from vicuna_tui.warnlog import send_warnings_to_log

        send_warnings_to_log()
    path = Path(args.questions).expanduser()
    questions = list(read_questions(path))
    output = (
        Path(args.output).expanduser()
        if args.output
        else path.parent / "model_answer" / f"{args.model_id}.jsonl"
    )
    _check_writable(output)  # before the model loads, not after its first answer
    done = bench_files.answered(output)
    todo = [q for q in questions if bench_files.question_id(q[1], q[0]) not in done]
    stderr = sys.stderr
    if len(todo) < len(questions):
        say(
            stderr, f"{len(questions) - len(todo)} of {len(questions)} already answered in {output}"
        )
    failures = 0
    if todo:
        failures = _answer_all(args, todo, output)
    count = bench_files.tidy(output)
    say(stderr, f"{count} answer(s) in {output}" + (f"; {failures} failed" if failures else ""))
    return 1 if failures else 0


def _answer_all(
    args: argparse.Namespace, todo: list[tuple[int, dict[str, Any], list[str]]], output: Path
) -> int:
    stderr = sys.stderr
    resolved = runtime.resolve(args)
    for warning in resolved.warnings:
        say(stderr, f"warning: {warning}")
    runtime.apply_gpus(resolved.load)
    driver = Driver(debug=args.debug, notice=lambda t: say(stderr, f"note: {t}"))
    base_seed = resolved.generation.seed
    if base_seed is None:
        base_seed = secrets.randbits(31)
    failures = 0
    try:
        info = load_model(driver, resolved, stderr, debug=args.debug)
        started = time.monotonic()
        for index, (line, record, prompts) in enumerate(todo, start=1):
            qid = bench_files.question_id(record, line)
            if args.temperature is not None:
                temperature = resolved.generation.temperature
            else:
                temperature = bench_files.temperature_for(record.get("category"))
            choices = []
            for choice in range(args.num_choices):
                generation = dataclasses.replace(
                    resolved.generation, temperature=temperature, seed=base_seed + choice
                )
                turns, failed = _one_choice(driver, resolved, info, generation, prompts)
                choices.append(turns)
                failures += failed
            answer = bench_files.answer_record(qid, args.model_id, choices)
            with locations.open_private(output, append=True) as handle:  # line by line
                handle.write(json.dumps(answer, ensure_ascii=False) + "\n")
            category = f" ({record['category']})" if record.get("category") else ""
            eta = _eta(time.monotonic() - started, index, len(todo))
            say(stderr, f"[{index}/{len(todo)}] question {qid}{category}: t={temperature:g}{eta}")
    finally:
        driver.close()
    return failures


def _check_writable(output: Path) -> None:
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = writable.os_error_problem(exc, output)
    else:
        problem = writable.write_problem(output) or ""
    if problem:
        raise SettingsError(
            f"cannot write the answers to {output}: {problem}", writable.fix_for(problem)
        )


def _eta(elapsed: float, done: int, total: int) -> str:
    """The time left, going by the questions answered so far."""
    if done >= total:
        return ""
    left = int(elapsed / done * (total - done))
    return f", about {left // 60}:{left % 60:02d} left"


def _one_choice(
    driver: Driver,
    resolved: runtime.Resolved,
    info: ModelInfo,
    generation: GenerationSettings,
    prompts: list[str],
) -> tuple[list[str], int]:
    """Every turn of one question in one conversation (not saved); its failures."""
    session = runtime.new_session(resolved, None)
    session.set_model(info)
    session.generation = generation
    results = ask_turns(driver, session, prompts)
    turns = [r.text if isinstance(r, ReplyDone) else (r.partial_text or "$ERROR$") for r in results]
    return turns, sum(isinstance(r, ReplyFailed) for r in results)
