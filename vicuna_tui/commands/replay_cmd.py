"""``vicuna-tui replay ID|FILE.jsonl``: replay a saved conversation, or answer a question
set, with the current model and settings."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from vicuna_tui import locations, runtime, writable
from vicuna_tui import replay_plan as replay_mod
from vicuna_tui.commands.console import say
from vicuna_tui.commands.flags import add_generation_flags, add_model_flags
from vicuna_tui.commands.startup import ask_turns, load_model
from vicuna_tui.engine.events import ModelInfo, ReplyFailed
from vicuna_tui.errors import SettingsError
from vicuna_tui.frontends.driver import Driver, describe_failure
from vicuna_tui.frontends.linechat import reply_record
from vicuna_tui.questions import read_questions
from vicuna_tui.replay_plan import ReplayRun
from vicuna_tui.session import ChatSession
from vicuna_tui.store import Conversation, Store
from vicuna_tui.textsafe import json_line, terminal_safe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicuna-tui replay",
        description="Send a saved conversation's user turns again (as a new branch of "
        "it, beside the saved replies) and compare old and new replies; or answer a JSONL "
        "question set.",
    )
    parser.add_argument("source", help="a conversation id (prefix, or last), or FILE.jsonl")
    parser.add_argument(
        "-o",
        "--output",
        help="question sets: where to write the answers (default: FILE.answers.jsonl)",
    )
    parser.add_argument(
        "--new-seeds",
        action="store_true",
        help="draw fresh seeds instead of reusing each saved reply's seed",
    )
    parser.add_argument(
        "--new-conversation",
        action="store_true",
        help="save the replay as a new conversation linked to the original, instead of "
        "as a branch of it",
    )
    parser.add_argument(
        "--style", choices=("simple", "tui"), help="simple (default off a terminal) or tui"
    )
    parser.add_argument("--debug", action="store_true")
    add_model_flags(parser)
    add_generation_flags(parser)
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if not args.debug:
        from vicuna_tui.warnlog import send_warnings_to_log

        send_warnings_to_log()
    if args.source.endswith(".jsonl") or Path(args.source).exists():
        return _question_set(args)
    return _conversation(args)


def _conversation(args: argparse.Namespace) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    store = Store()
    try:
        original = store.get(store.resolve(args.source))
        resolved = runtime.resolve(args, original)
        run = ReplayRun(original, resolved.generation, reuse_seeds=not args.new_seeds)
        for warning in resolved.warnings:
            say(stderr, f"warning: {warning}")
        runtime.apply_gpus(resolved.load)
        style = args.style or ("tui" if sys.stdin.isatty() and stdout.isatty() else "simple")
        if style == "tui":
            from vicuna_tui.tui.app import VicunaApp

            return VicunaApp(
                resolved,
                store,
                conversation_id=original.id,
                debug=args.debug,
                replay=True,
                reuse_seeds=not args.new_seeds,
            ).run_chat()
        session = runtime.new_session(
            resolved, store, warn=lambda text: say(stderr, f"warning: {text}")
        )
        if args.new_conversation:
            session.replay_of = original.id
        else:
            session.show(original)
            session.update_settings(
                template=resolved.template, system_message=resolved.system_message
            )
            session.branch_for_replay()
        first_reply = len(session.messages)  # where the first new reply goes
        _replay(args, run, session, resolved)
        _report(run.comparisons, stdout)
        say(
            stdout,
            f"{_where_saved(session, original, first_reply)}: {run.identical} of "
            f"{len(run.comparisons)} replies identical",
        )
        return 0
    finally:
        store.close()


def _where_saved(session: ChatSession, original: Conversation, first_reply: int) -> str:
    """Where the replay went: a new linked conversation, or which branch of the original."""
    if session.replay_of is not None:
        new_id = session.conversation.id if session.conversation else "?"
        return f"replay saved as {new_id[:8]} (replay of {original.short_id})"
    if first_reply >= len(session.messages):
        return f"replay of {original.short_id}: no reply came back"
    which, count = session.branches.branch_at(first_reply)
    if count == 1:
        return f"replay saved in {original.short_id} (it had no saved reply to branch from)"
    return (
        f"replay saved as branch {which} of {count} of {original.short_id}, "
        "beside the saved replies"
    )


def _replay(
    args: argparse.Namespace, run: ReplayRun, session: ChatSession, resolved: runtime.Resolved
) -> None:
    """Send each saved user turn again, showing the new replies as they stream."""
    stdout, stderr = sys.stdout, sys.stderr
    driver = Driver(debug=args.debug, notice=lambda t: say(stderr, f"note: {t}"))

    def show(text: str) -> None:
        stdout.write(terminal_safe(text))
        stdout.flush()

    try:
        session.set_model(load_model(driver, resolved, stderr, debug=args.debug))
        original = run.original
        say(stderr, f"replaying {len(run.plan)} turn(s) of {original.short_id} “{original.title}”")
        while (step := run.current) is not None:
            session.generation = run.settings()
            say(stdout, f"USER: {step.prompt}")
            stdout.write("ASSISTANT: ")
            stdout.flush()
            saved = step.old.content if step.old is not None else ""
            result = driver.ask(session.replay_turn(step.prompt, saved), show)
            say(stdout)
            run.record(session.record_result(result))
            if isinstance(result, ReplyFailed):
                say(stderr, describe_failure(result.error))
        session.generation = resolved.generation
    finally:
        driver.close()


def _report(comparisons: list[replay_mod.Comparison], stdout: TextIO) -> None:
    width = min(shutil.get_terminal_size((100, 20)).columns, 100)
    say(stdout)
    say(stdout, "=" * width)
    for number, comparison in enumerate(comparisons, start=1):
        verdict = "identical" if comparison.identical else "differs"
        say(stdout, f"turn {number}: {verdict} — {comparison.prompt[:60]}")
        say(stdout, f"{'saved reply':<{(width - 3) // 2}} │ replay")
        for row in replay_mod.side_by_side(comparison, width):
            say(stdout, row)
        if not comparison.identical and comparison.old is not None:
            say(stdout, "diff: " + replay_mod.inline_diff(comparison))
        say(stdout)


def _question_set(args: argparse.Namespace) -> int:
    stderr = sys.stderr
    path = Path(args.source).expanduser()
    questions = list(read_questions(path))
    output = (
        Path(args.output).expanduser()
        if args.output
        else path.with_name(path.name.removesuffix(".jsonl") + ".answers.jsonl")
    )
    # Before the model loads: a folder, a link or a missing folder is said at once.
    refused = writable.output_problem(output, replace=True, example="answers.jsonl")
    if refused:
        raise SettingsError(f"cannot write the answers: {refused[0]}", refused[1])
    resolved = runtime.resolve(args)
    for warning in resolved.warnings:
        say(stderr, f"warning: {warning}")
    runtime.apply_gpus(resolved.load)
    driver = Driver(debug=args.debug, notice=lambda t: say(stderr, f"note: {t}"))
    failures = 0
    try:
        info = load_model(driver, resolved, stderr, debug=args.debug)
        with locations.open_private(output) as out:
            for index, (line, record, prompts) in enumerate(questions, start=1):
                entry, failed = _answer(driver, resolved, info, record, prompts)
                entry = {"line": line, **entry}
                failures += failed
                out.write(json_line(entry) + "\n")
                out.flush()
                verdict = "failed" if failed else "ok"
                say(stderr, f"[{index}/{len(questions)}] line {line}: {verdict}")
    finally:
        driver.close()
    say(stderr, f"wrote {len(questions)} answer(s) to {output}")
    return 1 if failures else 0


def _answer(
    driver: Driver,
    resolved: runtime.Resolved,
    info: ModelInfo,
    record: dict[str, Any],
    prompts: list[str],
) -> tuple[dict[str, Any], int]:
    """One question's answers (each turn in one new chat, not saved) and its failures."""
    session = runtime.new_session(resolved, None)
    session.set_model(info)
    results = ask_turns(driver, session, prompts)
    failures = sum(isinstance(r, ReplyFailed) for r in results)
    answers = [
        {
            k: v
            for k, v in reply_record(prompt, result, session).items()
            if k not in ("model", "conversation_id")
        }
        for prompt, result in zip(prompts, results, strict=True)
    ]
    entry = {k: v for k, v in record.items() if k not in ("prompt", "text", "turns")}
    entry.update({"model": info.name, "settings": dataclasses.asdict(resolved.generation)})
    if len(answers) == 1:
        entry.update(answers[0])
    else:
        entry["turns"] = answers
    return entry, failures
