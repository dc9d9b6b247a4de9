"""What a chat writes to the store, worked out in memory and applied by a ``Writer``."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vicuna_tui.engine.events import ModelInfo
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.store import Conversation, SavedMessage, Store, StoreError, now

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


def conversation_record(
    title: str,
    *,
    load: LoadSettings,
    info: ModelInfo | None,
    template: str,
    system_message: str | None,
    generation: GenerationSettings,
    endpoint: str | None,
    replay_of: str | None,
    run: str | None = None,
) -> Conversation:
    """A new chat's record: what it runs on and with which settings."""
    stamp = now()
    return Conversation(
        id=uuid.uuid4().hex,
        title=title,
        created_at=stamp,
        updated_at=stamp,
        model_path=(load.model_path or (info.path if info else None)),
        model_name=info.name if info else None,
        revision=load.revision,
        template=template,
        system_message=system_message,
        generation=generation_to_dict(generation),
        load=dataclasses.asdict(load),
        backend=info.backend if info else "local",
        endpoint=endpoint or (info.endpoint if info else None),
        replay_of=replay_of,
        run=run,
    )


def reply_origin(
    info: ModelInfo | None, template: str, generation: GenerationSettings
) -> dict[str, Any]:
    """What wrote a reply: model, backend, template and settings, saved with it."""
    if info is None:
        return {"settings": generation_to_dict(generation)}
    return {
        "model": info.name,
        "backend": "remote" if info.backend == "remote" else info.engine,
        "template": template,
        "settings": generation_to_dict(generation),
    }
