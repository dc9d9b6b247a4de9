"""The schema's named migrations.  ``PRAGMA user_version`` says how many have run."""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

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


# v5: evaluations.  The run a conversation belongs to (``vicuna-tui bench`` tags each
# answer's chat with its run, so that lists keep them apart from people's own chats),
# and the judgment files ``vicuna-tui judge`` wrote (the TUI's evaluation screen).
_V5 = """
        ALTER TABLE conversations ADD COLUMN run TEXT;
        CREATE INDEX conversations_run ON conversations (run);
        CREATE TABLE evaluation_files (
            path TEXT PRIMARY KEY,
            mode TEXT NOT NULL,
            judge TEXT NOT NULL,
            questions TEXT,
            updated_at TEXT NOT NULL
        );
"""


# v6: branches.  Messages form a tree (``parent`` names the message a message follows,
# by its ``uid``), so a regenerated reply or an edited question is a sibling instead of
# a replacement; ``active_leaf`` remembers the branch shown.  The table is rebuilt (the
# old one held one message per position), keeping every row and id, so the full-text
# index stays valid; each old chat becomes one branch.
_V6 = """
        CREATE TABLE messages_v6 (
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
            model TEXT,
            backend TEXT,
            template TEXT,
            settings TEXT,
            uid TEXT NOT NULL UNIQUE,
            parent TEXT REFERENCES messages_v6(uid) ON DELETE CASCADE
        );
        INSERT INTO messages_v6 (id, conversation_id, position, role, content, created_at,
            prompt_tokens, new_tokens, time_to_first_token, tokens_per_second, seed,
            finish_reason, model, backend, template, settings, uid)
            SELECT id, conversation_id, position, role, content, created_at, prompt_tokens,
            new_tokens, time_to_first_token, tokens_per_second, seed, finish_reason, model,
            backend, template, settings, lower(hex(randomblob(16))) FROM messages;
        UPDATE messages_v6 SET parent = (
            SELECT p.uid FROM messages_v6 p WHERE p.conversation_id = messages_v6.conversation_id
            AND p.position < messages_v6.position ORDER BY p.position DESC LIMIT 1
        );
        DROP TABLE messages;
        ALTER TABLE messages_v6 RENAME TO messages;
        CREATE INDEX messages_tree ON messages (conversation_id, parent);
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
        ALTER TABLE conversations ADD COLUMN active_leaf TEXT;
        UPDATE conversations SET active_leaf = (
            SELECT uid FROM messages m WHERE m.conversation_id = conversations.id
            ORDER BY position DESC LIMIT 1
        );
"""

# Arena battles: two conversations answered side by side, the order they were shown
# in, and the user's vote ('a' / 'b': the model shown as A / B was better).
_V7 = """
        CREATE TABLE battles (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            model_a TEXT NOT NULL,
            model_b TEXT NOT NULL,
            conversation_a TEXT REFERENCES conversations(id) ON DELETE SET NULL,
            conversation_b TEXT REFERENCES conversations(id) ON DELETE SET NULL,
            blind INTEGER NOT NULL,
            swapped INTEGER NOT NULL,
            turns INTEGER NOT NULL DEFAULT 0,
            vote TEXT CHECK (vote IN ('a', 'b', 'tie', 'bothbad')),
            voted_at TEXT,
            settings TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX battles_voted ON battles (vote, created_at);
"""

# Branches remember the way down: each message names the child last shown below it, so
# that switching back to a branch shows the choice made there, not its newest reply.
# Every conversation's active path is filled in.
_V8 = """
        ALTER TABLE messages ADD COLUMN chosen_child TEXT;
        WITH RECURSIVE up(uid, parent) AS (
            SELECT m.uid, m.parent FROM conversations c JOIN messages m ON m.uid = c.active_leaf
            UNION SELECT m.uid, m.parent FROM messages m JOIN up ON m.uid = up.parent
        )
        UPDATE messages SET chosen_child = (SELECT up.uid FROM up WHERE up.parent = messages.uid)
        WHERE uid IN (SELECT parent FROM up WHERE parent IS NOT NULL);
"""

# The token view: a reply's tokens with their probabilities and alternatives, when they
# were asked for (JSON), and where a reply branched from another's token (JSON).
_V9 = """
        ALTER TABLE messages ADD COLUMN tokens TEXT;
        ALTER TABLE messages ADD COLUMN fork TEXT;
"""


class Migration(NamedTuple):
    """One step of the schema: ``name`` says what it adds; ``script`` is its SQL."""

    name: str
    script: str


# Ordered: MIGRATIONS[n - 1] takes a database from version n - 1 to n.  Never edit a
# released migration; add a new one (and its frozen schema under tests/fixtures/schema).
MIGRATIONS: tuple[Migration, ...] = (
    Migration("conversations and messages", _V1),
    Migration("full-text search", _V2),
    Migration("backends, endpoints and replay links", _V3),
    Migration("what wrote each reply", _V4),
    Migration("bench runs and judgment files", _V5),
    Migration("branches: messages as a tree", _V6),
    Migration("arena battles", _V7),
    Migration("branches remember the way down", _V8),
    Migration("token probabilities and forks", _V9),
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate_one(db: sqlite3.Connection, number: int) -> None:
    """Apply migration ``number`` in one transaction (skipped if another process did)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] >= number:
            db.execute("ROLLBACK")
            return
        # executescript would commit first; run the script's statements one by one.
        for statement in _statements(MIGRATIONS[number - 1].script):
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
