"""Writing a new database from the rows ``salvage`` could read out of a damaged one:
conversations (with defaults for damaged fields), messages parents first (each branch
kept; one whose parent was lost starts its own), arena battles with their votes, and
the judgment files listed.  A row the new schema refuses is counted, never guessed at.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vicuna_tui.store.battles import BATTLE_COLUMNS
from vicuna_tui.store.database import Store
from vicuna_tui.store.records import CONVERSATION_COLUMNS, MESSAGE_COLUMNS, make_title, now

_MSG_FIELDS = ("conversation_id", *(c for c in MESSAGE_COLUMNS if c != "id"))


def _value(row: sqlite3.Row, name: str) -> Any:
    return row[name] if name in row.keys() else None  # noqa: SIM118 (Row: in = values)


@dataclass
class Readable:
    """What could be read from the damaged file, table by table."""

    conversations: list[sqlite3.Row] = field(default_factory=list)
    messages: list[sqlite3.Row] = field(default_factory=list)
    battles: list[sqlite3.Row] = field(default_factory=list)
    evaluation_files: list[sqlite3.Row] = field(default_factory=list)
    unreadable: dict[str, int] = field(default_factory=dict)
    # row ids below the newest that a whole scan did not return: deleted, or lost to a
    # damaged page that SQLite skips without an error
    missing: dict[str, int] = field(default_factory=dict)


@dataclass
class Written:
    conversations: int = 0
    messages: int = 0
    orphans: int = 0
    refused_messages: int = 0
    battles: int = 0
    refused_battles: int = 0
    evaluation_files: int = 0


def write(target: Path, found: Readable) -> Written:
    """Write what was read into a new database at ``target``."""
    with Store(target) as store:
        db = store.db
        db.execute("BEGIN")
        known = _write_conversations(db, found.conversations)
        done = Written(conversations=len(known))
        done.orphans = _write_orphans(db, found.messages, known)
        done.messages, done.refused_messages = _write_messages(db, found.messages)
        done.battles, done.refused_battles = _write_battles(db, found.battles, known)
        done.evaluation_files = _write_evaluation_files(db, found.evaluation_files)
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode = DELETE")
    return done


def _write_messages(db: sqlite3.Connection, messages: list[sqlite3.Row]) -> tuple[int, int]:
    """(written, refused): parents before children, each branch kept."""
    written = refused = 0
    placed: set[str] = set()  # the uids written, so that children find their parent
    previous: dict[Any, str] = {}  # each conversation's last message (old stores)
    for row in sorted(messages, key=_tree_order):
        values = {f: _value(row, f) for f in _MSG_FIELDS}
        for name in ("settings", "tokens", "fork"):
            if not _is_json(values[name]):
                values[name] = None
        _place(values, placed, previous)
        try:
            _insert(db, "messages", values)
            written += 1
            placed.add(values["uid"])
            previous[values["conversation_id"]] = values["uid"]
        except sqlite3.IntegrityError:
            refused += 1
    return written, refused


_VOTES = frozenset({"a", "b", "tie", "bothbad"})


def _write_battles(
    db: sqlite3.Connection, rows: Iterable[sqlite3.Row], known: set[str]
) -> tuple[int, int]:
    """(written, refused): each battle with its vote; a conversation of it that was lost
    is left out of it (as deleting one does)."""
    written = refused = 0
    for row in rows:
        values = {c: _value(row, c) for c in BATTLE_COLUMNS}
        if not all(isinstance(values[c], str) and values[c] for c in ("id", "model_a", "model_b")):
            refused += 1
            continue
        for side in ("conversation_a", "conversation_b"):
            if values[side] not in known:
                values[side] = None
        values["created_at"] = values["created_at"] or now()
        values["updated_at"] = values["updated_at"] or values["created_at"]
        values["blind"] = 1 if values["blind"] is None else values["blind"]
        values["swapped"] = values["swapped"] or 0
        values["turns"] = values["turns"] or 0
        if values["vote"] not in _VOTES:
            values["vote"] = values["voted_at"] = None
        values["settings"] = values["settings"] if _is_json(values["settings"]) else "{}"
        try:
            _insert(db, "battles", values)
            written += 1
        except sqlite3.IntegrityError:
            refused += 1
    return written, refused


def _write_evaluation_files(db: sqlite3.Connection, rows: Iterable[sqlite3.Row]) -> int:
    """The judgment files listed (pointers to files, which are not in the database)."""
    written = 0
    for row in rows:
        values = {c: _value(row, c) for c in ("path", "mode", "judge", "questions", "updated_at")}
        if not all(isinstance(values[c], str) for c in ("path", "mode", "judge")):
            continue
        values["updated_at"] = values["updated_at"] or now()
        with contextlib.suppress(sqlite3.IntegrityError):
            _insert(db, "evaluation_files", values)
            written += 1
    return written


def _is_json(text: Any) -> bool:
    try:
        json.loads(text)
    except (TypeError, ValueError):
        return False
    return True


def _tree_order(row: sqlite3.Row) -> tuple[Any, int, int]:
    """Parents before children: by conversation, depth, then age."""
    return (
        str(_value(row, "conversation_id")),
        int(_value(row, "position") or 0),
        int(_value(row, "id") or 0),
    )


def _place(values: dict[str, Any], placed: set[str], previous: dict[Any, str]) -> None:
    """A message from a store older than branches follows the one before it; one whose
    parent was lost starts a branch of its own (kept, not refused)."""
    if not values.get("uid"):
        values["uid"] = uuid.uuid4().hex
        values["parent"] = previous.get(values["conversation_id"])
    elif values.get("parent") not in placed:
        values["parent"] = None


def _insert(db: sqlite3.Connection, table: str, values: dict[str, Any]) -> None:
    db.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        tuple(values.values()),
    )


def _write_conversations(db: sqlite3.Connection, rows: Iterable[sqlite3.Row]) -> set[str]:
    """The readable conversations, with defaults for damaged fields; their ids."""
    known: set[str] = set()
    for row in rows:
        conv_id = _value(row, "id")
        if not isinstance(conv_id, str) or conv_id in known:
            continue
        values = {c: _value(row, c) for c in CONVERSATION_COLUMNS}
        values["title"] = values["title"] or "Recovered chat"
        values["created_at"] = values["created_at"] or now()
        values["updated_at"] = values["updated_at"] or values["created_at"]
        values["generation"] = values["generation"] or "{}"
        values["load"] = values["load"] or "{}"
        values["backend"] = values["backend"] or "local"
        values["replay_of"] = None  # the chat it replays may be lost
        _insert(db, "conversations", values)
        known.add(conv_id)
    return known


def _write_orphans(db: sqlite3.Connection, messages: list[sqlite3.Row], known: set[str]) -> int:
    """A conversation "(recovered)" for messages whose own was lost; how many."""
    first_question: dict[str, str] = {}
    for row in sorted(messages, key=lambda m: _value(m, "position") or 0):
        if _value(row, "role") == "user":
            first_question.setdefault(str(_value(row, "conversation_id")), str(row["content"]))
    orphans = 0
    for row in messages:
        conv_id = _value(row, "conversation_id")
        if isinstance(conv_id, str) and conv_id not in known:
            first = first_question.get(conv_id, "")
            stamp = _value(row, "created_at") or now()
            title = f"{make_title(first, 48)} (recovered)"
            _insert(
                db,
                "conversations",
                {"id": conv_id, "title": title, "created_at": stamp, "updated_at": stamp},
            )
            known.add(conv_id)
            orphans += 1
    return orphans
