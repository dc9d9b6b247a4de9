"""Rolling backups of the conversation database, and bringing one back.

A backup is taken with SQLite's online backup API (consistent while others write), at
most once a day and only of a database that passes ``PRAGMA quick_check``, so a
damaged file never pushes a good backup out.  The newest three are kept, 0600 in a
0700 folder.  Restoring never deletes anything: the file it replaces is kept beside
it under a dated name.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from vicuna_tui import locations
from vicuna_tui.store.database import Store
from vicuna_tui.store.errors import StoreError, explain

KEEP = 3
EVERY_SECONDS = 24 * 3600
PREFIX = "conversations-"


@dataclass(frozen=True)
class Backup:
    path: Path
    taken: datetime

    @property
    def label(self) -> str:
        return self.taken.astimezone().strftime("%Y-%m-%d %H:%M")


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def backups() -> list[Backup]:
    """The backups there are, newest first."""
    folder = locations.backup_dir()
    found = []
    with contextlib.suppress(OSError):
        for path in folder.glob(f"{PREFIX}*.db"):
            taken = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
            found.append(Backup(path, taken))
    return sorted(found, key=lambda b: (b.taken, b.path.name), reverse=True)


def copy_database(source: sqlite3.Connection, target: Path) -> None:
    """A consistent copy of ``source`` at ``target`` (written aside, then renamed)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.close(fd)
    try:
        copy = sqlite3.connect(tmp)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")
        finally:
            copy.close()
        locations.private_file(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def take_daily(store: Store, *, now: float | None = None) -> Backup | None:
    """Back the database up if the newest backup is a day old (or there is none).

    Best effort: a read-only store, a damaged database or a failing disk means no
    backup this time, never an error in the chat.
    """
    if store.read_only or str(store.path) == ":memory:":
        return None
    current = now if now is not None else time.time()
    existing = backups()
    if existing and current - existing[0].taken.timestamp() < EVERY_SECONDS:
        return None
    try:
        if store.db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            return None
        if store.db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0:
            return None
        folder = locations.ensure_private_dir(locations.backup_dir())
        target = folder / f"{PREFIX}{stamp()}.db"
        copy_database(store.db, target)
    except (OSError, sqlite3.Error):
        return None
    for old in backups()[KEEP:]:
        with contextlib.suppress(OSError):
            old.path.unlink()
    return Backup(target, datetime.fromtimestamp(target.stat().st_mtime, timezone.utc))


def counts(path: Path) -> tuple[int, int]:
    """(conversations, messages) in a database file, read-only."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        conversations = db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
        messages = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        return int(conversations), int(messages)
    finally:
        db.close()


def find(name: str | None) -> Backup:
    """The backup named by ``name`` (a file name, a path, or None for the newest)."""
    available = backups()
    if name is None:
        if not available:
            raise StoreError(
                f"there are no backups in {locations.backup_dir()} yet",
                "vicuna-tui takes one a day while you chat (three are kept)",
            )
        return available[0]
    for backup in available:
        if name in (backup.path.name, str(backup.path), backup.path.stem):
            return backup
    path = Path(name).expanduser()
    if path.is_file():
        return Backup(path, datetime.fromtimestamp(path.stat().st_mtime, timezone.utc))
    names = ", ".join(b.path.name for b in available) or "none yet"
    raise StoreError(f"no backup {name!r}", f"the backups are: {names}")


def set_aside(path: Path, why: str) -> Path | None:
    """Rename ``path`` (and its -wal and -shm files) to ``path.WHY-STAMP``; never delete.
    Returns the new name of the database file, or None if there was none."""
    if not path.exists():
        return None
    kept = path.with_name(f"{path.name}.{why}-{stamp()}")
    for suffix in ("-wal", "-shm"):
        extra = Path(f"{path}{suffix}")
        if extra.exists():
            os.replace(extra, Path(f"{kept}{suffix}"))
    os.replace(path, kept)
    return kept


def restore(backup: Backup, target: Path | None = None) -> Path | None:
    """Put ``backup`` in place of the database.  Returns where the old file was kept."""
    target = target or locations.database_path()
    try:
        source = sqlite3.connect(f"{backup.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            if source.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise StoreError(
                    f"the backup {backup.path} is damaged too",
                    "pick another one: vicuna-tui sessions restore NAME",
                    kind="damaged",
                )
            locations.ensure_private_dir(target.parent)
            fresh = target.with_name(f".{target.name}.restoring")
            copy_database(source, fresh)
        finally:
            source.close()
        kept = set_aside(target, "before-restore")
        os.replace(fresh, target)
    except (OSError, sqlite3.Error) as exc:
        raise explain(exc, target) from None
    return kept
