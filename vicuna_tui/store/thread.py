"""One thread that owns a Store and runs every call on it, in the order given.

The TUI's UI thread never touches the database: it hands jobs here, and their results
(or their StoreError) come back through callbacks, which run on this thread and must
only pass them on (the TUI posts a message).  The order is the order of ``submit``, so
a listing asked for after a write sees it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from vicuna_tui.store.database import Store
from vicuna_tui.store.errors import StoreError

T = TypeVar("T")
Job = Callable[[Store], Any]
_Item = tuple[Job, Callable[[Any], None], Callable[[StoreError], None]]


class StoreThread:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._jobs: queue.Queue[
            tuple[Job, Callable[[Any], None], Callable[[StoreError], None]] | None
        ]
        self._jobs = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()

    def submit(
        self,
        job: Callable[[Store], T],
        done: Callable[[T], None] | None = None,
        failed: Callable[[StoreError], None] | None = None,
    ) -> None:
        """Run ``job(store)`` on the store's thread; ``done(result)`` or ``failed(error)``
        follows there."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vicuna-store", daemon=True)
                self._thread.start()
            self._pending += 1
            self._idle.clear()
        self._jobs.put((job, done or _ignore, failed or _ignore))

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    def close(self, timeout: float = 10.0) -> None:
        """Run what is queued (the last reply must reach the disk), then stop."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        self._jobs.put(None)
        thread.join(timeout)

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, done, failed = item
            try:
                result = job(self._store)
            except StoreError as exc:
                failed(exc)
            except Exception as exc:  # noqa: BLE001 - a bug in a job: reported, never lost
                failed(StoreError(f"the database call failed: {type(exc).__name__}: {exc}"))
            else:
                done(result)
            finally:
                with self._lock:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.set()
        self._store.close()


def _ignore(value: object) -> None:
    del value
