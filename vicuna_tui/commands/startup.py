"""Starting a model from the command line (the progress line, then what loaded), and
asking it a question of several turns."""

from __future__ import annotations

from typing import TextIO

from vicuna_tui import runtime
from vicuna_tui.commands.console import say
from vicuna_tui.engine.events import ModelInfo, ReplyDone, ReplyFailed
from vicuna_tui.frontends.driver import Driver, ProgressLine
from vicuna_tui.session import ChatSession


def announce(info: ModelInfo, stream: TextIO, template: str) -> None:
    """Which model was picked, and from where."""
    say(stream, f"model: {info.describe()}")
    say(stream, f"  from: {info.source}")
    context = f"{info.context_length} tokens" if info.context_length else "as the server sets"
    say(stream, f"  template: {template}   context: {context}")
    if info.engine == "llamacpp" and info.kv_type:
        cache = f"up to {info.prompt_cache_mib} MiB" if info.prompt_cache_mib else "off"
        say(stream, f"  KV cache: {info.kv_type}   prompt cache: {cache}")
    if info.speculation:
        say(stream, f"  speculation: {info.speculation}")
    for notice in info.notices:
        say(stream, f"  note: {notice}")


def load_model(
    driver: Driver, resolved: runtime.Resolved, stderr: TextIO, *, debug: bool = False
) -> ModelInfo:
    """Load the resolved model with a progress line on ``stderr``, then say what loaded."""
    progress = ProgressLine(stderr)
    try:
        info = driver.load(runtime.make_backend(resolved, debug=debug), progress)
    finally:
        progress.clear()
    template = info.template if resolved.template == "auto" else resolved.template
    announce(info, stderr, template)
    return info


def ask_turns(
    driver: Driver, session: ChatSession, prompts: list[str]
) -> list[ReplyDone | ReplyFailed]:
    """Each prompt in turn, in the one conversation of ``session``; every reply recorded."""
    results: list[ReplyDone | ReplyFailed] = []
    for prompt in prompts:
        result = driver.ask(session.add_user(prompt), lambda text: None)
        session.record_result(result)
        results.append(result)
    return results
