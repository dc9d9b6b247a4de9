"""``vicuna-tui bench QUESTIONS.jsonl --model-id NAME``: answer a question set (FastChat's
llm_judge questions, MT-bench or the Vicuna bench, or our {"prompt"} lines) into
FastChat's model-answer JSONL, resumably.  Each answer is saved as a conversation too,
tagged with the run, to open, resume and replay."""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vicuna_tui import locations, runtime, writable
from vicuna_tui.commands.console import say
from vicuna_tui.commands.flags import (
    add_constraint_flags,
    add_generation_flags,
    add_model_flags,
    constraint_from_args,
)
from vicuna_tui.commands.progress import RunProgress
from vicuna_tui.commands.startup import ask_turns, load_model
from vicuna_tui.engine.constraints import ConstraintError, OutputConstraint, check_reply
from vicuna_tui.engine.events import ModelInfo, ReplyDone, ReplyFailed
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.errors import SettingsError
from vicuna_tui.evaluation import answers
from vicuna_tui.evaluation.temperatures import Temperatures, read_temperatures
from vicuna_tui.frontends.driver import Driver
from vicuna_tui.questions import read_questions
from vicuna_tui.store import Store, make_title

Question = tuple[int, dict[str, Any], list[str]]


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
    parser.add_argument(
        "--temperatures",
        metavar="FILE",
        help="a TOML file of `category = temperature` lines over FastChat's own table",
    )
    parser.add_argument(
        "--no-save", action="store_true", help="do not save the answers as conversations"
    )
    parser.add_argument("--debug", action="store_true")
    add_model_flags(parser)
    add_generation_flags(parser)
    add_constraint_flags(parser)
    return parser


def run_name(questions: Path, model_id: str) -> str:
    """The run's tag on its conversations: the bench (FastChat keeps a bench's files in
    data/BENCH/question.jsonl) and the model."""
    bench = questions.parent.name if questions.stem == "question" else questions.stem
    return f"{bench or 'bench'}/{model_id}"


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if args.num_choices < 1:
        raise SettingsError("--num-choices must be 1 or more", "e.g. --num-choices 1")
    if not args.debug:
        from vicuna_tui.warnlog import send_warnings_to_log

        send_warnings_to_log()
    path = Path(args.questions).expanduser()
    questions = list(read_questions(path))
    temperatures = (
        read_temperatures(Path(args.temperatures).expanduser())
        if args.temperatures
        else Temperatures()
    )
    output = (
        Path(args.output).expanduser()
        if args.output
        else path.parent / "model_answer" / f"{args.model_id}.jsonl"
    )
    check_writable(output, "the answers")  # before the model loads, not after its first answer
    constraint = constraint_from_args(args)
    done = answers.answered(output)
    todo = [q for q in questions if answers.question_id(q[1], q[0]) not in done]
    stderr = sys.stderr
    if len(todo) < len(questions):
        say(
            stderr, f"{len(questions) - len(todo)} of {len(questions)} already answered in {output}"
        )
    failures = 0
    if todo:
        store, problem = runtime.open_store(args.no_save)
        if problem is not None:
            say(stderr, f"warning: not saving the conversations: {problem.message}")
        try:
            run = _Run(args, temperatures, output, store, run_name(path, args.model_id), constraint)
            failures = run.answer_all(todo)
        finally:
            if store is not None:
                store.close()
    count = answers.tidy(output)
    say(stderr, f"{count} answer(s) in {output}" + (f"; {failures} failed" if failures else ""))
    if todo and not args.no_save:
        name = run_name(path, args.model_id)
        say(stderr, f"saved as conversations: vicuna-tui sessions list --run {name}")
    return 1 if failures else 0


