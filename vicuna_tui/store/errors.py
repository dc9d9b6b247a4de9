"""What can go wrong with the conversation database, said so that a person can act on it."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vicuna_tui import writable
from vicuna_tui.errors import VicunaError


class StoreError(VicunaError):
    """The conversation database cannot be used or written.

    ``kind`` says why: ``damaged``, ``read-only`` (a folder, file or file system),
    ``full``, ``locked``, ``newer`` (a newer schema) or ``error``.
    """

    def __init__(self, message: str, hint: str = "", *, kind: str = "error") -> None:
        super().__init__(message, hint)
        self.kind = kind

    @property
    def keeps_data(self) -> bool:
        """Whether the saved conversations are still there to read (not damaged)."""
        return self.kind in ("read-only", "full", "locked")


DAMAGE_MARKS = ("malformed", "not a database", "corrupt", "encrypted")
REPAIR_HINT = (
    "run `vicuna-tui sessions repair` to save every conversation that can still be "
    "read into a new file (the damaged one is kept), or `vicuna-tui sessions check` "
    "for details"
)


def explain(exc: BaseException, path: Path) -> StoreError:
    """A StoreError that names what is really wrong with ``path``."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc).lower()
    if isinstance(exc, sqlite3.DatabaseError) and any(m in text for m in DAMAGE_MARKS):
        return StoreError(f"{path} is damaged ({exc})", REPAIR_HINT, kind="damaged")
    if isinstance(exc, OSError):
        problem = writable.os_error_problem(exc, path)
    elif "locked" in text or "busy" in text:
        return StoreError(
            f"{path} is locked by another program",
            "close other programs writing to it, then retry",
            kind="locked",
        )
    elif "full" in text:
        problem = f"the disk holding {path.parent} is full"
    else:
        found = writable.write_problem(path)
        if found is None:
            return StoreError(f"database error on {path}: {exc}", "run with --debug for details")
        problem = found
    kind = "full" if "full" in problem else "read-only"
    return StoreError(f"cannot save to {path}: {problem}", writable.fix_for(problem), kind=kind)


_T = TypeVar("_T")


def translated(method: Callable[..., _T]) -> Callable[..., _T]:
    """Turn any sqlite3 error a read meets into a StoreError that names the file
    (``self.path``)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise explain(exc, self.path) from None

    return wrapper
