"""Replaying a saved conversation, or a question set, through the current model.

A conversation replay sends the saved user turns, in order, as a new conversation
linked to the original (``replay_of``).  Unless told otherwise it reuses each saved
reply's seed, so with the same model and settings (or greedy decoding) the replies
come out exactly as saved.  ``compare`` pairs old and new replies with a word diff.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.errors import VicunaError
from vicuna_tui.store import Conversation, SavedMessage


@dataclass(frozen=True)
class ReplayStep:
    prompt: str
    old: SavedMessage | None


def steps(conv: Conversation) -> list[ReplayStep]:
    """Each user message with the reply saved after it (if any)."""
    out = []
    messages = conv.messages
    for index, message in enumerate(messages):
        if message.role != "user":
            continue
        nxt = messages[index + 1] if index + 1 < len(messages) else None
        out.append(ReplayStep(message.content, nxt if nxt and nxt.role == "assistant" else None))
    return out


def settings_for(
    step: ReplayStep, base: GenerationSettings, *, reuse_seeds: bool
) -> GenerationSettings:
    """The saved reply's seed, when the run has none of its own and sampling is on."""
    if reuse_seeds and base.seed is None and step.old is not None and step.old.seed is not None:
        return dataclasses.replace(base, seed=step.old.seed)
    return base


@dataclass(frozen=True)
class Comparison:
    prompt: str
    old: str | None
    new: str
    identical: bool
    diff: list[tuple[str, str]]  # (op, words): op is "=", "-" or "+"


def compare(prompt: str, old: str | None, new: str) -> Comparison:
    if old is None:
        return Comparison(prompt, None, new, False, [("+", new)])
    a, b = old.split(" "), new.split(" ")
    ops: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(("=", " ".join(a[i1:i2])))
        else:
            if i2 > i1:
                ops.append(("-", " ".join(a[i1:i2])))
            if j2 > j1:
                ops.append(("+", " ".join(b[j1:j2])))
    return Comparison(prompt, old, new, old == new, ops)


def side_by_side(comparison: Comparison, width: int = 100) -> list[str]:
    """Old and new reply in two columns (plain text)."""
    import textwrap

    column = max(20, (width - 3) // 2)
    left = textwrap.wrap(comparison.old or "(no saved reply)", column) or [""]
    right = textwrap.wrap(comparison.new, column) or [""]
    rows = max(len(left), len(right))
    left += [""] * (rows - len(left))
    right += [""] * (rows - len(right))
    return [f"{a:<{column}} │ {b}" for a, b in zip(left, right, strict=True)]


def inline_diff(comparison: Comparison) -> str:
    """A word diff: [-removed-] {+added+}."""
    parts = []
    for op, words in comparison.diff:
        parts.append(words if op == "=" else f"[-{words}-]" if op == "-" else f"{{+{words}+}}")
    return " ".join(p for p in parts if p)


# --- question sets ----------------------------------------------------------------------


class QuestionFileError(VicunaError):
    pass


def read_questions(path: Path) -> Iterator[tuple[int, dict[str, Any], list[str]]]:
    """(line number, the record, its prompts) for each line of a JSONL question set.

    A line holds {"prompt": ...}; {"text": ...} (Vicuna's question format) and
    {"turns": [...]} (several turns, MT-bench style) work too.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise QuestionFileError(f"no such file: {path}", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionFileError(f"cannot read {path}: {exc}", "check the file") from None
    parsed = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(
                f"{path}:{number} is not JSON ({exc.msg})",
                'each line must be an object like {"prompt": "..."}',
            ) from None
        if not isinstance(record, dict):
            raise QuestionFileError(
                f"{path}:{number} is not an object",
                'each line must be an object like {"prompt": "..."}',
            )
        prompts: list[str]
        if isinstance(record.get("prompt"), str):
            prompts = [record["prompt"]]
        elif isinstance(record.get("text"), str):
            prompts = [record["text"]]
        elif (
            isinstance(record.get("turns"), list)
            and all(isinstance(t, str) for t in record["turns"])
            and record["turns"]
        ):
            prompts = list(record["turns"])
        else:
            raise QuestionFileError(
                f'{path}:{number} has no "prompt" text',
                'each line must be an object like {"prompt": "..."}',
            )
        parsed.append((number, record, prompts))
    if not parsed:
        raise QuestionFileError(f"{path} holds no questions", 'add lines like {"prompt": "..."}')
    return iter(parsed)
