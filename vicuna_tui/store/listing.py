"""Listing conversations: newest first, filtered by title or bench run, a page at a
time, and how many there are in all: ``store.listing``."""

from __future__ import annotations

from typing import Any

from vicuna_tui.store.connection import QueryGroup
from vicuna_tui.store.errors import translated
from vicuna_tui.store.records import ALL_RUNS, AllRuns, Conversation, conversation_from_row


def _where(title_filter: str, run: str | AllRuns | None) -> tuple[str, list[Any]]:
    """The WHERE clause (with its parameters) that picks the conversations listed."""
    where: list[str] = []
    params: list[Any] = []
    if title_filter:
        where.append("c.title LIKE ? ESCAPE '\\'")
        escaped = title_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{escaped}%")
    if run is None:
        where.append("c.run IS NULL")
    elif isinstance(run, str):
        where.append("c.run = ?")
        params.append(run)
    return (" WHERE " + " AND ".join(where) if where else ""), params


class Listing(QueryGroup):
    """``store.listing``: the chats a page at a time, and how many."""

    @translated
    def conversations(
        self,
        limit: int | None = None,
        title_filter: str = "",
        run: str | AllRuns | None = ALL_RUNS,
        offset: int = 0,
    ) -> list[Conversation]:
        """Newest first, with message counts; ``title_filter`` matches a title substring;
        ``run`` keeps those of one bench run (None: people's own chats; ALL_RUNS: every
        one); ``offset`` skips that many (the pages before)."""
        where, params = _where(title_filter, run)
        sql = (
            "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n "
            f"FROM conversations c{where} ORDER BY c.updated_at DESC, c.rowid DESC"
        )
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params += [-1 if limit is None else limit, offset]
        return [conversation_from_row(row, row["n"]) for row in self.db.execute(sql, params)]

    @translated
    def count(self, title_filter: str = "", run: str | AllRuns | None = ALL_RUNS) -> int:
        """How many ``conversations`` would list, with no limit."""
        where, params = _where(title_filter, run)
        row = self.db.execute(f"SELECT COUNT(*) FROM conversations c{where}", params).fetchone()
        return int(row[0])

    @translated
    def branch_counts(self) -> dict[str, int]:
        """How many branches (leaves of the tree) each conversation with messages has
        ({} for a store older than branches, opened read-only: one branch each)."""
        if self._handle.version < 6:
            return {}
        rows = self.db.execute(
            "SELECT m.conversation_id, COUNT(*) FROM messages m WHERE NOT EXISTS "
            "(SELECT 1 FROM messages k WHERE k.conversation_id = m.conversation_id "
            "AND k.parent = m.uid) GROUP BY m.conversation_id"
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    @translated
    def runs(self) -> dict[str, int]:
        """Each bench run's name and how many conversations it holds, newest first."""
        rows = self.db.execute(
            "SELECT run, COUNT(*) FROM conversations WHERE run IS NOT NULL "
            "GROUP BY run ORDER BY MAX(updated_at) DESC"
        ).fetchall()
        return {r[0]: r[1] for r in rows}
