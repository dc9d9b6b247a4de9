"""What a chat writes to the store, worked out in memory and applied by a ``Writer``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vicuna_tui.store import Conversation, SavedMessage, Store, StoreError

# A Writer runs ``job(store)`` now or later, in the order given, then calls ``saved()``
# or ``failed(error)`` (on the caller's thread for the TUI: it posts them back).
Job = Callable[[Store], None]
Writer = Callable[[Job, Callable[[], None], Callable[[StoreError], None]], None]


def direct_writer(store: Store) -> Writer:
    """A Writer that writes at once, on this thread (the line front ends)."""

    def write(job: Job, saved: Callable[[], None], failed: Callable[[StoreError], None]) -> None:
        try:
            job(store)
        except StoreError as exc:
            failed(exc)
        else:
            saved()

    return write


class SaveState:
    """Whether a chat is reaching the disk, and what the user was told about it."""

    def __init__(self, not_saving: str | None, warn: Callable[[str], None]) -> None:
        self.not_saving = not_saving  # why not, or None
        self.stopped = False  # the database is damaged: nothing more is written
        self._warn = warn
        self._told = False  # the user was told a save failed

    def saved(self) -> None:
        if self._told:
            self._warn("saved again: the conversation is up to date on disk")
            self._told = False
            self.not_saving = None

    def failed(self, exc: StoreError) -> None:
        if exc.kind == "damaged":
            self.stop(exc)
            return
        self.not_saving = exc.message
        if not self._told:
            self._warn(exc.inline())
            self._told = True

    def stop(self, error: StoreError) -> None:
        """The database is damaged: keep chatting, but write nothing more into it
        (`sessions repair` works on the file as it is).  Says so once."""
        if self.stopped:
            return
        self.stopped = True
        self.not_saving = error.message
        self._warn(f"not saving this chat: {error.inline()}")


@dataclass(frozen=True)
class Writes:
    """One batch: the conversation's record the first time, the branches deleted since
    the last batch (each by its first message), the new messages in order (each under
    its parent), and the branch now shown (its last message)."""

    conversation_id: str
    create: Conversation | None
    deletes: tuple[str, ...]
    messages: tuple[SavedMessage, ...]
    active_leaf: str | None
    active_changed: bool = False

    @property
    def empty(self) -> bool:
        return (
            self.create is None
            and not self.deletes
            and not self.messages
            and not self.active_changed
        )

    def apply(self, store: Store) -> None:
        if not store.exists(self.conversation_id):
            if self.create is None:  # written before, and deleted since
                raise chat_gone(self.conversation_id)
            store.insert_conversation(self.create)
        try:
            for uid in self.deletes:
                store.delete_subtree(self.conversation_id, uid)
            for message in self.messages:
                store.add_message(self.conversation_id, message, as_given=True)  # a copy
            if self.active_changed or self.deletes:
                store.set_active(self.conversation_id, self.active_leaf)
        except StoreError as exc:
            if exc.kind == "error" and not store.exists(self.conversation_id):
                raise chat_gone(self.conversation_id) from exc  # deleted meanwhile
            raise


def chat_gone(conversation_id: str) -> StoreError:
    return StoreError(
        f"chat {conversation_id[:8]} was deleted by another program "
        "(`vicuna-tui sessions delete`, or another vicuna-tui)",
        "nothing is lost: what this chat holds is saved again as a new chat",
        kind="gone",
    )


class ChatWriter:
    """One chat's way to the store: what of it has been handed to the ``Writer`` (which
    messages, whether its record), what is still to write (branches deleted, the branch
    shown moved), and what happens when a write fails (tried again with the next change;
    a chat deleted meanwhile goes to ``gone``).  ``ChatSession`` holds one and tells it
    what changed; it works out each batch (``Writes``)."""

    def __init__(self, writer: Writer | None, state: SaveState, warn: Callable[[str], None]):
        self._writer = writer
        self.state = state  # whether the chat reaches the disk, and what was said
        self._warn = warn
        self.forget()

    def forget(self) -> None:
        """Nothing of this chat is written (a new chat, or one saved again anew)."""
        self.written: set[str] = set()  # uids handed to the writer (the rest are new)
        self.created = False  # the conversation's record was handed to the writer
        self._deletes: list[str] = []  # branches deleted, not yet on disk
        self._path_moved = False  # the branch shown changed since the last batch

    def opened(self, uids: set[str]) -> None:
        """A saved chat is shown: all of it is on disk."""
        self.forget()
        self.written = set(uids)
        self.created = True

    @property
    def saving(self) -> bool:
        """Whether the chat is written anywhere (False with --no-save)."""
        return self._writer is not None

    @property
    def active(self) -> bool:
        """Whether writes go out now (saving, and the database not found damaged)."""
        return self._writer is not None and not self.state.stopped

    def path_moved(self) -> None:
        self._path_moved = True

    def deleted(self, root: str, uids: set[str]) -> None:
        """The branch from message ``root`` (``uids``, all of it) was deleted."""
        if root in self.written:
            self._deletes.append(root)
        self.written -= uids
        self._path_moved = True

    def unsaved(self, nodes: list[SavedMessage]) -> bool:
        return self.saving and any(m.uid not in self.written for m in nodes)

    def save(
        self,
        conv: Conversation,
        nodes: list[SavedMessage],
        leaf: str | None,
        gone: Callable[[StoreError], None],
    ) -> None:
        """Hand whatever is not written yet to the writer: the record the first time,
        the branches deleted, the new messages and the branch shown (ending at
        ``leaf``).  ``gone`` is told when the chat turns out deleted meanwhile."""
        if self._writer is None or self.state.stopped:
            return
        create = None if self.created else dataclasses.replace(conv, messages=[])
        self.created = True
        new = tuple(dataclasses.replace(m) for m in nodes if m.uid not in self.written)
        writes = Writes(conv.id, create, tuple(self._deletes), new, leaf, self._path_moved)
        if writes.empty:
            return
        conv.active_leaf = leaf
        self.written |= {m.uid for m in new}
        self._deletes = []
        self._path_moved = False
        self._writer(writes.apply, self.state.saved, lambda exc: self._failed(exc, writes, gone))

    def _failed(self, exc: StoreError, writes: Writes, gone: Callable[[StoreError], None]) -> None:
        """The batch did not reach the disk: it goes again with the next change (what
        was written before is known by its uid and left alone)."""
        if exc.kind == "gone":
            gone(exc)
            return
        if writes.create is not None:
            self.created = False
        self.written -= {m.uid for m in writes.messages}
        self._deletes = [*writes.deletes, *self._deletes]
        self._path_moved = True
        self.state.failed(exc)

    def update(self, conv: Conversation, fields: dict[str, Any]) -> None:
        """Change the conversation's record (its settings, or the model answering)."""
        if self._writer is None or self.state.stopped:
            return
        for name, value in fields.items():  # the record in memory stays the truth
            setattr(conv, name, value)
        if not self.created:
            return  # written with the new values when the chat is first saved
        conv_id = conv.id
        self._writer(
            lambda store: store.update_conversation(conv_id, **fields),
            lambda: None,
            lambda exc: self._warn(exc.message),
        )
