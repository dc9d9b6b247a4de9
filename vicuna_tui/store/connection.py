"""Opening the database: private files, pragmas, upgrades, and read-only modes."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from vicuna_tui import locations
from vicuna_tui.store.errors import DAMAGE_MARKS, StoreError, explain
from vicuna_tui.store.migrations import SCHEMA_VERSION, migrate_one

MEMORY = ":memory:"


def _create_private(path: Path) -> None:
    locations.ensure_private_dir(path.parent)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    locations.private_file(path)


def open_writable(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection that writes (WAL, ``synchronous=FULL``), upgraded to SCHEMA_VERSION."""
    db: sqlite3.Connection | None = None
    try:
        if str(path) != MEMORY:
            _create_private(path)
        # Any one thread at a time may use it: the TUI hands its Store to a StoreThread.
        db = sqlite3.connect(
            path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version + 1, SCHEMA_VERSION + 1):
            migrate_one(db, number)
    except (OSError, sqlite3.Error) as exc:
        if db is not None:
            with suppress(sqlite3.Error):
                db.close()
        raise explain(exc, path) from None
    for suffix in ("-wal", "-shm"):
        extra = Path(f"{path}{suffix}")
        if extra.exists():
            locations.private_file(extra)
    return db


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that writes nothing at all, not even SQLite's shared-memory file."""
    if str(path) == MEMORY:
        raise StoreError("a read-only store needs a file", kind="error")
    if not path.exists():
        raise StoreError(
            f"there is no conversation database at {path} yet",
            "start a chat to create one",
        )
    try:
        return probe_read_only(path, stop_at_damage=True)
    except sqlite3.Error as exc:
        raise explain(exc, path) from exc


def probe_read_only(path: Path, *, stop_at_damage: bool) -> sqlite3.Connection:
    """A read-only connection that has read the schema, or the last sqlite3.Error.

    mode=ro still needs the -shm file of a WAL database; immutable=1 needs nothing but
    assumes no one writes meanwhile (the folder is read-only: no one can).
    """
    last: sqlite3.Error | None = None
    for flags in ("mode=ro", "immutable=1"):
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?{flags}", uri=True, check_same_thread=False
        )
        db.row_factory = sqlite3.Row
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.Error as exc:
            last = exc
            db.close()
            if stop_at_damage and any(m in str(exc).lower() for m in DAMAGE_MARKS):
                break
    assert last is not None
    raise last


def refuse_newer(path: Path) -> None:
    """Refuse a newer schema before anything can write to the file."""
    if str(path) == MEMORY:
        return
    try:
        if not path.exists() or path.stat().st_size == 0:
            return
    except OSError as exc:
        raise explain(exc, path) from None
    try:
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            version = probe.execute("PRAGMA user_version").fetchone()[0]
        finally:
            probe.close()
    except sqlite3.DatabaseError as exc:
        if not any(m in str(exc).lower() for m in DAMAGE_MARKS):
            return  # not damage (a read-only -shm, say): the real open says what
        raise explain(exc, path) from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer vicuna-tui (schema {version}; this "
            f"version knows up to {SCHEMA_VERSION}); it was not changed",
            "upgrade vicuna-tui (pip install -U vicuna-tui), or set VICUNA_TUI_HOME "
            "to use another folder",
            kind="newer",
        )


class Handle:
    """One open database, as the Store and each of its query groups use it: the
    connection, its file (named in errors), its schema version and the one way to
    write (a transaction).  The Store owns it; its groups are handed it."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @property
    def version(self) -> int:
        try:
            return int(self.db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise explain(exc, self.path) from None

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


class QueryGroup:
    """A group of queries the Store holds (``store.battles``, ``store.search``, …):
    each works through the Store's ``Handle`` and keeps no state of its own."""

    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    @property
    def path(self) -> Path:  # what ``translated`` names in its errors
        return self._handle.path

    @property
    def db(self) -> sqlite3.Connection:
        return self._handle.db
