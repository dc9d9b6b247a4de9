"""Why a file cannot be written, in words a person can act on.

When SQLite or the OS refuses a write, its own message ("attempt to write a readonly
database", "unable to open database file", "disk I/O error") rarely names the cause.
``write_problem`` looks at the file, its folder and the file system and names it: a
read-only file system, a read-only folder or file, or a full disk.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

_FULL_BELOW_BYTES = 256 * 1024


def existing_folder(path: Path) -> Path:
    """The nearest folder at or above ``path``'s folder that exists."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def write_problem(path: Path) -> str | None:
    """What stops ``path`` (a file, maybe not created yet) being written, or None."""
    folder = existing_folder(path)
    if not folder.is_dir():
        return f"{folder} is a file, where a folder is needed"
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        stat = None
    if stat is not None and stat.f_flag & os.ST_RDONLY:
        return f"{folder} is on a read-only file system"
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file {path} is read-only"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is read-only (permission denied)"
    if path.parent != folder:
        return None  # the folders are still to be created: nothing more to check
    if stat is not None and stat.f_bavail * stat.f_frsize < _FULL_BELOW_BYTES:
        return f"the disk holding {folder} is full"
    return None


def os_error_problem(exc: OSError, path: Path) -> str:
    """Words for an OSError met while writing ``path``."""
    if exc.errno == errno.ENOSPC or exc.errno == getattr(errno, "EDQUOT", -1):
        return f"the disk holding {existing_folder(path)} is full"
    if exc.errno == errno.EROFS:
        return f"{existing_folder(path)} is on a read-only file system"
    found = write_problem(path)
    if found:
        return found
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied for {exc.filename or path}"
    return f"cannot write {exc.filename or path}: {exc.strerror or exc}"


def fix_for(problem: str) -> str:
    """The hint that goes with a problem from ``write_problem``."""
    if "full" in problem:
        return "free some disk space"
    if "where a folder is needed" in problem:
        return "move or rename that file, or set VICUNA_TUI_HOME to a folder"
    return "make it writable, or set VICUNA_TUI_HOME to a folder you can write"


def output_problem(
    path: Path, *, replace: bool, example: str = "chat.md"
) -> tuple[str, str] | None:
    """(problem, fix) when ``path`` may not be written as an output file: a folder, a
    link, a missing folder, an existing file without ``replace``, or a file system
    that refuses; None when it may."""
    if path.is_symlink():
        return (
            f"{path} is a symbolic link, and vicuna-tui does not write through links",
            "give the path it points to, or another name",
        )
    if path.is_dir():
        return f"{path} is a folder", f"give a file name in it, e.g. {path / example}"
    if not path.parent.is_dir():
        what = "is not a folder" if path.parent.exists() else "does not exist"
        return f"the folder {path.parent} {what}", "create it first, or choose another folder"
    if path.exists() and not replace:
        return f"{path} already exists", "add --force to replace it, or choose another name"
    problem = write_problem(path)
    return (problem, fix_for(problem)) if problem else None