@dataclasses.dataclass
class _Run:
    args: argparse.Namespace
    temperatures: Temperatures
    output: Path
    store: Store | None
    name: str
    constraint: OutputConstraint | None = None  # every answer held to it (--json-schema)

    def answer_all(self, todo: list[Question]) -> int:
        stderr = sys.stderr
        resolved = runtime.resolve(self.args)
        for warning in resolved.warnings:
            say(stderr, f"warning: {warning}")
        runtime.apply_gpus(resolved.load)
        driver = Driver(debug=self.args.debug, notice=lambda t: say(stderr, f"note: {t}"))
        base_seed = resolved.generation.seed
        if base_seed is None:
            base_seed = secrets.randbits(31)
        failures = 0
        try:
            info = load_model(driver, resolved, stderr, debug=self.args.debug)
            progress = RunProgress(stderr, len(todo))
            for index, question in enumerate(todo, start=1):
                line, record, _prompts = question
                qid = answers.question_id(record, line)
                temperature = self._temperature(resolved, record)
                choices, drafted = [], []
                for choice in range(self.args.num_choices):
                    generation = dataclasses.replace(
                        resolved.generation, temperature=temperature, seed=base_seed + choice
                    )
                    results = self._one_choice(driver, resolved, info, generation, question, choice)
                    choices.append(
                        [
                            r.text if isinstance(r, ReplyDone) else (r.partial_text or "$ERROR$")
                            for r in results
                        ]
                    )
                    drafted.append(
                        [r.stats.speculation if isinstance(r, ReplyDone) else None for r in results]
                    )
                    failures += sum(isinstance(r, ReplyFailed) for r in results)
                record_out = answers.answer_record(qid, self.args.model_id, choices, drafted)
                with locations.open_private(self.output, append=True) as handle:
                    handle.write(json.dumps(record_out, ensure_ascii=False) + "\n")
                category = f" ({record['category']})" if record.get("category") else ""
                progress.step(index, f"question {qid}{category}: t={temperature:g}")
            progress.clear()
        finally:
            driver.close()
        return failures

    def _temperature(self, resolved: runtime.Resolved, record: dict[str, Any]) -> float:
        if self.args.temperature is not None:
            return resolved.generation.temperature
        return self.temperatures.of(record.get("category"))

    def _one_choice(
        self,
        driver: Driver,
        resolved: runtime.Resolved,
        info: ModelInfo,
        generation: GenerationSettings,
        question: Question,
        choice: int,
    ) -> list[ReplyDone | ReplyFailed]:
        """Every turn of one question in one conversation."""
        line, record, prompts = question
        session = runtime.new_session(
            resolved, self.store, warn=lambda text: say(sys.stderr, f"warning: {text}")
        )
        qid = answers.question_id(record, line)
        suffix = f" choice {choice + 1}" if self.args.num_choices > 1 else ""
        session.join_run(self.name, make_title(f"{self.name} #{qid}{suffix}: {prompts[0]}", 80))
        session.set_model(info)
        session.generation = generation
        session.constraint = self.constraint
        return [
            self._checked(qid, turn, r)
            for turn, r in enumerate(ask_turns(driver, session, prompts), 1)
        ]

    def _checked(
        self, qid: Any, turn: int, result: ReplyDone | ReplyFailed
    ) -> ReplyDone | ReplyFailed:
        """An answer that does not hold to the schema is a failure, written as $ERROR$
        (its text stays in the saved conversation)."""
        if self.constraint is None or not isinstance(result, ReplyDone):
            return result
        try:
            check_reply(self.constraint, result.text, result.finish_reason)
        except ConstraintError as exc:
            say(sys.stderr, f"warning: question {qid} turn {turn}: {exc.inline()}")
            return ReplyFailed(result.request_id, exc)
        return result


def check_writable(output: Path, what: str) -> None:
    """Refuse, clearly, a file that cannot be written, before any model loads: its
    folder is made if missing; a folder, a link or a read-only place is refused.  An
    existing file is added to (a run resumed), never replaced."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = writable.os_error_problem(exc, output)
        raise SettingsError(
            f"cannot write {what} to {output}: {problem}", writable.fix_for(problem)
        ) from None
    refused = writable.output_problem(output, replace=True, example="answers.jsonl")
    if refused:
        raise SettingsError(f"cannot write {what} to {output}: {refused[0]}", refused[1])
