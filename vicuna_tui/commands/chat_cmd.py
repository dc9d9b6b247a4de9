"""``vicuna-tui [flags]``: open a chat in the TUI, the simple or rich style, a pipe, or
answer one prompt (-p)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TextIO

from vicuna_tui import runtime
from vicuna_tui.commands.console import say
from vicuna_tui.commands.flags import constraint_from_args
from vicuna_tui.commands.startup import load_model
from vicuna_tui.engine.constraints import OutputConstraint
from vicuna_tui.engine.events import MAX_LOGPROBS, ReplyDone
from vicuna_tui.errors import SettingsError
from vicuna_tui.frontends.driver import Driver, raise_hangup_on_signals
from vicuna_tui.frontends.linechat import LineChat, PlainRenderer, Renderer, reply_record
from vicuna_tui.session import ChatSession
from vicuna_tui.store import Conversation, Store, StoreError
from vicuna_tui.textsafe import json_line


def main(args: argparse.Namespace) -> int:
    style = _style(args)
    constraint = constraint_from_args(args)  # read and checked before any model loads
    if not args.debug:
        from vicuna_tui.warnlog import send_warnings_to_log

        send_warnings_to_log()
    store, problem = runtime.open_store(args.no_save)
    if problem is not None:
        say(sys.stderr, f"warning: not saving this chat: {problem}")
    conversation = _resumed(args, store, problem)
    resolved = runtime.resolve(args, conversation)
    if args.logprobs is not None and resolved.load.speculation != "off":
        raise SettingsError(
            "--logprobs and speculative decoding cannot be used together: llama.cpp gives "
            "probabilities only for the tokens it did not draft",
            "leave out --logprobs, or turn speculation off (--speculate off)",
        )
    for warning in resolved.warnings:
        say(sys.stderr, f"warning: {warning}")
    runtime.apply_gpus(resolved.load)
    if style == "tui":
        from vicuna_tui.tui.app import VicunaApp

        return VicunaApp(
            resolved,
            store,
            conversation_id=conversation.id if conversation else None,
            debug=args.debug,
            not_saving=problem.message if problem else None,
            not_saving_hint=problem.hint if problem else None,
        ).run_chat()
    try:
        return _line_chat(args, style, resolved, store, conversation, problem, constraint)
    finally:
        if store is not None:
            store.close()


def _style(args: argparse.Namespace) -> str:
    """The front end to run: the flag's, or the TUI on a terminal and simple off one."""
    terminal = sys.stdin.isatty() and sys.stdout.isatty()
    style: str = args.style or ("tui" if terminal and args.prompt is None else "simple")
    if style == "tui" and (args.json_schema or args.grammar or args.logprobs is not None):
        raise SettingsError(
            "--json-schema, --grammar and --logprobs are for -p, a pipe and --style simple",
            "add -p 'your prompt', or pipe the prompts in",
        )
    if args.logprobs is not None and not 1 <= args.logprobs <= MAX_LOGPROBS:
        raise SettingsError(
            f"--logprobs {args.logprobs} is out of range",
            f"give a number of alternatives from 1 to {MAX_LOGPROBS}",
        )
    if style == "tui" and not terminal:
        raise SettingsError(
            "the TUI needs a terminal on stdin and stdout",
            "use --style simple for pipes, or -p for one prompt",
        )
    if args.json and args.prompt is None and sys.stdin.isatty():
        raise SettingsError(
            "--json works with -p or with input from a pipe",
            "add -p 'your prompt', or pipe prompts in",
        )
    return style


def _resumed(
    args: argparse.Namespace, store: Store | None, problem: StoreError | None
) -> Conversation | None:
    if not args.resume:
        return None
    if store is None:
        if problem is not None:
            raise problem
        raise SettingsError("--resume needs saved conversations", "drop --no-save")
    return store.get(store.resolve(args.resume))


def _line_chat(
    args: argparse.Namespace,
    style: str,
    resolved: runtime.Resolved,
    store: Store | None,
    conversation: Conversation | None,
    problem: StoreError | None,
    constraint: OutputConstraint | None,
) -> int:
    """The simple and rich styles, the pipe and -p: one engine, in this process."""
    stdin, stderr = sys.stdin, sys.stderr
    interactive = stdin.isatty()
    session = runtime.new_session(
        resolved,
        store,
        warn=lambda text: say(stderr, f"warning: {text}"),
        not_saving=problem.message if problem else None,
    )
    session.constraint = constraint
    session.logprobs = args.logprobs or 0
    if conversation is not None:
        session.open(conversation.id)
        session.update_settings(
            generation=resolved.generation,
            template=resolved.template,
            system_message=resolved.system_message,
        )
    driver = Driver(debug=args.debug, notice=lambda text: say(stderr, f"note: {text}"))
    raise_hangup_on_signals()
    try:
        session.set_model(load_model(driver, resolved, stderr, debug=args.debug))
        if args.prompt is not None:
            return _one_shot(args, session, driver, stdin, sys.stdout, stderr)
        renderer = _renderer(args, style, interactive)
        if interactive and conversation is not None:
            for message in session.messages:
                renderer.show_message(message.role, message.content)
        if interactive:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing and history for input())
        chat = LineChat(
            session,
            driver,
            renderer,
            stderr=stderr,
            # JSON records go with the plain renderer's replies (a pipe, or --style simple)
            json_out=sys.stdout if args.json and isinstance(renderer, PlainRenderer) else None,
            debug=args.debug,
            stats=args.stats or not interactive,
        )
        return chat.run()
    finally:
        driver.close()


def _renderer(args: argparse.Namespace, style: str, interactive: bool) -> Renderer:
    if style == "rich" and interactive:
        from rich.console import Console

        from vicuna_tui.frontends.rich_style import RichRenderer

        return RichRenderer(Console(), sys.stdin, multiline=args.multiline)
    return PlainRenderer(
        sys.stdin,
        sys.stdout,
        sys.stderr,
        interactive=interactive,
        multiline=args.multiline,
        json_mode=args.json,
    )


def _one_shot(
    args: argparse.Namespace,
    session: ChatSession,
    driver: Driver,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    prompt = stdin.read() if args.prompt == "-" else args.prompt
    prompt = prompt.strip("\n")
    if not prompt.strip():
        raise SettingsError("the prompt is empty", "pass text with -p, or pipe it in with -p -")
    renderer = PlainRenderer(stdin, stdout, stderr, interactive=False, json_mode=args.json)
    chat = LineChat(
        session,
        driver,
        renderer,
        stderr=stderr,
        debug=args.debug,
        stats=args.stats,
    )
    result = chat.respond(session.add_user(prompt), prompt)
    if args.json:
        stdout.write(json_line(reply_record(prompt, result, session)) + "\n")
        stdout.flush()
    return 0 if isinstance(result, ReplyDone) else 1
