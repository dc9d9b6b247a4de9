"""The standard streams as the process was given them: closed (``<&-``, ``>&-``), full
(``>/dev/full``) or gone (a terminal closed, a reader that stopped reading).

- A closed descriptor 0, 1 or 2 is reopened on /dev/null at once, so that no file we
  open later takes its number: a database opened as descriptor 1 would receive every
  ``print``.  Python leaves ``sys.stdin``/``sys.stdout`` as None then; they are made
  real again.
- Writing the standard output can fail (a full disk, a closed file): ``CheckedOutput``
  turns that into an ``OutputError`` that names the standard output and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Any, TextIO

from vicuna_tui.errors import VicunaError


class OutputError(VicunaError):
    """The standard output cannot be written."""

    exit_code = 1


def reopen_closed() -> list[int]:
    """Put /dev/null on each of the descriptors 0, 1, 2 that is closed, and give
    Python a stream for it; the descriptors that were closed."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
    for fd in closed:
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    if 0 in closed or sys.stdin is None:
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the process
    if 1 in closed or sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    if 2 in closed or sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    return closed


def closed_output_error() -> OutputError:
    error = OutputError(
        "the standard output is closed, so nothing could be shown",
        "run it with the standard output open; to throw the output away, use >/dev/null",
    )
    error.exit_code = 2  # refused before any work, as bad usage is
    return error


def write_failed(exc: OSError) -> OutputError:
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        hint = "free some space on the disk the output goes to, or send it elsewhere"
    else:
        hint = "check where the output goes (a file, a pipe), or send it elsewhere"
    return OutputError(f"could not write to the standard output: {why}", hint)


class CheckedOutput:
    """``sys.stdout`` whose write failures are ``OutputError``s.  A reader that stopped
    reading (BrokenPipeError: ``| head``) is left as it is: that is not an error."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise write_failed(exc) from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise write_failed(exc) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def drop_pending_output() -> None:
    """After a write failed: what is still buffered goes to /dev/null, so that Python's
    own flush at exit does not fail again with a traceback."""
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
