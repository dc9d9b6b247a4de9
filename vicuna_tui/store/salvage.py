"""Checking a conversation database, and saving what can be read from a damaged one.

``check`` runs SQLite's integrity check.  ``repair`` copies the damaged file aside,
reads every conversation, message, arena battle and judgment-file entry that SQLite can
still reach (row by row where a whole-table read fails), writes them into a new
database and puts it in place.  The damaged file is kept beside it under a dated name;
nothing is ever deleted.

A damaged header (the first 100 bytes) is rebuilt on the working copy, trying each
page size, since the rest of the file is often intact.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vicuna_tui import locations
from vicuna_tui.store.backups import set_aside
from vicuna_tui.store.connection import probe_read_only
from vicuna_tui.store.errors import StoreError, explain
from vicuna_tui.store.rebuild import Readable, write

MAGIC = b"SQLite format 3\x00"
PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)
# Stop probing row ids this far past the last one that answered (when max(rowid)
# itself cannot be read).
_PROBE_PAST = 10_000


@dataclass
class CheckReport:
    path: Path
    exists: bool
    problems: list[str] = field(default_factory=list)
    conversations: int | None = None
    messages: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class RepairReport:
    path: Path
    kept_at: Path | None
    conversations: int = 0
    messages: int = 0
    unreadable_conversations: int = 0
    unreadable_messages: int = 0
    orphans: int = 0  # conversations rebuilt from messages whose conversation was lost
    battles: int = 0  # arena battles (their votes) carried over
    evaluation_files: int = 0  # the judgment files the evaluation screen lists
    unreadable_battles: int = 0
    missing_conversations: int = 0  # row ids below the newest the scan did not return
    missing_messages: int = 0
    header_rebuilt: bool = False
    readable: bool = True  # False: nothing in the file could be read as SQLite
    short_by: int = 0  # bytes missing from the end, going by the header (cut short)


def check(path: Path | None = None) -> CheckReport:
    """SQLite's integrity check, and the counts when they can be read."""
    path = path or locations.database_path()
    report = CheckReport(path, path.exists())
    if not report.exists:
        return report
    try:
        db = probe_read_only(path, stop_at_damage=False)
    except sqlite3.Error as exc:
        report.problems.append(str(exc))
        return report
    try:
        rows = db.execute("PRAGMA integrity_check(50)").fetchall()
        report.problems = [str(r[0]) for r in rows if r[0] != "ok"]
        report.conversations = db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
        report.messages = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    except sqlite3.Error as exc:
        if str(exc) not in report.problems:
            report.problems.append(str(exc))
    finally:
        db.close()
    return report


# --- reading what is left -------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    # Damaged text may not be valid UTF-8: keep what decodes.
    db.text_factory = lambda raw: raw.decode("utf-8", "replace")
    return db


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _header(template: bytes, page_size: int) -> bytes:
    """A plausible 100-byte header: WAL mode, UTF-8, size taken from the file."""
    head = bytearray(template[:100].ljust(100, b"\0"))
    head[0:16] = MAGIC
    head[16:18] = (1 if page_size == 65536 else page_size).to_bytes(2, "big")
    head[18:24] = bytes([2, 2, 0, 64, 32, 32])
    head[24:28] = (1).to_bytes(4, "big")  # change counter
    head[28:32] = (0).to_bytes(4, "big")  # size in pages: 0 = take it from the file
    head[32:40] = bytes(8)  # no freelist
    head[44:48] = (4).to_bytes(4, "big")  # schema format
    head[56:60] = (1).to_bytes(4, "big")  # UTF-8
    head[92:96] = (0).to_bytes(4, "big")
    head[96:100] = (3_045_000).to_bytes(4, "big")
    return bytes(head)


def _working_copy(path: Path, folder: Path) -> tuple[Path, bool]:
    """A copy of the database (and its WAL) that SQLite can open; whether its header
    had to be rebuilt.  Raises sqlite3.DatabaseError when nothing opens."""
    work = folder / "work.db"
    shutil.copyfile(path, work)
    wal = Path(f"{path}-wal")
    if wal.exists():
        shutil.copyfile(wal, Path(f"{work}-wal"))
    try:
        db = _connect(work)
        if "conversations" in _tables(db) or "messages" in _tables(db):
            db.close()
            return work, False
        db.close()
    except sqlite3.DatabaseError:
        pass
    original = work.read_bytes()[:100]
    candidates: list[bytes] = []
    if original[:16] != MAGIC:
        candidates.append(MAGIC + original[16:100])
    candidates += [_header(original, p) for p in PAGE_SIZES]
    for head in candidates:
        with open(work, "r+b") as handle:
            handle.write(head)
        with contextlib.suppress(sqlite3.DatabaseError):
            db = _connect(work)
            try:
                if {"conversations", "messages"} & _tables(db):
                    return work, True
            finally:
                db.close()
    raise sqlite3.DatabaseError("file is not a database, and no header rebuilt makes it one")


