"""Every conversation, saved locally in SQLite.

One module owns the database: the schema, its migrations and every query.  The
schema version lives in ``PRAGMA user_version`` and is raised by ordered migrations;
a database written by a newer vicuna-tui is refused and left untouched.

Durability: WAL journal, ``synchronous=FULL``, one transaction per write.  The user's
turn is committed before generation starts and the reply when it ends, so ``kill -9``
loses at most the reply in flight.  Two processes may share the database
(``busy_timeout``).  Files are created 0600, folders 0700.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from vicuna_tui import locations, writable
from vicuna_tui.engine.errors import VicunaError

_T = TypeVar("_T")


class StoreError(VicunaError):
    """The conversation database cannot be used or written.

    ``kind`` says why: ``damaged``, ``read-only`` (a folder, file or file system),
    ``full``, ``locked``, ``newer`` (a newer schema) or ``error``.
    """

    def __init__(self, message: str, hint: str = "", *, kind: str = "error") -> None:
        super().__init__(message, hint)
        self.kind = kind

    @property
    def keeps_data(self) -> bool:
        """Whether the saved conversations are still there to read (not damaged)."""
        return self.kind in ("read-only", "full", "locked")


DAMAGE_MARKS = ("malformed", "not a database", "corrupt", "encrypted")
REPAIR_HINT = (
    "run `vicuna-tui sessions repair` to save every conversation that can still be "
    "read into a new file (the damaged one is kept), or `vicuna-tui sessions check` "
    "for details"
)


def explain(exc: BaseException, path: Path) -> StoreError:
    """A StoreError that names what is really wrong with ``path``."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc).lower()
    if isinstance(exc, sqlite3.DatabaseError) and any(m in text for m in DAMAGE_MARKS):
        return StoreError(f"{path} is damaged ({exc})", REPAIR_HINT, kind="damaged")
    if isinstance(exc, OSError):
        problem = writable.os_error_problem(exc, path)
    elif "locked" in text or "busy" in text:
        return StoreError(
            f"{path} is locked by another program",
            "close other programs writing to it, then retry",
            kind="locked",
        )
    elif "full" in text:
        problem = f"the disk holding {path.parent} is full"
    else:
        found = writable.write_problem(path)
        if found is None:
            return StoreError(f"database error on {path}: {exc}", "run with --debug for details")
        problem = found
    kind = "full" if "full" in problem else "read-only"
    return StoreError(f"cannot save to {path}: {problem}", writable.fix_for(problem), kind=kind)


def _translated(method: Callable[..., _T]) -> Callable[..., _T]:
    """Turn any sqlite3 error a read meets into a StoreError that names the file."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise explain(exc, self.path) from None

    return wrapper


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def make_title(text: str, limit: int = 60) -> str:
    """A conversation's title: its first user message, trimmed to one short line."""
    line = " ".join(text.split())
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line or "New chat"


# --- schema -----------------------------------------------------------------------------


_V1 = """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            model_path TEXT,
            model_name TEXT,
            revision TEXT,
            template TEXT,
            system_message TEXT,
            generation TEXT NOT NULL DEFAULT '{}',
            load TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            created_at TEXT NOT NULL,
            prompt_tokens INTEGER,
            new_tokens INTEGER,
            time_to_first_token REAL,
            tokens_per_second REAL,
            seed INTEGER,
            finish_reason TEXT,
            UNIQUE (conversation_id, position)
        );
        CREATE INDEX conversations_updated ON conversations (updated_at);
"""


# v2: full-text search over message text (FTS5, kept in step by triggers).
_V2 = """
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            content, content='messages', content_rowid='id', tokenize='unicode61'
        );
        INSERT INTO messages_fts (rowid, content) SELECT id, content FROM messages;
        CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
        END;
        CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END;
"""


# v3: backends, endpoints and replay links.
_V3 = """
        ALTER TABLE conversations ADD COLUMN backend TEXT NOT NULL DEFAULT 'local';
        ALTER TABLE conversations ADD COLUMN endpoint TEXT;
        ALTER TABLE conversations ADD COLUMN replay_of TEXT
            REFERENCES conversations(id) ON DELETE SET NULL;
"""


# v4: what wrote each reply: the model, the backend that ran it (transformers,
# llamacpp, remote), the template and the sampling settings, as JSON.
_V4 = """
        ALTER TABLE messages ADD COLUMN model TEXT;
        ALTER TABLE messages ADD COLUMN backend TEXT;
        ALTER TABLE messages ADD COLUMN template TEXT;
        ALTER TABLE messages ADD COLUMN settings TEXT;
"""


