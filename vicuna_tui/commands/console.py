"""What the subcommands print, and how they ask: never a control sequence from stored
text, and never a question without a terminal to answer it."""

from __future__ import annotations

import sys
from typing import TextIO

from vicuna_tui.errors import SettingsError
from vicuna_tui.textsafe import terminal_safe


def out(text: str) -> None:
    sys.stdout.write(terminal_safe(text) + "\n")


def confirmed(yes: bool, question: str, refusal: str) -> bool:
    """``--yes``, or a "y" typed at a terminal; without a terminal, a clear refusal."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise SettingsError(
            f"{refusal} without confirmation", "pass --yes to go ahead without asking"
        )
    answer = input(terminal_safe(f"{question} [y/N] "))
    return answer.strip().lower() in ("y", "yes")


def say(stream: TextIO, text: str = "") -> None:
    stream.write(terminal_safe(text) + "\n")
    stream.flush()
