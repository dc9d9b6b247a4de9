"""``vicuna-tui replay ID|FILE.jsonl``: replay a saved conversation, or answer a question
set, with the current model and settings."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from vicuna_tui import locations, runtime
from vicuna_tui import replay_plan as replay_mod
from vicuna_tui.commands.chat_cmd import announce
from vicuna_tui.commands.flags import add_generation_flags, add_model_flags
from vicuna_tui.engine.events import ReplyDone
from vicuna_tui.errors import SettingsError
from vicuna_tui.frontends.driver import Driver, ProgressLine, describe_failure
from vicuna_tui.frontends.linechat import reply_record
from vicuna_tui.session import ChatSession
from vicuna_tui.store import Store
from vicuna_tui.textsafe import json_line, terminal_safe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicuna-tui replay",
        description="Send a saved conversation's user turns again (as a new, linked "
        "conversation) and compare old and new replies; or answer a JSONL question set.",
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
    if args.source.endswith(".jsonl") or Path(args.source).is_file():
        return _question_set(args)
    return _conversation(args)


def _say(stream: TextIO, text: str = "") -> None:
    stream.write(terminal_safe(text) + "\n")
    stream.flush()


def _conversation(args: argparse.Namespace) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    store = Store()
    try:
        original = store.get(store.resolve(args.source))
        plan = replay_mod.steps(original)
        if not plan:
            raise SettingsError(
                f"conversation {original.short_id} has no user messages",
                "pick another with `vicuna-tui sessions list`",
            )
        resolved = runtime.resolve(args, original)
        for warning in resolved.warnings:
            _say(stderr, f"warning: {warning}")
        runtime.apply_gpus(resolved.load)
        style = args.style or ("tui" if sys.stdin.isatty() and stdout.isatty() else "simple")
        if style == "tui":
            from vicuna_tui.tui.app import run_tui

            return run_tui(
                resolved,
                store,
                conversation_id=original.id,
                debug=args.debug,
                replay=True,
                reuse_seeds=not args.new_seeds,
            )
        session = ChatSession(
            store,
            generation=resolved.generation,
            template=resolved.template,
            system_message=resolved.system_message,
            load=resolved.load,
            endpoint=resolved.remote.endpoint if resolved.remote else None,
            warn=lambda text: _say(stderr, f"warning: {text}"),
        )
        session.replay_of = original.id
        driver = Driver(debug=args.debug, notice=lambda t: _say(stderr, f"note: {t}"))
        try:
            progress = ProgressLine(stderr)
            try:
                info = driver.load(runtime.make_backend(resolved), progress)
            finally:
                progress.clear()
            session.set_model(info)
            announce(info, stderr, session.resolved_template)
            _say(stderr, f"replaying {len(plan)} turn(s) of {original.short_id} “{original.title}”")
            comparisons = []
            for step in plan:
                session.generation = replay_mod.settings_for(
                    step, resolved.generation, reuse_seeds=not args.new_seeds
                )
                _say(stdout, f"USER: {step.prompt}")
                stdout.write("ASSISTANT: ")
                stdout.flush()

                def show(text: str) -> None:
                    stdout.write(terminal_safe(text))
                    stdout.flush()

                result = driver.ask(session.add_user(step.prompt), show)

                _say(stdout)
                if isinstance(result, ReplyDone):
                    session.record_reply(result.text, result.finish_reason, result.stats)
                    new_text = result.text
                else:
                    session.record_failure(result.partial_text)
                    _say(stderr, describe_failure(result.error))
                    new_text = result.partial_text
                comparisons.append(
                    replay_mod.compare(
                        step.prompt, step.old.content if step.old else None, new_text
                    )
                )
            session.generation = resolved.generation
        finally:
            driver.close()
        _report(comparisons, stdout)
        new_id = session.conversation.id if session.conversation else "?"
        same = sum(c.identical for c in comparisons)
        _say(
            stdout,
            f"replay saved as {new_id[:8]} (replay of {original.short_id}): "
            f"{same} of {len(comparisons)} replies identical",
        )
        return 0
    finally:
        store.close()


def _report(comparisons: list[replay_mod.Comparison], stdout: TextIO) -> None:
    width = shutil.get_terminal_size((100, 20)).columns
    _say(stdout)
    _say(stdout, "=" * min(width, 100))
    for number, comparison in enumerate(comparisons, start=1):
        verdict = "identical" if comparison.identical else "differs"
        _say(stdout, f"turn {number}: {verdict} — {comparison.prompt[:60]}")
        _say(stdout, f"{'saved reply':<{(min(width, 100) - 3) // 2}} │ replay")
        for row in replay_mod.side_by_side(comparison, min(width, 100)):
            _say(stdout, row)
        if not comparison.identical and comparison.old is not None:
            _say(stdout, "diff: " + replay_mod.inline_diff(comparison))
        _say(stdout)


def _question_set(args: argparse.Namespace) -> int:
    stderr = sys.stderr
    path = Path(args.source).expanduser()
    questions = list(replay_mod.read_questions(path))
    output = (
        Path(args.output).expanduser()
        if args.output
        else path.with_name(path.name.removesuffix(".jsonl") + ".answers.jsonl")
    )
    resolved = runtime.resolve(args)
    for warning in resolved.warnings:
        _say(stderr, f"warning: {warning}")
    runtime.apply_gpus(resolved.load)
    driver = Driver(debug=args.debug, notice=lambda t: _say(stderr, f"note: {t}"))
    failures = 0
    try:
        progress = ProgressLine(stderr)
        try:
            info = driver.load(runtime.make_backend(resolved), progress)
        finally:
            progress.clear()
        announce(info, stderr, info.template if resolved.template == "auto" else resolved.template)

        with locations.open_private(output) as out:
            for index, (line, record, prompts) in enumerate(questions, start=1):
                session = ChatSession(
                    None,
                    generation=resolved.generation,
                    template=resolved.template,
                    system_message=resolved.system_message,
                    load=resolved.load,
                )
                session.set_model(info)
                answers = []
                for prompt in prompts:
                    result = driver.ask(session.add_user(prompt), lambda text: None)
                    if isinstance(result, ReplyDone):
                        session.record_reply(result.text, result.finish_reason, result.stats)
                    else:
                        failures += 1
                        session.record_failure(result.partial_text)
                    answers.append(reply_record(prompt, result, session))
                entry = {k: v for k, v in record.items() if k not in ("prompt", "text", "turns")}
                entry.update(
                    {
                        "line": line,
                        "model": info.name,
                        "settings": dataclasses.asdict(resolved.generation),
                    }
                )
                if len(answers) == 1:
                    entry.update(
                        {
                            k: v
                            for k, v in answers[0].items()
                            if k not in ("model", "conversation_id")
                        }
                    )
                else:
                    entry["turns"] = [
                        {k: v for k, v in a.items() if k not in ("model", "conversation_id")}
                        for a in answers
                    ]
                out.write(json_line(entry) + "\n")
                out.flush()
                _say(
                    stderr,
                    f"[{index}/{len(questions)}] line {line}: "
                    + (
                        "ok"
                        if all(a.get("finish_reason") != "error" for a in answers)
                        else "failed"
                    ),
                )
    finally:
        driver.close()
    _say(stderr, f"wrote {len(questions)} answer(s) to {output}")
    return 1 if failures else 0
