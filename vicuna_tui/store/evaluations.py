"""The judgment files ``vicuna-tui judge`` wrote, listed for the evaluation screen:
queries that ``Store`` takes on."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from vicuna_tui.store.errors import translated
from vicuna_tui.store.records import EvaluationFile, now


class EvaluationQueries:
    if TYPE_CHECKING:  # what Store provides
        path: Path
        db: sqlite3.Connection

        @property
        def version(self) -> int: ...

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def remember_evaluation(
        self, path: str, mode: str, judge: str, questions: str | None = None
    ) -> None:
        """Record (or bring to the top) a judgment file for the evaluation screen."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO evaluation_files (path, mode, judge, questions, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET mode = excluded.mode, "
                "judge = excluded.judge, questions = excluded.questions, "
                "updated_at = excluded.updated_at",
                (path, mode, judge, questions, now()),
            )

    @translated
    def evaluation_files(self) -> list[EvaluationFile]:
        """The judgment files recorded, newest first (none in a store too old to have
        them, opened read-only)."""
        try:
            rows = self.db.execute(
                "SELECT path, mode, judge, questions, updated_at FROM evaluation_files "
                "ORDER BY updated_at DESC, rowid DESC"
            ).fetchall()
        except sqlite3.OperationalError:
            if self.version >= 5:
                raise
            return []
        return [EvaluationFile(*row) for row in rows]
