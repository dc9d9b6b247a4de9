"""Each named migration, run on its predecessor's frozen schema (tests/fixtures/schema).

The fixtures are the schema as each version shipped it.  A migration must turn
version n - 1 into exactly version n, keep every row, and leave a database that the
current Store reads; editing a released migration makes these fail.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vicuna_tui.store import SCHEMA_VERSION, Store
from vicuna_tui.store.migrations import MIGRATIONS, migrate_one

FROZEN = Path(__file__).parent / "fixtures" / "schema"


def frozen(version: int) -> str:
    return (FROZEN / f"v{version}.sql").read_text(encoding="utf-8")


def schema_of(db: sqlite3.Connection) -> str:
    rows = db.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'messages_fts_%' "
        "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, name"
    ).fetchall()
    return "".join(r[0].strip() + ";\n" for r in rows)


def body(sql: str) -> str:
    return "".join(line + "\n" for line in sql.splitlines() if not line.startswith("--"))


def database_at(path: Path, version: int) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(frozen(version))
    db.execute(f"PRAGMA user_version = {version}")
    if version >= 1:
        db.execute(
            "INSERT INTO conversations (id, title, created_at, updated_at) "
            "VALUES ('c0ffee', 'Llamas', '2026-01-01T00:00:00', '2026-01-01T00:00:00')"
        )
        for position, (role, text) in enumerate(
            [("user", "How do llamas sleep?"), ("assistant", "Lying down, mostly.")]
        ):
            if version < 6:
                db.execute(
                    "INSERT INTO messages (conversation_id, position, role, content, "
                    "created_at) VALUES ('c0ffee', ?, ?, ?, '2026-01-01T00:00:00')",
                    (position, role, text),
                )
                continue
            db.execute(  # from version 6 on, messages are a tree
                "INSERT INTO messages (conversation_id, position, role, content, created_at, "
                "uid, parent) VALUES ('c0ffee', ?, ?, ?, '2026-01-01T00:00:00', ?, ?)",
                (position, role, text, f"m{position}", f"m{position - 1}" if position else None),
            )
        if version >= 6:
            db.execute("UPDATE conversations SET active_leaf = 'm1'")
        if version >= 8:  # written by a version that remembers the way down
            db.execute("UPDATE messages SET chosen_child = 'm1' WHERE uid = 'm0'")
    return db


def test_there_is_a_frozen_schema_for_every_version() -> None:
    assert len(MIGRATIONS) == SCHEMA_VERSION
    assert sorted(p.name for p in FROZEN.glob("v*.sql")) == sorted(
        f"v{n}.sql" for n in range(SCHEMA_VERSION + 1)
    )
    assert len({m.name for m in MIGRATIONS}) == len(MIGRATIONS)  # one name per step


@pytest.mark.parametrize("number", range(1, SCHEMA_VERSION + 1))
def test_migration_turns_its_predecessor_into_the_next_version(tmp_path: Path, number: int) -> None:
    db = database_at(tmp_path / "db.sqlite", number - 1)
    migrate_one(db, number)
    assert db.execute("PRAGMA user_version").fetchone()[0] == number
    assert schema_of(db) == body(frozen(number))
    if number > 1:  # the rows written before survive
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 2
        assert db.execute("SELECT title FROM conversations").fetchone()[0] == "Llamas"
    migrate_one(db, number)  # a second run (another process got there first) is a no-op
    assert db.execute("PRAGMA user_version").fetchone()[0] == number
    db.close()


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_store_upgrades_every_older_version_and_reads_it(tmp_path: Path, version: int) -> None:
    path = tmp_path / "conversations.db"
    database_at(path, version).close()
    with Store(path) as store:
        assert store.version == SCHEMA_VERSION
        conv = store.get("c0ffee")
        assert [m.content for m in conv.messages] == [
            "How do llamas sleep?",
            "Lying down, mostly.",
        ]
        assert conv.backend == "local"
        # one branch: each message follows the one before, the last one shown
        first, reply = conv.messages
        assert (first.parent, reply.parent) == (None, first.uid)
        assert conv.active_leaf == reply.uid and len(conv.tree) == 2
        assert first.chosen_child == reply.uid  # v8: the way down the branch shown
        # full-text search covers the rows written before the upgrade
        assert [hit.conversation_id for hit in store.search.messages("llamas")] == ["c0ffee"]


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_read_only_store_reads_older_versions_as_they_are(tmp_path: Path, version: int) -> None:
    path = tmp_path / "conversations.db"
    database_at(path, version).close()
    with Store(path, read_only=True) as store:
        assert store.version == version  # not upgraded
        assert store.get("c0ffee").messages[1].content == "Lying down, mostly."
