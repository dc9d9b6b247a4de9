"""``vicuna-tui judge QUESTIONS.jsonl --mode ...``: a judge model grades the answers
that ``bench`` wrote, the way FastChat's llm_judge does, into its judgment JSONL.
``vicuna-tui judge show`` prints the tables."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vicuna_tui import runtime
from vicuna_tui.commands.bench_cmd import check_writable
from vicuna_tui.commands.console import say
from vicuna_tui.commands.flags import add_generation_flags, add_model_flags
from vicuna_tui.commands.judge_worker import JudgeWorker, Stopped
from vicuna_tui.commands.progress import RunProgress
from vicuna_tui.commands.startup import load_model
from vicuna_tui.errors import SettingsError
from vicuna_tui.evaluation import answers, judgments
from vicuna_tui.evaluation.judge_prompts import read_prompts
from vicuna_tui.evaluation.judgments import Match
from vicuna_tui.evaluation.verdicts import RULES
from vicuna_tui.frontends.driver import Driver
from vicuna_tui.questions import read_questions
from vicuna_tui.store import Store, StoreError

JUDGE_MAX_TOKENS = 2048  # FastChat's, for a judgment with its reasons


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicuna-tui judge",
        description="Grade the answers of `vicuna-tui bench` with a judge model, as "
        "FastChat's llm_judge does. A rerun skips what is already judged. "
        "`vicuna-tui judge show FILE` prints the results.",
    )
    parser.add_argument("questions", help="the question file the answers are for")
    parser.add_argument("--mode", choices=judgments.MODES, default="single")
    parser.add_argument("--models", nargs="+", help="model ids to judge (default: every one)")
    parser.add_argument("--baseline", help="pairwise-baseline: the model the others face")
    parser.add_argument("--answers", help="answer folder (default: model_answer/ beside it)")
    parser.add_argument(
        "--reference",
        help="reference answers for math, reasoning and coding (default: "
        "reference_answer/JUDGE.jsonl beside the questions, else FastChat's "
        "reference_answer/gpt-4.jsonl, else the questions' own)",
    )
    parser.add_argument(
        "--prompts", help="judge prompts, JSONL as FastChat's judge_prompts.jsonl (default: ours)"
    )
    parser.add_argument(
        "-o", "--output", help="judgment file (default: model_judgment/JUDGE_MODE.jsonl)"
    )
    parser.add_argument(
        "--parallel", type=int, default=1, help="judgments at once, for a judge on a server"
    )
    j = parser.add_argument_group("the judge")
    j.add_argument("--judge-endpoint", dest="endpoint", help="the judge's OpenAI-compatible URL")
    j.add_argument(
        "--judge-model", help="the judge's name (on a server: its model name; default: the model's)"
    )
    j.add_argument(
        "--verdict-rule",
        choices=RULES,
        default="fastchat",
        help="how a verdict is read: fastchat (the default: FastChat's own rule, the first "
        "[[8]] or [[A]]) or last (the last strict one, then fallbacks such as 'Rating: 8/10')",
    )
    j.add_argument(
        "--no-constrain",
        action="store_true",
        help="when no verdict can be read, ask again without holding the answer to the "
        "verdict's form (by default a judge on llama.cpp is held to it, so it always parses)",
    )
    parser.add_argument("--debug", action="store_true")
    add_model_flags(parser)
    add_generation_flags(parser)
    return parser


@dataclasses.dataclass
class Plan:
    matches: list[Match]
    todo: list[Match]
    output: Path
    judge: str
    notes: list[str] = dataclasses.field(default_factory=list)  # said before judging


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "show":
        from vicuna_tui.commands import judge_show_cmd

        return judge_show_cmd.main(argv[1:])
    args = _checked(build_parser().parse_args(list(argv)))
    if not args.debug:
        from vicuna_tui.warnlog import send_warnings_to_log

        send_warnings_to_log()
    stderr = sys.stderr
    resolved = runtime.resolve(args)
    for warning in resolved.warnings:
        say(stderr, f"warning: {warning}")
    plan = _plan(
        args, _judge_name(args, resolved)
    )  # refused here, before a model loads, if it can't run
    for note in plan.notes:
        say(stderr, note)
    if not plan.todo:
        say(stderr, f"all {len(plan.matches)} judgment(s) are in {plan.output}")
        return _summary(plan)
    runtime.apply_gpus(resolved.load)
    workers = _start(args, resolved, stderr)
    done = len(plan.matches) - len(plan.todo)
    if done:
        say(stderr, f"{done} of {len(plan.matches)} already judged in {plan.output}")
    say(stderr, f"judging {len(plan.todo)} match(es) ({args.mode}) with {plan.judge}")
    try:
        stopped = _judge_all(plan, workers, stderr)
    finally:
        for worker in workers:
            worker.driver.close()
    _remember(plan, args)
    retried = sum(w.retried for w in workers)
    if retried:
        held = " (held to the verdict's form)" if workers[0].can_constrain else ""
        say(stderr, f"asked again {retried} time(s){held} for a verdict that could not be read")
    status = _summary(plan)
    if stopped:
        say(stderr, "stopped; run the same command again to go on")
        return 130
    return status


def _checked(args: argparse.Namespace) -> argparse.Namespace:
    if args.parallel < 1:
        raise SettingsError("--parallel must be 1 or more", "e.g. --parallel 4")
    if args.endpoint and not (args.remote_model or args.judge_model):
        raise SettingsError("--judge-endpoint needs --judge-model", "name the model it serves")
    if args.endpoint and not args.remote_model:
        args.remote_model = args.judge_model
    return args


def _judge_name(args: argparse.Namespace, resolved: runtime.Resolved) -> str:
    """The judge's name in the records and the file name: --judge-model, else the model
    on the server, else the local model's file or folder name."""
    if args.judge_model:
        return str(args.judge_model)
    if resolved.remote is not None and resolved.remote.model:
        return resolved.remote.model
    path = resolved.load.model_path
    if not path:
        return "SmolLM2-135M-Instruct"  # the default model
    name = Path(path.rstrip("/")).name
    return name[: -len(".gguf")] if name.endswith(".gguf") else name


