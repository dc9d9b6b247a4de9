"""Every conversation, saved locally in SQLite: the queries.

The schema version lives in ``PRAGMA user_version`` and is raised by the named
migrations in ``migrations``; a database written by a newer vicuna-tui is refused and
left untouched (``connection``).

Durability: WAL journal, ``synchronous=FULL``, one transaction per write.  The user's
turn is written when it is sent (the line front ends commit it before generation
starts; the TUI queues it to the store thread, which writes it within milliseconds)
and the reply when it ends, so ``kill -9`` loses at most the reply in flight.  Two
processes may share the database (``busy_timeout``).  Files are created 0600, folders 0700.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from vicuna_tui import locations
from vicuna_tui.store import tree
from vicuna_tui.store.battles import Battles
from vicuna_tui.store.connection import (
    MEMORY,
    Handle,
    open_read_only,
    open_writable,
    refuse_newer,
)
from vicuna_tui.store.errors import StoreError, translated
from vicuna_tui.store.evaluations import Evaluations
from vicuna_tui.store.importing import Imports
from vicuna_tui.store.listing import Listing
from vicuna_tui.store.records import (
    CONVERSATION_COLUMNS,
    INSERT_CONVERSATION,
    INSERT_MESSAGE,
    REMEMBER_PATH,
    Conversation,
    SavedMessage,
    conversation_from_row,
    conversation_row,
    linked,
    make_title,
    message_from_row,
    message_row,
    now,
)
from vicuna_tui.store.search import Search


class Store:
    """The conversation database.  One connection per Store; one thread at a time uses it.

    ``read_only`` opens it without writing anything, not even SQLite's shared-memory
    file (``immutable`` mode when the folder is read-only); a read-only Store reads
    older schemas as they are.  ``Store.for_reading()`` picks that mode by itself.

    The conversations' own queries are here; the other groups are objects it holds,
    each working through the same ``Handle``: ``listing``, ``search``, ``imports``,
    ``battles`` and ``evaluations``.
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
        refuse_newer(self.path)
        if read_only:
            self.db = open_read_only(self.path)
        else:
            self.db = open_writable(self.path, busy_timeout_ms)
        self.handle = Handle(self.db, self.path)
        self.listing = Listing(self.handle)
        self.search = Search(self.handle)
        self.imports = Imports(self.handle)
        self.battles = Battles(self.handle)
        self.evaluations = Evaluations(self.handle)

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
            return cls(Path(MEMORY))
        return cls(path, read_only=True)

    @property
    def version(self) -> int:
        return self.handle.version

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.handle.transaction()

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
        run: str | None = None,
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
            run=run,
        )
        self.insert_conversation(conv)
        return conv

    def insert_conversation(self, conv: Conversation) -> None:
        """Write a conversation's record as it is (its id made by the caller)."""
        with self.transaction() as db:
            db.execute(INSERT_CONVERSATION, conversation_row(conv))

    @translated
    def exists(self, conversation_id: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        return row is not None

    def update_conversation(self, conversation_id: str, **fields: Any) -> None:
        allowed = set(CONVERSATION_COLUMNS) - {"id", "created_at"}
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

    @translated
    def get(self, conversation_id: str) -> Conversation:
        row = self.db.execute(
            "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise StoreError(
                f"no conversation {conversation_id}", "list them with `vicuna-tui sessions list`"
            )
        conv = conversation_from_row(row)
        conv.tree = linked(
            [
                message_from_row(r)
                for r in self.db.execute(
                    "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id",
                    (conversation_id,),
                )
            ]
        )
        conv.messages = tree.path_to(conv.tree, conv.active_leaf)
        conv.message_count = len(conv.tree)
        return conv

    @translated
    def latest_id(self) -> str | None:
        row = self.db.execute(
            "SELECT id FROM conversations ORDER BY updated_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return row["id"] if row else None

    @translated
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

    def add_message(
        self, conversation_id: str, message: SavedMessage, *, as_given: bool = False
    ) -> SavedMessage:
        """Add ``message`` after the conversation's active leaf (or, ``as_given``, under
        its own ``parent``, None making it the first of a new branch); it becomes the
        active leaf.  A message already there (by uid: a batch written again after a
        failure) is left as it is."""
        stamp = message.created_at or now()
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM messages WHERE uid = ?", (message.uid,)).fetchone():
                return message
            if not as_given:
                leaf = db.execute(
                    "SELECT active_leaf FROM conversations WHERE id = ?", (conversation_id,)
                ).fetchone()
                message.parent = self._known_leaf(db, conversation_id, leaf[0] if leaf else None)
            above = db.execute(
                "SELECT position FROM messages WHERE uid = ?", (message.parent,)
            ).fetchone()
            position = int(above[0]) + 1 if above else 0
            message.position, message.created_at = position, stamp
            cursor = db.execute(INSERT_MESSAGE, message_row(conversation_id, message))
            if position == 0 and message.role == "user":
                db.execute(
                    "UPDATE conversations SET title = ? WHERE id = ? AND title = ?",
                    (make_title(message.content), conversation_id, "New chat"),
                )
            db.execute(
                "UPDATE conversations SET updated_at = ?, active_leaf = ? WHERE id = ?",
                (stamp, message.uid, conversation_id),
            )
            if message.parent is not None:  # the newest branch there is the one shown
                db.execute(
                    "UPDATE messages SET chosen_child = ? WHERE uid = ? AND conversation_id = ?",
                    (message.uid, message.parent, conversation_id),
                )
        message.id = cursor.lastrowid
        return message

    @staticmethod
    def _known_leaf(db: sqlite3.Connection, conversation_id: str, leaf: str | None) -> str | None:
        """``leaf`` if it is one of the conversation's messages, else its newest message."""
        if (
            leaf is not None
            and db.execute(
                "SELECT 1 FROM messages WHERE uid = ? AND conversation_id = ?",
                (leaf, conversation_id),
            ).fetchone()
        ):
            return leaf
        row = db.execute(
            "SELECT uid FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT 1",
            (conversation_id,),
        ).fetchone()
        return row[0] if row else None

    def set_active(self, conversation_id: str, leaf: str | None) -> None:
        """Remember the branch shown: the path down to ``leaf``, and on that path the
        choice made below each message (so that coming back to it restores the way down)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE conversations SET active_leaf = ? WHERE id = ?", (leaf, conversation_id)
            )
            db.execute(REMEMBER_PATH, (leaf, conversation_id))

    def delete_subtree(self, conversation_id: str, uid: str) -> int:
        """Delete a message and every message below it (every branch after it); returns
        how many."""
        with self.transaction() as db:
            count = db.execute(
                "WITH RECURSIVE below(uid) AS (SELECT ? UNION ALL "
                "SELECT m.uid FROM messages m JOIN below ON m.parent = below.uid) "
                "SELECT COUNT(*) FROM below JOIN messages USING (uid) "
                "WHERE messages.conversation_id = ?",
                (uid, conversation_id),
            ).fetchone()[0]
            db.execute(
                "DELETE FROM messages WHERE uid = ? AND conversation_id = ?",
                (uid, conversation_id),
            )  # the rest go with it (ON DELETE CASCADE)
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now(), conversation_id)
            )
        return int(count)
