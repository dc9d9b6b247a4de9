"""Full-text search over every message (the FTS5 index the migrations keep):
``store.search``."""

from __future__ import annotations

import sqlite3

from vicuna_tui.store.connection import QueryGroup
from vicuna_tui.store.errors import StoreError, translated
from vicuna_tui.store.records import SearchHit


class Search(QueryGroup):
    """``store.search``: full-text search over every message."""

    @translated
    def messages(self, text: str, limit: int = 50, offset: int = 0) -> list[SearchHit]:
        """Full-text search over every message, newest chat first; words are matched as
        prefixes.  At most ``limit`` hits, after skipping ``offset`` (the pages before)."""
        words = [w for w in text.replace('"', " ").split() if w]
        if not words:
            return []
        query = " ".join(f'"{w}"*' for w in words)
        try:
            uid = "m.uid" if self._handle.version >= 6 else "NULL"  # an old store, read-only
            rows = self.db.execute(
                f"SELECT m.conversation_id, c.title, m.position, m.role, {uid}, "
                "snippet(messages_fts, 0, '«', '»', '…', 12) AS snip "
                "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                "JOIN conversations c ON c.id = m.conversation_id "
                "WHERE messages_fts MATCH ? ORDER BY c.updated_at DESC, m.position "
                "LIMIT ? OFFSET ?",
                (query, limit, offset),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot search for {text!r}: {exc}", "try plain words") from None
        return [SearchHit(r[0], r[1], r[2], r[3], r[5], r[4]) for r in rows]