def _plan(args: argparse.Namespace, judge: str) -> Plan:
    path = Path(args.questions).expanduser()
    parsed = [(answers.question_id(r, n), r, p) for n, r, p in read_questions(path)]
    folder = Path(args.answers).expanduser() if args.answers else path.parent / "model_answer"
    model_answers = answers.read_answer_dir(folder)
    models = list(args.models or sorted(model_answers))
    if args.mode == "pairwise-baseline":
        if not args.baseline:
            raise SettingsError(
                "pairwise-baseline needs --baseline MODEL_ID",
                f"one of: {', '.join(sorted(model_answers)) or 'none answered yet'}",
            )
        if args.baseline not in models:
            models.append(args.baseline)
    if not models or (args.mode != "single" and len(models) < 2):
        need = "two models' answers" if args.mode != "single" else "answers"
        raise SettingsError(
            f"{args.mode} judging needs {need}, and {folder} has {len(model_answers)} model(s)",
            "answer with `vicuna-tui bench QUESTIONS --model-id NAME` first",
        )
    references, source = _references(args, path, judge)
    questions = judgments.questions_from(parsed, references)
    judgments.check_answers(questions, model_answers, models, folder)
    prompts = read_prompts(Path(args.prompts).expanduser() if args.prompts else None)
    matches = judgments.plan(
        args.mode, questions, model_answers, models, prompts, baseline=args.baseline
    )
    output = (
        Path(args.output).expanduser()
        if args.output
        else path.parent / "model_judgment" / judgments.output_name(judge, args.mode)
    )
    check_writable(output, "the judgments")
    decided = judgments.decided(output)
    todo = [m for m in matches if m.key(judge) not in decided]
    return Plan(matches, todo, output, judge, _reference_notes(questions, source))


# FastChat grades against GPT-4's reference answers whoever judges: MT-bench ships them.
FASTCHAT_REFERENCE = "gpt-4"


def _references(
    args: argparse.Namespace, questions: Path, judge: str
) -> tuple[dict[Any, Any] | None, str]:
    """The reference answers (by question id), or None for the questions' own; and
    where they come from, in words."""
    if args.reference:
        reference = Path(args.reference).expanduser()
        if not reference.is_file():
            raise SettingsError(f"no such reference answer file: {reference}", "check the path")
        return answers.read_answer_file(reference), str(reference)
    folder = questions.parent / "reference_answer"
    for name in dict.fromkeys((judge, FASTCHAT_REFERENCE)):
        candidate = folder / f"{name}.jsonl"
        if candidate.is_file():
            return answers.read_answer_file(candidate), str(candidate)
    return None, 'the questions\' own "reference" fields'


def _reference_notes(questions: list[judgments.Question], source: str) -> list[str]:
    """What the judge is told about references: where they come from, and which of the
    questions that need one have none (they are graded without)."""
    needing = [q for q in questions if q.category in judgments.NEED_REFERENCE]
    if not needing:
        return []
    notes = [f"reference answers ({len(needing)} question(s) need one): {source}"]
    missing = [str(q.id) for q in needing if q.reference is None]
    if missing:
        notes.append(
            f"{len(missing)} of them have no reference answer and are graded without one: "
            f"question(s) {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}"
        )
    return notes


