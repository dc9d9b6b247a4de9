"""The TUI's only way to the conversation database: every call runs on one
``StoreThread``, and its result comes back to the widget that asked as a typed
``StoreResult[T]`` (a failure as a ``StoreFailed``), so the UI thread never waits on the
disk."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from textual.message_pump import MessagePump

from vicuna_tui.session_writes import Writer
from vicuna_tui.store import Store, StoreError
from vicuna_tui.store.thread import StoreThread
from vicuna_tui.tui.messages import StoreFailed, StoreResult

T = TypeVar("T")


class StoreCalls:
    def __init__(self, store: Store) -> None:
        self.thread = StoreThread(store)

    def call(
        self,
        target: MessagePump,
        job: Callable[[Store], T],
        done: Callable[[T], object] | None = None,
        failed: Callable[[StoreError], object] | None = None,
    ) -> None:
        """Run ``job(store)`` on the store's thread; its value comes back to ``target``
        as a ``StoreResult`` whose handler is ``done`` (nothing is posted without one),
        a failure as a ``StoreFailed`` whose handler is ``failed``."""

        def finished(value: T) -> None:
            if done is not None:
                target.post_message(StoreResult(value, done))

        def broke(error: StoreError) -> None:
            target.post_message(StoreFailed(error, failed))

        self.thread.submit(job, finished, broke)

    def writer(self, target: Callable[[], MessagePump]) -> Writer:
        """A session's ``Writer``: each job on the store's thread, then ``saved()`` or
        ``failed(error)`` on the UI thread, at ``target()`` (the screen that shows it)."""

        def write(
            job: Callable[[Store], object],
            saved: Callable[[], None],
            failed: Callable[[StoreError], None],
        ) -> None:
            self.call(target(), job, lambda _: saved(), failed)

        return write

    @property
    def idle(self) -> bool:
        """Every call made so far has run (and posted its reply)."""
        return self.thread.idle

    def close(self) -> None:
        self.thread.close()
