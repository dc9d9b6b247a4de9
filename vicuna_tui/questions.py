"""Question sets: JSONL files of prompts to answer (``vicuna-tui replay FILE.jsonl``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vicuna_tui import bounded
from vicuna_tui.errors import VicunaError


class QuestionFileError(VicunaError):
    pass


def read_questions(path: Path) -> Iterator[tuple[int, dict[str, Any], list[str]]]:
    """(line number, the record, its prompts) for each line of a JSONL question set.

    A line holds {"prompt": ...}; {"text": ...} (Vicuna's question format) and
    {"turns": [...]} (several turns, MT-bench style) work too.
    """
    try:
        text = bounded.read_text(path, limit=bounded.LINES_LIMIT, what="question file")
    except bounded.InputError as exc:
        raise QuestionFileError(exc.message, exc.hint) from None
    lines = text.splitlines()
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
        except RecursionError:  # e.g. an array 10,000 levels deep
            raise QuestionFileError(
                f"{path}:{number} nests its JSON too deeply to be a question",
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
