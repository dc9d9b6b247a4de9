"""A terminal that goes away under Textual: its writer thread must keep draining, so the
app can always end (a dead writer thread once left the app blocked on a full queue)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from textual.drivers._writer_thread import MAX_QUEUED_WRITES, WriterThread

from vicuna_tui.tui.terminal import DeadEndFile, terminal_driver


def _write_frames(writer: WriterThread, frames: int, wait: float = 10) -> threading.Thread:
    """Write ``frames`` frames then stop the writer, as the app's exit does; on a thread,
    so that a test of a writer that blocks does not block the suite."""

    def frames_then_stop() -> None:
        for _ in range(frames):
            writer.write("\x1b[H a frame of the reply\n")
        writer.stop()

    thread = threading.Thread(target=frames_then_stop, daemon=True)
    thread.start()
    thread.join(wait)
    return thread


def _closed_terminal() -> tuple[object, int]:
    """A pty whose other end has closed: writes fail with EIO, as after SIGHUP."""
    master, slave = os.openpty()
    os.close(master)
    return os.fdopen(slave, "w"), slave


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_textuals_own_writer_blocks_on_a_closed_terminal() -> None:
    """Why DeadEndFile exists: without it the writer thread dies on EIO and the app's
    next frames (or the driver's close) wait forever."""
    stream, _ = _closed_terminal()
    writer = WriterThread(stream)  # type: ignore[arg-type]
    writer.start()
    blocked = _write_frames(writer, MAX_QUEUED_WRITES * 3, wait=2)
    assert blocked.is_alive(), "Textual's writer no longer dies on a closed terminal"


def test_the_writer_keeps_draining_once_the_terminal_is_gone() -> None:
    stream, fd = _closed_terminal()
    dead_end = DeadEndFile(stream)  # type: ignore[arg-type]
    writer = WriterThread(dead_end)  # type: ignore[arg-type]
    writer.start()
    finished = _write_frames(writer, MAX_QUEUED_WRITES * 3)
    assert not finished.is_alive(), "the app would block on a closed terminal"
    assert dead_end.gone and not dead_end.isatty()
    assert dead_end.fileno() == fd  # termios calls still reach the terminal's descriptor


def test_the_linux_driver_is_ours_and_other_drivers_are_kept() -> None:
    linux = pytest.importorskip("textual.drivers.linux_driver").LinuxDriver
    from textual.drivers.headless_driver import HeadlessDriver

    ours = terminal_driver(linux)
    assert issubclass(ours, linux) and ours is not linux
    assert terminal_driver(HeadlessDriver) is HeadlessDriver


WATCHED = """
import sys, threading
from vicuna_tui.tui.terminal import ExitWatch
mark = sys.argv[1]
def finish():
    open(mark, "w").write("finished")
watch = ExitWatch(finish, clean_end=0.5, last_frames=0.2)
watch.start()
if sys.argv[2] == "ended":
    watch.ended()
threading.Event().wait()  # the UI stuck for good, as on a dead terminal
"""


@pytest.mark.parametrize("ending", ["stuck", "ended"])
def test_the_exit_watch_ends_a_stuck_app_and_finishes_its_work(ending: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    mark = tmp_path / "finished"
    done = subprocess.run([sys.executable, "-c", WATCHED, str(mark), ending], timeout=60)
    assert done.returncode == 0
    # Stuck before its own ending: the watch did the app's work (saved, stopped the
    # model). Ended: the app did it already, and the watch only ends the process.
    assert mark.exists() == (ending == "stuck")