def _start(args: argparse.Namespace, resolved: runtime.Resolved, stderr: Any) -> list[JudgeWorker]:
    """The judge, loaded once per worker: several only for a judge on a server (a local
    model is owned by one thread)."""
    count = args.parallel
    if count > 1 and resolved.remote is None:
        say(stderr, "note: a local judge runs one judgment at a time (--parallel is for servers)")
        count = 1
    generation = dataclasses.replace(
        resolved.generation,
        temperature=0.0 if args.temperature is None else resolved.generation.temperature,
        max_new_tokens=(
            JUDGE_MAX_TOKENS if args.max_new_tokens is None else resolved.generation.max_new_tokens
        ),
    )
    workers: list[JudgeWorker] = []
    for index in range(count):
        driver = Driver(debug=args.debug, notice=lambda t: say(stderr, f"note: {t}"))
        try:
            if index == 0:
                info = load_model(driver, resolved, stderr, debug=args.debug)
            else:
                info = driver.load(runtime.make_backend(resolved, debug=args.debug), lambda e: None)
        except BaseException:
            driver.close()
            for worker in workers:
                worker.driver.close()
            raise
        workers.append(
            JudgeWorker(
                driver,
                resolved,
                info,
                generation,
                constrain=not args.no_constrain,
                rule=args.verdict_rule,
            )
        )
    return workers


def _judge_one(worker: JudgeWorker, match: Match, judge: str) -> dict[str, Any]:
    if len(match.models) == 1:
        user_prompt = match.user_prompt()
        verdict = worker.verdict(match.prompt, user_prompt)
        value = verdict.value if isinstance(verdict.value, (int, float)) else None
        return judgments.single_record(
            match,
            judge,
            user_prompt,
            verdict.text,
            value,
            constrained=verdict.constrained,
            rule=worker.rule,
        )
    sides = []
    held = []
    for swapped in (False, True):  # both orders: against position bias
        user_prompt = match.user_prompt(swapped)
        verdict = worker.verdict(match.prompt, user_prompt)
        winner = verdict.value if isinstance(verdict.value, str) else None
        sides.append((user_prompt, verdict.text, winner))
        held.append(verdict.constrained)
    return judgments.pair_record(
        match, judge, sides[0], sides[1], constrained=(held[0], held[1]), rule=worker.rule
    )


def _judge_all(plan: Plan, workers: list[JudgeWorker], stderr: Any) -> bool:
    """Every match to do, line by line into the judgment file; True if stopped."""
    progress = RunProgress(stderr, len(plan.todo))
    lock = threading.Lock()
    pending = list(reversed(plan.todo))
    stop = threading.Event()
    finished = [0]

    def work(worker: JudgeWorker) -> None:
        while not stop.is_set():
            with lock:
                if not pending:
                    return
                match = pending.pop()
            record = _judge_one(worker, match, plan.judge)
            with lock:
                judgments.append(plan.output, [record])
                finished[0] += 1
                progress.step(finished[0], _describe(match, record))

    try:
        if len(workers) == 1:
            work(workers[0])
        else:
            with ThreadPoolExecutor(len(workers)) as pool:
                futures = [pool.submit(work, w) for w in workers]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    stop.set()
                    for worker in workers:
                        worker.driver.engine.cancel()
                    raise
    except (Stopped, KeyboardInterrupt):
        progress.clear()
        return True
    progress.clear()
    return False


def _remember(plan: Plan, args: argparse.Namespace) -> None:
    """List the judgment file on the TUI's evaluation screen (best effort: the file is
    what matters, and it is written)."""
    if not plan.output.exists():
        return
    questions = str(Path(args.questions).expanduser().resolve())
    try:
        with Store() as store:
            store.evaluations.remember(str(plan.output.resolve()), args.mode, plan.judge, questions)
    except StoreError as exc:
        say(sys.stderr, f"warning: not listed in the TUI's evaluations: {exc.message}")


def _describe(match: Match, record: dict[str, Any]) -> str:
    models = " vs ".join(match.models)
    if "score" in record:
        verdict = "error" if record["score"] == -1 else f"score {record['score']}"
    else:
        verdict = f"{record['g1_winner']} / {record['g2_winner']}"
    return f"question {match.question.id} turn {match.turn}, {models}: {verdict}"


def _summary(plan: Plan) -> int:
    records = judgments.tidy(plan.output) if plan.output.exists() else []
    errors = sum(judgments.is_error(r) for r in records)
    say(
        sys.stderr,
        f"{len(records)} judgment(s) in {plan.output}"
        + (f"; {errors} without a verdict (a rerun judges them again)" if errors else ""),
    )
    say(sys.stderr, f"see them with: vicuna-tui judge show {plan.output}")
    return 1 if errors else 0