# Ordered: MIGRATIONS[n - 1] takes a database from version n - 1 to n.  Never edit a
# released migration; add a new one.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4)
SCHEMA_VERSION = len(MIGRATIONS)

FINISH_REASONS = ("stop", "length", "cancelled", "error")


def migrate_one(db: sqlite3.Connection, number: int) -> None:
    """Apply migration ``number`` in one transaction (skipped if another process did)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] >= number:
            db.execute("ROLLBACK")
            return
        # executescript would commit first; run the script's statements one by one.
        for statement in _statements(MIGRATIONS[number - 1]):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (trigger bodies kept whole)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


# --- records ----------------------------------------------------------------------------


@dataclass
class Message:
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
    messages: list[Message] = field(default_factory=list)
    message_count: int = 0

    @property
    def short_id(self) -> str:
        return self.id[:8]


_CONV_COLUMNS = (
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
)
CONVERSATION_COLUMNS = _CONV_COLUMNS
_MSG_COLUMNS = (
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
)
MESSAGE_COLUMNS = _MSG_COLUMNS


def _columns(row: sqlite3.Row, names: Sequence[str]) -> dict[str, Any]:
    """The named columns of ``row``; None for those an older schema lacks (read-only
    stores are not upgraded)."""
    present = set(row.keys())
    return {k: row[k] if k in present else None for k in names}


def _conversation(row: sqlite3.Row, count: int = 0) -> Conversation:
    data = _columns(row, _CONV_COLUMNS)
    data["backend"] = data["backend"] or "local"
    data["generation"] = _json_object(data["generation"])
    data["load"] = _json_object(data["load"])
    return Conversation(**data, message_count=count)


def _json_object(text: str | None) -> dict[str, Any]:
    """A stored JSON object; {} for one that is missing or unreadable (damage)."""
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _message(row: sqlite3.Row) -> Message:
    data = _columns(row, _MSG_COLUMNS)
    try:
        data["settings"] = json.loads(data["settings"]) if data["settings"] else None
    except ValueError:
        data["settings"] = None
    return Message(**data)


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    title: str
    position: int
    role: str
    snippet: str


# --- the store ----------------------------------------------------------------------------


def _create_private(path: Path) -> None:
    locations.ensure_private_dir(path.parent)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    locations.private_file(path)


class Store:
    """The conversation database.  One connection per Store; use it from one thread.

    ``read_only`` opens it without writing anything, not even SQLite's shared-memory
    file (``immutable`` mode when the folder is read-only); a read-only Store reads
    older schemas as they are.  ``Store.for_reading()`` picks that mode by itself.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        busy_timeout_ms: int = 10_000,
        read_only: bool = False,
    ) -> None:
        self.path = path or locations.database_path()
        self.read_only = read_only
        self._check_version_read_only()
        if read_only:
            self.db = self._connect_read_only()
            return
        try:
            if str(self.path) != ":memory:":
                _create_private(self.path)
            self.db = sqlite3.connect(
                self.path, timeout=busy_timeout_ms / 1000, isolation_level=None
            )
            self.db.row_factory = sqlite3.Row
            self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            with suppress(AttributeError, sqlite3.Error):
                self.db.close()
            raise explain(exc, self.path) from None
        for suffix in ("-wal", "-shm"):
            extra = Path(f"{self.path}{suffix}")
            if extra.exists():
                locations.private_file(extra)

    @classmethod
    def for_reading(cls, path: Path | None = None) -> Store:
        """A Store to read from: writable when it can be (so an old schema is upgraded),
        read-only when the folder, file or disk refuses writes, and an empty one in
        memory when there is no database yet and none can be created."""
        path = path or locations.database_path()
        try:
            return cls(path)
        except StoreError as exc:
            if not exc.keeps_data:
                raise
        if not path.exists():
            return cls(Path(":memory:"))
        return cls(path, read_only=True)

    def _connect_read_only(self) -> sqlite3.Connection:
        if str(self.path) == ":memory:":
            raise StoreError("a read-only store needs a file", kind="error")
        if not self.path.exists():
            raise StoreError(
                f"there is no conversation database at {self.path} yet",
                "start a chat to create one",
            )
        last: sqlite3.Error | None = None
        # mode=ro still needs the -shm file of a WAL database; immutable=1 needs nothing
        # but assumes no one writes meanwhile (the folder is read-only: no one can).
        for flags in ("mode=ro", "immutable=1"):
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?{flags}", uri=True)
            db.row_factory = sqlite3.Row
            try:
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return db
            except sqlite3.Error as exc:
                last = exc
                db.close()
                if any(m in str(exc).lower() for m in DAMAGE_MARKS):
                    break
        assert last is not None
        raise explain(last, self.path)

    def _check_version_read_only(self) -> None:
        """Refuse a newer schema before anything can write to the file."""
        if str(self.path) == ":memory:":
            return
        try:
            if not self.path.exists() or self.path.stat().st_size == 0:
                return
        except OSError as exc:
            raise explain(exc, self.path) from None
        try:
            probe = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                version = probe.execute("PRAGMA user_version").fetchone()[0]
            finally:
                probe.close()
        except sqlite3.DatabaseError as exc:
            if not any(m in str(exc).lower() for m in DAMAGE_MARKS):
                return  # not damage (a read-only -shm, say): the real open says what
            raise explain(exc, self.path) from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer vicuna-tui (schema {version}; this "
                f"version knows up to {SCHEMA_VERSION}); it was not changed",
                "upgrade vicuna-tui (pip install -U vicuna-tui), or set VICUNA_TUI_HOME "
                "to use another folder",
                kind="newer",
            )

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version + 1, SCHEMA_VERSION + 1):
            migrate_one(self.db, number)

    @property
    @_translated
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise explain(exc, self.path) from None
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise explain(exc, self.path) from None
            raise

    # -- conversations -----------------------------------------------------------------

    def create_conversation(
        self,
        *,
        title: str = "New chat",
        model_path: str | None = None,
        model_name: str | None = None,
        revision: str | None = None,
        template: str | None = None,
        system_message: str | None = None,
        generation: dict[str, Any] | None = None,
        load: dict[str, Any] | None = None,
        backend: str = "local",
        endpoint: str | None = None,
        replay_of: str | None = None,
        conversation_id: str | None = None,
        created_at: str | None = None,
    ) -> Conversation:
        stamp = created_at or now()
        conv = Conversation(
            id=conversation_id or uuid.uuid4().hex,
            title=title,
            created_at=stamp,
            updated_at=stamp,
            model_path=model_path,
            model_name=model_name,
            revision=revision,
            template=template,
            system_message=system_message,
            generation=generation or {},
            load=load or {},
            backend=backend,
            endpoint=endpoint,
            replay_of=replay_of,
        )
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO conversations ({', '.join(_CONV_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_CONV_COLUMNS))})",
                (
                    conv.id,
                    conv.title,
                    conv.created_at,
                    conv.updated_at,
                    conv.model_path,
                    conv.model_name,
                    conv.revision,
                    conv.template,
                    conv.system_message,
                    json.dumps(conv.generation),
                    json.dumps(conv.load),
                    conv.backend,
                    conv.endpoint,
                    conv.replay_of,
                ),
            )
        return conv

    def update_conversation(self, conversation_id: str, **fields: Any) -> None:
        allowed = set(_CONV_COLUMNS) - {"id", "created_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown conversation fields: {sorted(unknown)}")
        for key in ("generation", "load"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        fields.setdefault("updated_at", now())
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as db:
            db.execute(
                f"UPDATE conversations SET {assignments} WHERE id = ?",
                (*fields.values(), conversation_id),
            )

    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise StoreError("a title cannot be empty", "give the chat a name")
        self.update_conversation(conversation_id, title=title)

    def delete(self, conversation_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    @_translated
    def get(self, conversation_id: str) -> Conversation:
        row = self.db.execute(
            "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise StoreError(
                f"no conversation {conversation_id}", "list them with `vicuna-tui sessions list`"
            )
        conv = _conversation(row)
        conv.messages = [
            _message(r)
            for r in self.db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY position",
                (conversation_id,),
            )
        ]
        conv.message_count = len(conv.messages)
        return conv

    @_translated
    def conversations(self, limit: int | None = None, title_filter: str = "") -> list[Conversation]:
        """Newest first, with message counts; ``title_filter`` matches a title substring."""
        sql = (
            "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n "
            "FROM conversations c"
        )
        params: list[Any] = []
        if title_filter:
            sql += " WHERE c.title LIKE ? ESCAPE '\\'"
            escaped = title_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        sql += " ORDER BY c.updated_at DESC, c.rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_conversation(row, row["n"]) for row in self.db.execute(sql, params)]

    @_translated
    def latest_id(self) -> str | None:
        row = self.db.execute(
            "SELECT id FROM conversations ORDER BY updated_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return row["id"] if row else None

    @_translated
    def resolve(self, ref: str) -> str:
        """A full id from an id, an unambiguous prefix, or ``last``."""
        ref = ref.strip()
        if ref == "last":
            latest = self.latest_id()
            if latest is None:
                raise StoreError("there are no saved conversations yet", "start a chat first")
            return latest
        if not ref or any(c not in "0123456789abcdef" for c in ref.lower()):
            raise StoreError(
                f"{ref!r} is not a conversation id",
                "ids are hexadecimal; see `vicuna-tui sessions list`",
            )
        rows = self.db.execute(
            "SELECT id, title FROM conversations WHERE id LIKE ? ORDER BY updated_at DESC",
            (ref.lower() + "%",),
        ).fetchall()
        if not rows:
            raise StoreError(f"no conversation matches {ref!r}", "see `vicuna-tui sessions list`")
        if len(rows) > 1:
            listing = ", ".join(f"{r['id'][:12]} ({r['title']})" for r in rows[:5])
            raise StoreError(
                f"{ref!r} matches {len(rows)} conversations: {listing}",
                "give more characters of the id",
            )
        return str(rows[0]["id"])

    # -- messages ----------------------------------------------------------------------

    def add_message(self, conversation_id: str, message: Message) -> Message:
        stamp = message.created_at or now()
        with self.transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM messages WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            position = int(row[0])
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, position, role, content, created_at, "
                "prompt_tokens, new_tokens, time_to_first_token, tokens_per_second, seed, "
                "finish_reason, model, backend, template, settings) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    position,
                    message.role,
                    message.content,
                    stamp,
                    message.prompt_tokens,
                    message.new_tokens,
                    message.time_to_first_token,
                    message.tokens_per_second,
                    message.seed,
                    message.finish_reason,
                    message.model,
                    message.backend,
                    message.template,
                    json.dumps(message.settings) if message.settings is not None else None,
                ),
            )
            if position == 0 and message.role == "user":
                db.execute(
                    "UPDATE conversations SET title = ? WHERE id = ? AND title = ?",
                    (make_title(message.content), conversation_id, "New chat"),
                )
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (stamp, conversation_id)
            )
        message.id = cursor.lastrowid
        message.position = position
        message.created_at = stamp
        return message

    def delete_messages_from(self, conversation_id: str, position: int) -> int:
        """Delete the messages at ``position`` and after; returns how many."""
        with self.transaction() as db:
            cursor = db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND position >= ?",
                (conversation_id, position),
            )
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now(), conversation_id)
            )
        return cursor.rowcount

    @_translated
    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search over every message; words are matched as prefixes."""
        words = [w for w in text.replace('"', " ").split() if w]
        if not words:
            return []
        query = " ".join(f'"{w}"*' for w in words)
        try:
            rows = self.db.execute(
                "SELECT m.conversation_id, c.title, m.position, m.role, "
                "snippet(messages_fts, 0, '«', '»', '…', 12) AS snip "
                "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                "JOIN conversations c ON c.id = m.conversation_id "
                "WHERE messages_fts MATCH ? ORDER BY c.updated_at DESC, m.position LIMIT ?",
                (query, limit),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot search for {text!r}: {exc}", "try plain words") from None
        return [SearchHit(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def import_conversation(self, conv: Conversation, messages: Sequence[Message]) -> str:
        """Insert a whole conversation in one transaction (all or nothing)."""
        new_id = uuid.uuid4().hex
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO conversations ({', '.join(_CONV_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_CONV_COLUMNS))})",
                (
                    new_id,
                    conv.title,
                    conv.created_at or now(),
                    conv.updated_at or now(),
                    conv.model_path,
                    conv.model_name,
                    conv.revision,
                    conv.template,
                    conv.system_message,
                    json.dumps(conv.generation),
                    json.dumps(conv.load),
                    conv.backend or "local",
                    conv.endpoint,
                    None,
                ),
            )
            for position, msg in enumerate(messages):
                db.execute(
                    "INSERT INTO messages (conversation_id, position, role, content, "
                    "created_at, prompt_tokens, new_tokens, time_to_first_token, "
                    "tokens_per_second, seed, finish_reason) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        new_id,
                        position,
                        msg.role,
                        msg.content,
                        msg.created_at or now(),
                        msg.prompt_tokens,
                        msg.new_tokens,
                        msg.time_to_first_token,
                        msg.tokens_per_second,
                        msg.seed,
                        msg.finish_reason,
                    ),
                )
        return new_id
