"""The judgment files ``vicuna-tui judge`` wrote, listed for the evaluation screen:
``store.evaluations``."""

from __future__ import annotations

import sqlite3

from vicuna_tui.store.connection import QueryGroup
from vicuna_tui.store.errors import translated
from vicuna_tui.store.records import EvaluationFile, now


class Evaluations(QueryGroup):
    """``store.evaluations``: the judgment files, newest first."""

    def remember(self, path: str, mode: str, judge: str, questions: str | None = None) -> None:
        """Record (or bring to the top) a judgment file for the evaluation screen."""
        with self._handle.transaction() as db:
            db.execute(
                "INSERT INTO evaluation_files (path, mode, judge, questions, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET mode = excluded.mode, "
                "judge = excluded.judge, questions = excluded.questions, "
                "updated_at = excluded.updated_at",
                (path, mode, judge, questions, now()),
            )

    @translated
    def files(self) -> list[EvaluationFile]:
        """The judgment files recorded, newest first (none in a store too old to have
        them, opened read-only)."""
        try:
            rows = self.db.execute(
                "SELECT path, mode, judge, questions, updated_at FROM evaluation_files "
                "ORDER BY updated_at DESC, rowid DESC"
            ).fetchall()
        except sqlite3.OperationalError:
            if self._handle.version >= 5:
                raise
            return []
        return [EvaluationFile(*row) for row in rows]
