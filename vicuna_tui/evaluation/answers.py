"""Model-answer JSONL, FastChat's format (``question_id, answer_id, model_id, choices, tstamp``), so
that FastChat's own scripts read what we write."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vicuna_tui import bounded, locations
from vicuna_tui.errors import SettingsError


def question_id(record: dict[str, Any], line: int) -> int | str:
    """The record's ``question_id``, else its line number (our own {"prompt"} files)."""
    value = record.get("question_id")
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else line


def answer_record(
    qid: int | str,
    model_id: str,
    choices: Sequence[Sequence[str]],
    speculation: Sequence[Sequence[str | None]] = (),
) -> dict[str, Any]:
    """``speculation``: what drafted each turn of each choice (None: nothing), kept in
    a choice beside its turns when any of them speculated (FastChat's readers take
    ``turns`` and pass over it)."""
    out = []
    for index, turns in enumerate(choices):
        choice: dict[str, Any] = {"index": index, "turns": list(turns)}
        drafted = list(speculation[index]) if index < len(speculation) else []
        if any(drafted):
            choice["speculation"] = drafted
        out.append(choice)
    return {
        "question_id": qid,
        "answer_id": uuid.uuid4().hex,
        "model_id": model_id,
        "choices": out,
        "tstamp": time.time(),
    }


def question_records(path: Path) -> list[dict[str, Any]]:
    """The JSONL objects in ``path`` that carry a ``question_id`` (none when the file
    does not exist; bad lines skipped: a run killed mid-write leaves at most a cut
    last line).  A file that cannot be read is refused with its name."""
    if not path.exists():
        return []
    try:
        text = bounded.read_text(path, limit=bounded.LINES_LIMIT, what="JSONL file")
    except bounded.InputError as exc:
        raise SettingsError(exc.message, exc.hint) from None
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # not an answer: skipped, as a torn line
            continue
        if isinstance(record, dict) and "question_id" in record:
            out.append(record)
    return out


def answered(path: Path) -> set[int | str]:
    """The question ids that ``path`` already answers (a rerun skips them)."""
    return {r["question_id"] for r in question_records(path)}


def tidy(path: Path) -> int:
    """Sort the answers by question id, one per id (the last), as FastChat's
    ``reorg_answer_file`` does; returns how many."""
    latest = {r["question_id"]: r for r in question_records(path)}
    ordered = sorted(
        latest.values(), key=lambda r: (isinstance(r["question_id"], str), r["question_id"])
    )
    with locations.open_private(path) as handle:
        for record in ordered:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(ordered)


def read_answer_dir(folder: Path) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every model's answers in ``folder`` (MODEL_ID.jsonl files), by question id, as
    FastChat's ``load_model_answers`` reads them."""
    if not folder.is_dir():
        return {}
    return {
        path.name[: -len(".jsonl")]: {r["question_id"]: r for r in question_records(path)}
        for path in sorted(folder.glob("*.jsonl"))
    }


def read_answer_file(path: Path) -> dict[Any, dict[str, Any]]:
    """One answer file's records by question id (a reference answer file, say)."""
    return {r["question_id"]: r for r in question_records(path)}
