"""The conversation store: every conversation, saved locally in SQLite.

``database`` holds the queries, ``records`` the rows as dataclasses, ``migrations``
the named schema steps, ``connection`` the ways of opening the file, ``errors`` what
can go wrong, and ``backups`` / ``salvage`` the database's care.  It imports nothing
from the engine or the front ends.
"""

from vicuna_tui.store.battles import ARENA_RUN, Battle
from vicuna_tui.store.database import Store
from vicuna_tui.store.errors import REPAIR_HINT, StoreError, explain
from vicuna_tui.store.migrations import SCHEMA_VERSION
from vicuna_tui.store.records import (
    ALL_RUNS,
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    AllRuns,
    Conversation,
    EvaluationFile,
    SavedMessage,
    SearchHit,
    make_title,
    now,
)

__all__ = [
    "ALL_RUNS",
    "ARENA_RUN",
    "CONVERSATION_COLUMNS",
    "MESSAGE_COLUMNS",
    "REPAIR_HINT",
    "SCHEMA_VERSION",
    "AllRuns",
    "Battle",
    "Conversation",
    "EvaluationFile",
    "SavedMessage",
    "SearchHit",
    "Store",
    "StoreError",
    "explain",
    "make_title",
    "now",
]