def _short_by(path: Path) -> int:
    """How many bytes the file lacks, going by its own header (0 if it cannot tell)."""
    with open(path, "rb") as handle:
        head = handle.read(100)
    if len(head) < 100 or head[:16] != MAGIC:
        return 0
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]
    missing = pages * page_size - path.stat().st_size
    return missing if valid and missing > 0 else 0


def _rows(db: sqlite3.Connection, table: str) -> tuple[list[sqlite3.Row], int, int]:
    """Every readable row of ``table``, how many row ids could not be read, and how
    many below the newest a whole scan did not return (deleted, or on a page SQLite
    skipped)."""
    with contextlib.suppress(sqlite3.DatabaseError):
        whole = db.execute(f"SELECT rowid AS _rowid, * FROM {table}").fetchall()
        newest = max((row["_rowid"] for row in whole), default=0)
        return whole, 0, newest - len(whole)
    top: int | None = None
    with contextlib.suppress(sqlite3.DatabaseError):
        top = db.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
    rows: list[sqlite3.Row] = []
    failed: list[int] = []
    rowid = last_found = 0
    while True:
        rowid += 1
        if top is not None and rowid > top:
            break
        if top is None and rowid - last_found > _PROBE_PAST:
            break
        try:
            row = db.execute(
                f"SELECT rowid AS _rowid, * FROM {table} WHERE rowid = ?", (rowid,)
            ).fetchone()
        except sqlite3.DatabaseError:
            failed.append(rowid)
            continue
        if row is not None:
            rows.append(row)
            last_found = rowid
    # Past the last row found (when the end is not known) a failure is no evidence of
    # a row: count only the failures below it.
    unreadable = len(failed) if top is not None else sum(1 for r in failed if r < last_found)
    return rows, unreadable, 0


def repair(path: Path | None = None) -> RepairReport:
    """Save every readable conversation, message, arena battle and judgment-file entry
    of ``path`` into a new database in its place; the damaged file is kept beside it."""
    path = path or locations.database_path()
    if not path.exists():
        raise StoreError(f"there is no database at {path}", "nothing to repair")
    try:
        scratch = Path(tempfile.mkdtemp(prefix=".repair-", dir=path.parent))
    except OSError as exc:
        raise explain(exc, path) from None
    try:
        found = Readable()
        rebuilt = False
        readable = True
        short_by = _short_by(path)
        try:
            work, rebuilt = _working_copy(path, scratch)
            _read(work, found)
        except sqlite3.DatabaseError:
            readable = False  # an empty new database; the old file is kept
        fresh = scratch / "repaired.db"
        done = write(fresh, found)
        kept = set_aside(path, "damaged")
        shutil.move(str(fresh), str(path))
        locations.private_file(path)
    except OSError as exc:
        raise explain(exc, path) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    unreadable = found.unreadable
    return RepairReport(
        path=path,
        kept_at=kept,
        conversations=done.conversations,
        messages=done.messages,
        unreadable_conversations=unreadable.get("conversations", 0),
        unreadable_messages=unreadable.get("messages", 0) + done.refused_messages,
        orphans=done.orphans,
        battles=done.battles,
        evaluation_files=done.evaluation_files,
        unreadable_battles=unreadable.get("battles", 0) + done.refused_battles,
        missing_conversations=found.missing.get("conversations", 0),
        missing_messages=found.missing.get("messages", 0),
        header_rebuilt=rebuilt,
        readable=readable,
        short_by=short_by,
    )


def _read(work: Path, found: Readable) -> None:
    """Every readable row of each table the store keeps, into ``found``."""
    db = _connect(work)
    try:
        tables = _tables(db)
        for table in ("conversations", "messages", "battles", "evaluation_files"):
            if table in tables:
                rows, unreadable, missing = _rows(db, table)
                setattr(found, table, rows)
                found.unreadable[table] = unreadable
                found.missing[table] = missing
    finally:
        db.close()
    # Messages that others name (a parent, the child shown, a chat's last message) but
    # that were not read: lost, whatever the row ids say (the newest rows leave no gap).
    named = _referenced(found.messages, ("parent", "chosen_child"))
    named |= _referenced(found.conversations, ("active_leaf",))
    absent = named - {row["uid"] for row in found.messages}
    found.missing["messages"] = max(found.missing.get("messages", 0), len(absent))


def _referenced(rows: list[sqlite3.Row], columns: tuple[str, ...]) -> set[str]:
    named: set[str] = set()
    for row in rows:
        keys = row.keys()
        named.update(str(row[c]) for c in columns if c in keys and row[c])
    return named
