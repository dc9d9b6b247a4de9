"""Importing a whole conversation (a file from ``sessions import``, or a chat from
FastChat's ``!!load``) as a new one, in one transaction: ``store.imports``."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

from vicuna_tui.store.connection import QueryGroup
from vicuna_tui.store.records import (
    INSERT_CONVERSATION,
    INSERT_MESSAGE,
    Conversation,
    SavedMessage,
    conversation_row,
    message_row,
    now,
)


class Imports(QueryGroup):
    """``store.imports``: whole conversations, added as new ones."""

    def one(
        self, conv: Conversation, messages: Sequence[SavedMessage], *, as_tree: bool = False
    ) -> str:
        """Insert a whole conversation in one transaction (all or nothing), as a new one.
        ``as_tree``: the messages' parents make the tree (None: a root); otherwise each
        follows the message before it.  Every message gets a new uid (a file imported
        twice makes two conversations)."""
        return self.many([(conv, messages, as_tree)])[0]

    def many(self, items: Sequence[tuple[Conversation, Sequence[SavedMessage], bool]]) -> list[str]:
        """Several conversations (a dataset) in one transaction: all or none."""
        made = [_fresh_copy(conv, messages, as_tree=as_tree) for conv, messages, as_tree in items]
        with self._handle.transaction() as db:
            for copy, rows in made:
                db.execute(INSERT_CONVERSATION, conversation_row(copy))
                for row in rows:
                    db.execute(INSERT_MESSAGE, message_row(copy.id, row))
        return [copy.id for copy, _ in made]


def _fresh_copy(
    conv: Conversation, messages: Sequence[SavedMessage], *, as_tree: bool
) -> tuple[Conversation, list[SavedMessage]]:
    """The conversation and its messages under new ids, placed as a tree."""
    stamp = now()
    fresh = {m.uid: uuid.uuid4().hex for m in messages}
    rows: list[SavedMessage] = []
    depth: dict[str, int] = {}
    for index, msg in enumerate(messages):
        parent: str | None
        if as_tree:  # a parent not (yet) in the file: a root, nothing lost
            placed = msg.parent is not None and fresh.get(msg.parent, "") in depth
            parent = fresh[msg.parent] if placed and msg.parent is not None else None
        else:
            parent = rows[index - 1].uid if index else None
        position = depth[parent] + 1 if parent is not None else 0
        row = dataclasses.replace(
            msg,
            uid=fresh[msg.uid],
            parent=parent,
            chosen_child=fresh.get(msg.chosen_child or ""),
            tokens=msg.tokens if isinstance(msg.tokens, list) else None,
            fork=_fork(msg.fork, fresh),
            position=position,
            created_at=msg.created_at or stamp,
        )
        depth[row.uid] = position
        rows.append(row)
    leaf = fresh.get(conv.active_leaf or "") or (rows[-1].uid if rows else None)
    copy = dataclasses.replace(
        conv,
        id=uuid.uuid4().hex,
        created_at=conv.created_at or stamp,
        updated_at=conv.updated_at or stamp,
        backend=conv.backend or "local",
        replay_of=None,
        active_leaf=leaf,
    )
    return copy, rows


def _fork(fork: object, fresh: dict[str, str]) -> dict[str, object] | None:
    """Where an imported reply branched from a token, naming the reply by its new uid
    (None when the file's record is not one)."""
    if not isinstance(fork, dict):
        return None
    return {**fork, "from": fresh.get(str(fork.get("from")))}
