"""A conversation's messages as the turns of a prompt."""

from __future__ import annotations

from collections.abc import Sequence

from vicuna_tui.engine.templates import ASSISTANT, USER
from vicuna_tui.store import SavedMessage


def prompt_turns(messages: Sequence[SavedMessage]) -> tuple[tuple[str, str], ...]:
    """(role, text) pairs for the prompt: each user message with its reply.

    A user message that never got a reply (a crash mid-reply) is left out, except
    the last one, which is the message being answered.
    """
    out: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        if msg.role != USER:
            continue
        reply = messages[i + 1] if i + 1 < len(messages) else None
        if reply is not None and reply.role == ASSISTANT:
            out += [(USER, msg.content), (ASSISTANT, reply.content)]
        elif i == len(messages) - 1:
            out.append((USER, msg.content))
    return tuple(out)
