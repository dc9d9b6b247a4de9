"""What a chat writes to the store, worked out in memory and applied by a ``Writer``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vicuna_tui.engine.settings import GenerationSettings
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


@dataclass(frozen=True)
class Writes:
    """One batch: the conversation's record the first time, the messages dropped since
    the last batch (from a position on), and the new messages, in order."""

    conversation_id: str
    create: Conversation | None
    delete_from: int | None
    messages: tuple[SavedMessage, ...]

    @property
    def empty(self) -> bool:
        return self.create is None and self.delete_from is None and not self.messages

    def apply(self, store: Store) -> None:
        if self.create is not None and not store.exists(self.conversation_id):
            store.insert_conversation(self.create)
        if self.delete_from is not None:
            store.delete_messages_from(self.conversation_id, self.delete_from)
        for message in self.messages:
            store.add_message(self.conversation_id, dataclasses.replace(message))


def generation_to_dict(gen: GenerationSettings) -> dict[str, Any]:
    data = dataclasses.asdict(gen)
    data["stop"] = list(gen.stop)
    return data


def generation_from_dict(data: dict[str, Any], base: GenerationSettings) -> GenerationSettings:
    known = {f.name for f in dataclasses.fields(GenerationSettings)}
    values = {k: v for k, v in data.items() if k in known}
    if "stop" in values:
        values["stop"] = tuple(values["stop"] or ())
    return dataclasses.replace(base, **values)
