"""A chat's tree of messages and the path shown through it: ``BranchTree``.

Regenerating, editing and replaying add branches, switching shows another, deleting a
turn takes its subtree.  Nothing is ever overwritten.  ``path`` is what is shown (what
the model sees), ``nodes`` every message, oldest first.

The tree is pure: it knows nothing of saving.  ``ChatSession`` holds one, asks it to
change, and works out what to write (``session_writes``); the tree's shape rules
(siblings, the way down each message last showed) are ``store.tree``.
"""

from __future__ import annotations

from vicuna_tui.engine.templates import USER
from vicuna_tui.store import SavedMessage, tree


class BranchTree:
    def __init__(self) -> None:
        self.path: list[SavedMessage] = []  # the branch shown: what the model sees
        self.nodes: list[SavedMessage] = []  # every branch, oldest first

    def reset(self, path: list[SavedMessage], nodes: list[SavedMessage]) -> None:
        self.path = list(path)
        self.nodes = list(nodes) or list(path)

    def append(self, message: SavedMessage) -> SavedMessage:
        """``message`` after the last one shown (a new branch if that one has others)."""
        message.parent = self.path[-1].uid if self.path else None
        if self.path:
            self.path[-1].chosen_child = message.uid  # the branch shown below it
        message.position = len(self.path)
        self.path.append(message)
        self.nodes.append(message)
        return message

    def back_to(self, index: int) -> None:
        """Show the path only up to ``index`` (what follows stays, as a branch, and the
        way down it is remembered)."""
        tree.remember_path(self.path)
        del self.path[index:]

    def delete_from(self, index: int) -> set[str]:
        """Delete the message at ``index`` and every branch below it; returns their
        uids."""
        doomed = {m.uid for m in tree.subtree(self.nodes, self.path[index].uid)}
        self.nodes = [m for m in self.nodes if m.uid not in doomed]
        self.back_to(index)
        return doomed

    def first_user_index(self) -> int | None:
        return next((i for i, m in enumerate(self.path) if m.role == USER), None)

    def turn_size(self, index: int) -> int:
        """How many messages deleting the message at ``index`` deletes (its branches)."""
        return len(tree.subtree(self.nodes, self.path[index].uid))

    def turn_start(self, index: int | None = None) -> int | None:
        """The user message that begins the turn holding message ``index`` (default: the
        last turn); None when there is none."""
        last = len(self.path) - 1 if index is None else min(index, len(self.path) - 1)
        return next((i for i in range(last, -1, -1) if self.path[i].role == USER), None)

    def branch_at(self, index: int) -> tuple[int, int]:
        """(which, of how many): the message at ``index`` among its siblings, from 1."""
        message = self.path[index]
        siblings = tree.siblings(self.nodes, message)
        return siblings.index(message) + 1, len(siblings)

    def coming_branch(self) -> tuple[int, int]:
        """(which, of how many) the reply being written now will be: a new last branch
        beside the replies already under the same message."""
        parent = self.path[-1].uid if self.path else None
        count = len(tree.children(self.nodes, parent)) + 1
        return count, count

    def siblings_at(self, index: int) -> list[SavedMessage]:
        """The message at ``index`` and its siblings (the other branches there)."""
        return tree.siblings(self.nodes, self.path[index])

    def switch(self, index: int, step: int) -> bool:
        """Show the sibling ``step`` away from the message at ``index`` and, below it,
        the branch last shown there (the newest where none was).  False when there is
        none that way."""
        if not 0 <= index < len(self.path):
            return False
        siblings = tree.siblings(self.nodes, self.path[index])
        where = siblings.index(self.path[index]) + step
        if not 0 <= where < len(siblings):
            return False
        self._show_down_from(siblings[where].uid)
        return True

    def show_below(self, index: int) -> bool:
        """Show again the branch last shown below the message at ``index`` (a reply
        asked there failed); False when it has no message below it."""
        uid = self.path[index].uid
        if not tree.children(self.nodes, uid):
            return False
        self._show_down_from(uid)
        return True

    def show_branch_of(self, uid: str) -> bool:
        """Show the branch that holds message ``uid`` (a search hit), and below it the
        branch last shown there.  False if the message is not in this chat."""
        if not any(m.uid == uid for m in self.nodes):
            return False
        self._show_down_from(uid)
        return True

    def _show_down_from(self, uid: str) -> None:
        tree.remember_path(self.path)  # the way back down to what is shown now
        self.path = tree.path_to(self.nodes, tree.remembered_leaf(self.nodes, uid))
        tree.remember_path(self.path)
