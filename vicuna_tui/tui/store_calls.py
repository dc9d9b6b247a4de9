"""The TUI's only way to the conversation database: every call runs on one
``StoreThread``, and its result comes back to the widget that asked as a StoreReply (a
failure as a StoreFailed), so the UI thread never waits on the disk."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from textual.message_pump import MessagePump

from vicuna_tui.session_writes import Writer
from vicuna_tui.store import Store, StoreError
from vicuna_tui.store.thread import StoreThread
from vicuna_tui.tui.messages import StoreFailed, StoreReply

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
        """Run ``job(store)``; then ``done(result)`` runs on the UI thread, at ``target``.
        A failure goes to ``failed`` there, or is posted as a StoreFailed."""

        def finished(value: T) -> None:
            if done is not None:
                target.post_message(StoreReply(functools.partial(done, value)))

        def broke(error: StoreError) -> None:
            if failed is not None:
                target.post_message(StoreReply(functools.partial(failed, error)))
            else:
                target.post_message(StoreFailed(error))

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
