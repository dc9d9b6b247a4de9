"""The store's records (conversations, saved messages, search hits) and their rows."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def make_title(text: str, limit: int = 60) -> str:
    """A conversation's title: its first user message, trimmed to one short line."""
    line = " ".join(text.split())
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line or "New chat"


class AllRuns:
    """Lists every conversation, whichever run (if any) it belongs to."""


ALL_RUNS = AllRuns()


@dataclass
class SavedMessage:
    role: str
    content: str
    position: int = 0
    id: int | None = None
    created_at: str = ""
    prompt_tokens: int | None = None
    new_tokens: int | None = None
    time_to_first_token: float | None = None
    tokens_per_second: float | None = None
    seed: int | None = None
    finish_reason: str | None = None
    model: str | None = None  # replies: the model that wrote it
    backend: str | None = None  # transformers, llamacpp or remote
    template: str | None = None
    settings: dict[str, Any] | None = None  # the sampling settings it was made with
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)  # its name in the tree
    parent: str | None = None  # the message it follows (None: the first of a branch)
    chosen_child: str | None = None  # the message last shown below it (its branch)
    # replies written with the token view on: each token, its log-probability and the
    # likeliest alternatives (the engine's TokenLogprob.compact form)
    tokens: list[Any] | None = None
    # a reply branched from another reply's token: {"from": uid, "at": token index,
    # "token": the alternative chosen}
    fork: dict[str, Any] | None = None


@dataclass
class Conversation:
    id: str
    title: str
    created_at: str
    updated_at: str
    model_path: str | None = None
    model_name: str | None = None
    revision: str | None = None
    template: str | None = None
    system_message: str | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    backend: str = "local"
    endpoint: str | None = None
    replay_of: str | None = None
    run: str | None = None  # the bench run that made it (None: a person's own chat)
    active_leaf: str | None = None  # the last message of the branch shown
    messages: list[SavedMessage] = field(default_factory=list)  # the active path
    tree: list[SavedMessage] = field(default_factory=list)  # every branch, oldest first
    message_count: int = 0

    @property
    def short_id(self) -> str:
        return self.id[:8]


CONVERSATION_COLUMNS = (
    "id",
    "title",
    "created_at",
    "updated_at",
    "model_path",
    "model_name",
    "revision",
    "template",
    "system_message",
    "generation",
    "load",
    "backend",
    "endpoint",
    "replay_of",
    "run",
    "active_leaf",
)
MESSAGE_COLUMNS = (
    "id",
    "role",
    "content",
    "position",
    "created_at",
    "prompt_tokens",
    "new_tokens",
    "time_to_first_token",
    "tokens_per_second",
    "seed",
    "finish_reason",
    "model",
    "backend",
    "template",
    "settings",
    "uid",
    "parent",
    "chosen_child",
    "tokens",
    "fork",
)


def columns_of(row: sqlite3.Row, names: Sequence[str]) -> dict[str, Any]:
    """The named columns of ``row``; None for those an older schema lacks (read-only
    stores are not upgraded)."""
    present = set(row.keys())
    return {k: row[k] if k in present else None for k in names}


def conversation_from_row(row: sqlite3.Row, count: int = 0) -> Conversation:
    data = columns_of(row, CONVERSATION_COLUMNS)
    data["backend"] = data["backend"] or "local"
    data["generation"] = json_object(data["generation"])
    data["load"] = json_object(data["load"])
    return Conversation(**data, message_count=count)


def json_object(text: str | None) -> dict[str, Any]:
    """A stored JSON object; {} for one that is missing or unreadable (damage)."""
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def message_from_row(row: sqlite3.Row) -> SavedMessage:
    data = columns_of(row, MESSAGE_COLUMNS)
    data["settings"] = _json_of(data["settings"], dict)
    data["tokens"] = _json_of(data["tokens"], list)
    data["fork"] = _json_of(data["fork"], dict)
    return SavedMessage(**data)


def _json_of(text: str | None, kind: type) -> Any:
    """A stored JSON value of ``kind``; None when absent or damaged."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, kind) else None


def linked(messages: list[SavedMessage]) -> list[SavedMessage]:
    """Messages read from a store too old to have a tree (opened read-only, never
    upgraded): one branch, in position order, each named by its row id."""
    if all(m.uid is not None for m in messages):
        return messages
    ordered = sorted(messages, key=lambda m: m.position)
    previous: str | None = None
    for message in ordered:
        message.uid, message.parent = f"row{message.id}", previous
        previous = message.uid
    return ordered


@dataclass(frozen=True)
class EvaluationFile:
    """A judgment file that ``vicuna-tui judge`` wrote, for the evaluation screen."""

    path: str
    mode: str  # single | pairwise-baseline | pairwise-all
    judge: str
    questions: str | None  # the question file it judged
    updated_at: str


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    title: str
    position: int
    role: str
    snippet: str
    message_uid: str | None = None  # the message found, to open its branch


def conversation_row(conv: Conversation) -> tuple[Any, ...]:
    """``conv`` as the values of CONVERSATION_COLUMNS, in order."""
    values = {**{k: getattr(conv, k) for k in CONVERSATION_COLUMNS}}
    values["generation"] = json.dumps(conv.generation)
    values["load"] = json.dumps(conv.load)
    return tuple(values[k] for k in CONVERSATION_COLUMNS)


INSERT_CONVERSATION = (
    f"INSERT INTO conversations ({', '.join(CONVERSATION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(CONVERSATION_COLUMNS))})"
)

# Every message column but the row id, which SQLite assigns.
MESSAGE_INSERT_COLUMNS = ("conversation_id", *(c for c in MESSAGE_COLUMNS if c != "id"))
INSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(MESSAGE_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(MESSAGE_INSERT_COLUMNS))})"
)

# On the path from a leaf up to its root, each message's chosen_child becomes the next
# message down: the way back to this branch.  Parameters: the leaf, the conversation.
REMEMBER_PATH = """
    WITH RECURSIVE up(uid, parent) AS (
        SELECT uid, parent FROM messages WHERE uid = ?1 AND conversation_id = ?2
        UNION SELECT m.uid, m.parent FROM messages m JOIN up ON m.uid = up.parent
    )
    UPDATE messages SET chosen_child = (SELECT up.uid FROM up WHERE up.parent = messages.uid)
    WHERE conversation_id = ?2 AND uid IN (SELECT parent FROM up WHERE parent IS NOT NULL)
"""


def message_row(conversation_id: str, message: SavedMessage) -> tuple[Any, ...]:
    """``message`` as the values of MESSAGE_INSERT_COLUMNS, in order."""
    values: dict[str, Any] = {k: getattr(message, k) for k in MESSAGE_COLUMNS if k != "id"}
    values["conversation_id"] = conversation_id
    for name in ("settings", "tokens", "fork"):
        if values[name] is not None:
            values[name] = json.dumps(values[name])
    return tuple(values[k] for k in MESSAGE_INSERT_COLUMNS)
