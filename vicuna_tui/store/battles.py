"""Arena battles: two conversations answered side by side, the order shown and the
vote.  ``store.battles``."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from vicuna_tui.store.connection import QueryGroup
from vicuna_tui.store.errors import translated
from vicuna_tui.store.records import now

# The bench run that each side's conversation of a battle is filed under: kept apart
# from people's own chats, and listed as arena chats.
ARENA_RUN = "arena"

BATTLE_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "model_a",
    "model_b",
    "conversation_a",
    "conversation_b",
    "blind",
    "swapped",
    "turns",
    "vote",
    "voted_at",
    "settings",
)


@dataclass
class Battle:
    """One arena battle as saved.  ``model_a`` is the model shown as Model A (the left
    pane); ``swapped`` is True when that is the second model given; ``vote`` is
    'a', 'b', 'tie', 'bothbad' or None (not voted)."""

    id: str
    model_a: str
    model_b: str
    conversation_a: str | None = None
    conversation_b: str | None = None
    blind: bool = True
    swapped: bool = False
    turns: int = 0
    vote: str | None = None
    voted_at: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""


class Battles(QueryGroup):
    """``store.battles``: the arena's battles."""

    def save(self, battle: Battle) -> None:
        """Write a battle (a new one, or its turns and vote since): one row per id."""
        stamp = now()
        battle.created_at = battle.created_at or stamp
        battle.updated_at = stamp
        with self._handle.transaction() as db:
            ids = [battle.conversation_a, battle.conversation_b]
            known = [
                c
                if c and db.execute("SELECT 1 FROM conversations WHERE id = ?", (c,)).fetchone()
                else None
                for c in ids
            ]
            values = (
                battle.id,
                battle.created_at,
                battle.updated_at,
                battle.model_a,
                battle.model_b,
                known[0],
                known[1],
                int(battle.blind),
                int(battle.swapped),
                battle.turns,
                battle.vote,
                battle.voted_at,
                json.dumps(battle.settings, sort_keys=True),
            )
            names = ", ".join(BATTLE_COLUMNS)
            marks = ", ".join("?" for _ in BATTLE_COLUMNS)
            updates = ", ".join(f"{c} = excluded.{c}" for c in BATTLE_COLUMNS[2:])
            db.execute(
                f"INSERT INTO battles ({names}) VALUES ({marks}) "
                f"ON CONFLICT (id) DO UPDATE SET {updates}",
                values,
            )

    @translated
    def all(self, *, voted_only: bool = False) -> list[Battle]:
        """Every battle, oldest first (none in a store too old to have them, opened
        read-only)."""
        sql = f"SELECT {', '.join(BATTLE_COLUMNS)} FROM battles"
        if voted_only:
            sql += " WHERE vote IS NOT NULL"
        try:
            rows = self.db.execute(sql + " ORDER BY created_at, rowid").fetchall()
        except sqlite3.OperationalError:
            if self._handle.version >= 7:
                raise
            return []
        return [_battle(row) for row in rows]


def _battle(row: sqlite3.Row) -> Battle:
    values = dict(zip(BATTLE_COLUMNS, tuple(row), strict=True))
    try:
        settings = json.loads(values.pop("settings") or "{}")
    except json.JSONDecodeError:
        settings = {}
    values["blind"] = bool(values["blind"])
    values["swapped"] = bool(values["swapped"])
    return Battle(settings=settings if isinstance(settings, dict) else {}, **values)
