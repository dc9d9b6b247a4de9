"""What a chat does with its tree of messages: regenerating, editing and replaying add
branches, switching shows another, deleting a turn takes its subtree.  Nothing is ever
overwritten.  ``ChatSession`` takes these on; the tree itself is ``store.tree``.

``messages`` is the path shown (what the model sees), ``tree`` every message; a change
here marks what the next ``save`` writes (``_active_changed``, ``_pending_deletes``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vicuna_tui.engine.events import ChatRequest
from vicuna_tui.engine.templates import ASSISTANT, USER
from vicuna_tui.store import SavedMessage, tree


class SessionBranches:
    if TYPE_CHECKING:  # what ChatSession provides
        messages: list[SavedMessage]
        tree: list[SavedMessage]
        _pending_deletes: list[str]
        _written: set[str]
        _active_changed: bool

        def save(self, *, title: str | None = None) -> None: ...

        def add_user(self, text: str) -> ChatRequest: ...

        def _request(self) -> ChatRequest: ...

        @property
        def awaiting_reply(self) -> bool: ...

    def _back_to(self, index: int) -> None:
        """Show the path only up to ``index`` (what follows stays, as a branch, and the
        way down it is remembered)."""
        tree.remember_path(self.messages)
        del self.messages[index:]
        self._active_changed = True

    def _delete_from(self, index: int) -> None:
        """Delete the message at ``index`` and every branch below it."""
        doomed = {m.uid for m in tree.subtree(self.tree, self.messages[index].uid)}
        uid = self.messages[index].uid
        if uid in self._written:
            self._pending_deletes.append(uid)
        self._written -= doomed
        self.tree = [m for m in self.tree if m.uid not in doomed]
        self._back_to(index)
        self.save()

    def _last_user_index(self) -> int | None:
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == USER:
                return index
        return None

    def turn_size(self, index: int) -> int:
        """How many messages deleting the message at ``index`` deletes (its branches)."""
        return len(tree.subtree(self.tree, self.messages[index].uid))

    def turn_start(self, index: int | None = None) -> int | None:
        """The user message that begins the turn holding message ``index`` (default: the
        last turn); None when there is none."""
        last = len(self.messages) - 1 if index is None else min(index, len(self.messages) - 1)
        return next((i for i in range(last, -1, -1) if self.messages[i].role == USER), None)

    def remove_turn_at(self, index: int | None = None) -> bool:
        """Delete the turn holding message ``index`` (default: the last turn): its user
        message and everything below it, on every branch.  False if there is none."""
        start = self.turn_start(index)
        if start is None:
            return False
        self._delete_from(start)
        return True

    def remove_last_turn(self) -> bool:
        return self.remove_turn_at(None)

    def regenerate(self) -> ChatRequest | None:
        """Ask again for the last user message; the old reply is kept as a branch."""
        if not self.messages:
            return None
        if self.messages[-1].role == ASSISTANT:
            self._back_to(len(self.messages) - 1)
        if not self.awaiting_reply:
            return None
        self.save()
        return self._request()

    def edit_last(self, text: str) -> ChatRequest | None:
        """Send ``text`` in place of the last user message, as a new branch beside it."""
        index = self._last_user_index()
        return None if index is None else self.edit_at(index, text)

    def edit_at(self, index: int, text: str) -> ChatRequest | None:
        """Send ``text`` in place of the user message at ``index``: a new branch beside
        it (the old one, and all that followed it, stay)."""
        if not 0 <= index < len(self.messages) or self.messages[index].role != USER:
            return None
        self._back_to(index)
        return self.add_user(text)

    def branch_at(self, index: int) -> tuple[int, int]:
        """(which, of how many): the message at ``index`` among its siblings, from 1."""
        message = self.messages[index]
        siblings = tree.siblings(self.tree, message)
        return siblings.index(message) + 1, len(siblings)

    def coming_branch(self) -> tuple[int, int]:
        """(which, of how many) the reply being written now will be: a new last branch
        beside the replies already under the same message."""
        parent = self.messages[-1].uid if self.messages else None
        count = len(tree.children(self.tree, parent)) + 1
        return count, count

    def siblings_at(self, index: int) -> list[SavedMessage]:
        """The message at ``index`` and its siblings (the other branches there)."""
        return tree.siblings(self.tree, self.messages[index])

    def switch_branch(self, index: int, step: int) -> bool:
        """Show the sibling ``step`` away from the message at ``index`` and, below it,
        the branch last shown there (the newest where none was).  False when there is
        none that way."""
        if not 0 <= index < len(self.messages):
            return False
        siblings = tree.siblings(self.tree, self.messages[index])
        where = siblings.index(self.messages[index]) + step
        if not 0 <= where < len(siblings):
            return False
        tree.remember_path(self.messages)  # the way back down to what is shown now
        leaf = tree.remembered_leaf(self.tree, siblings[where].uid)
        self.messages = tree.path_to(self.tree, leaf)
        tree.remember_path(self.messages)
        self._active_changed = True
        self.save()
        return True

    def choose_branch(self, index: int, number: int) -> bool:
        """Show sibling ``number`` (from 1) of the message at ``index``."""
        which, _ = self.branch_at(index)
        return self.switch_branch(index, number - which)

    def show_branch_of(self, uid: str) -> bool:
        """Show the branch that holds message ``uid`` (a search hit), and below it the
        branch last shown there.  False if the message is not in this chat."""
        if not any(m.uid == uid for m in self.tree):
            return False
        tree.remember_path(self.messages)
        self.messages = tree.path_to(self.tree, tree.remembered_leaf(self.tree, uid))
        tree.remember_path(self.messages)
        self._active_changed = True
        self.save()
        return True

    def branch_for_replay(self) -> bool:
        """Show the path only down to its first user message, so that a replay's first
        reply becomes a branch beside the saved one and its later turns follow that
        branch.  False when no user message is shown."""
        index = next((i for i, m in enumerate(self.messages) if m.role == USER), None)
        if index is None:
            return False
        self._back_to(index + 1)
        return True

    def replay_turn(self, text: str) -> ChatRequest:
        """A replay's next turn: ``text`` as the next user message, unless the path shown
        already ends with that message waiting for its reply (a replay's first turn)."""
        if self.awaiting_reply and self.messages[-1].content == text:
            self.save()
            return self._request()
        return self.add_user(text)

    def drop_unanswered(self) -> str | None:
        """Take back a user message whose reply failed, returning its text for the input."""
        if self.awaiting_reply:
            text = self.messages[-1].content
            self._delete_from(len(self.messages) - 1)
            return text
        return None
