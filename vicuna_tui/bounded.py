"""Reading a file a user gave us (a question set, answers, a dataset to import): its
cost is bounded before it is paid.

A path can name a FIFO, which blocks a read forever, or a device such as /dev/zero,
which never ends; a file can be larger than the memory its parsed objects would take.
``read_text`` reads a regular file only, up to a limit, and says which of these it met,
with the file's name and what to do.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vicuna_tui.errors import VicunaError

MiB = 2**20
LINES_LIMIT = 256 * MiB  # a JSONL file of questions, answers or judgments
DATASET_LIMIT = 1024 * MiB  # a conversation or a dataset of them (ShareGPT's are ~0.5 GB)


class InputError(VicunaError):
    """A file we were asked to read cannot be read as it is."""


def read_text(path: Path, *, limit: int, what: str = "file") -> str:
    """The UTF-8 text of ``path`` (a byte-order mark dropped), at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO: no wait
    except FileNotFoundError:
        raise InputError(f"no such file: {path}", "check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a {what}", "give the file's path") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", "check the file") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{path} is a folder, not a {what}", "give the file's path")
        if not stat.S_ISREG(info.st_mode):
            raise InputError(
                f"{path} is not a regular file (a pipe, a device or a socket), so it "
                "could be endless",
                f"save the {what} to a file first, and give that file",
            )
        if info.st_size > limit:
            raise InputError(
                f"{path} is {info.st_size / MiB:,.0f} MiB; a {what} is read whole, up to "
                f"{limit // MiB:,} MiB",
                "split it into smaller files",
            )
        data = handle.read(limit + 1)  # the size said may be wrong (a file still growing)
    if len(data) > limit:
        raise InputError(
            f"{path} is more than {limit // MiB:,} MiB; a {what} is read whole, up to that",
            "split it into smaller files",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path}:{line} is not UTF-8 text (byte {exc.start})",
            f"save the {what} as UTF-8",
        ) from None
