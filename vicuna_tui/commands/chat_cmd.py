"""``vicuna-tui [flags]``: open a chat in the TUI, the simple or rich style, a pipe, or
answer one prompt (-p)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from vicuna_tui import runtime
from vicuna_tui.engine.events import ModelInfo, ReplyDone
from vicuna_tui.errors import SettingsError
from vicuna_tui.frontends.driver import Driver, ProgressLine, raise_hangup_on_signals
from vicuna_tui.frontends.linechat import LineChat, PlainRenderer, Renderer, reply_record
from vicuna_tui.session import ChatSession
from vicuna_tui.textsafe import json_line, terminal_safe


def _say(stream: TextIO, text: str) -> None:
    stream.write(terminal_safe(text) + "\n")
    stream.flush()


def announce(info: ModelInfo, stream: TextIO, template: str) -> None:
    """Which model was picked, and from where."""
    _say(stream, f"model: {info.describe()}")
    _say(stream, f"  from: {info.source}")
    context = f"{info.context_length} tokens" if info.context_length else "as the server sets"
    _say(stream, f"  template: {template}   context: {context}")

    for notice in info.notices:
        _say(stream, f"  note: {notice}")


def main(args: argparse.Namespace) -> int:
    stdin, stdout, stderr = sys.stdin, sys.stdout, sys.stderr
    interactive = stdin.isatty()
    style = args.style
    if style is None:
        style = "tui" if interactive and stdout.isatty() and args.prompt is None else "simple"
    if style == "tui" and (not interactive or not stdout.isatty()):
        raise SettingsError(
            "the TUI needs a terminal on stdin and stdout",
            "use --style simple for pipes, or -p for one prompt",
        )
    if args.json and args.prompt is None and interactive:
        raise SettingsError(
            "--json works with -p or with input from a pipe",
            "add -p 'your prompt', or pipe prompts in",
        )

    if not args.debug:
        from vicuna_tui.warnlog import send_warnings_to_log

        send_warnings_to_log()
    store, store_problem = runtime.open_store(args.no_save)
    not_saving = not_saving_hint = None
    if store_problem is not None:
        not_saving, not_saving_hint = store_problem.message, store_problem.hint
        _say(stderr, f"warning: not saving this chat: {store_problem.message}")
        if store_problem.hint:
            _say(stderr, f"  hint: {store_problem.hint}")
    conversation = None
    if args.resume:
        if store is None and store_problem is not None:
            raise store_problem
        if store is None:
            raise SettingsError("--resume needs saved conversations", "drop --no-save")
        conversation = store.get(store.resolve(args.resume))
    resolved = runtime.resolve(args, conversation)
    for warning in resolved.warnings:
        _say(stderr, f"warning: {warning}")
    runtime.apply_gpus(resolved.load)

    if style == "tui":
        from vicuna_tui.tui.app import run_tui

        return run_tui(
            resolved,
            store,
            conversation_id=conversation.id if conversation else None,
            debug=args.debug,
            not_saving=not_saving,
            not_saving_hint=not_saving_hint,
        )

    session = ChatSession(
        store,
        generation=resolved.generation,
        template=resolved.template,
        system_message=resolved.system_message,
        load=resolved.load,
        endpoint=resolved.remote.endpoint if resolved.remote else None,
        warn=lambda text: _say(stderr, f"warning: {text}"),
        not_saving=not_saving,
    )
    if conversation is not None:
        session.open(conversation.id)
        session.update_settings(
            generation=resolved.generation,
            template=resolved.template,
            system_message=resolved.system_message,
        )

    driver = Driver(debug=args.debug, notice=lambda text: _say(stderr, f"note: {text}"))
    raise_hangup_on_signals()
    try:
        progress = ProgressLine(stderr)
        try:
            info = driver.load(runtime.make_backend(resolved, debug=args.debug), progress)
        finally:
            progress.clear()
        session.set_model(info)
        announce(info, stderr, session.resolved_template)
        if args.prompt is not None:
            return _one_shot(args, session, driver, stdin, stdout, stderr)
        if style == "rich" and interactive:
            from rich.console import Console

            from vicuna_tui.frontends.rich_style import RichRenderer

            renderer: Renderer = RichRenderer(Console(), stdin, multiline=args.multiline)
        else:
            renderer = PlainRenderer(
                stdin,
                stdout,
                stderr,
                interactive=interactive,
                multiline=args.multiline,
                json_mode=args.json,
            )
        if interactive and conversation is not None:
            for message in session.messages:
                renderer.show_message(message.role, message.content)
        if interactive:
            import contextlib

            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing and history for input())
        chat = LineChat(
            session,
            driver,
            renderer,
            stderr=stderr,
            json_mode=args.json,
            debug=args.debug,
            stats=args.stats or not interactive,
        )
        return chat.run()
    finally:
        driver.close()
        if store is not None:
            store.close()


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
        json_mode=False,
        debug=args.debug,
        stats=args.stats,
    )
    result = chat.respond(session.add_user(prompt), prompt)
    if args.json:
        stdout.write(json_line(reply_record(prompt, result, session)) + "\n")
        stdout.flush()
    return 0 if isinstance(result, ReplyDone) else 1
