"""A conversation as a tree of messages: each message names its parent (None for the
first of a branch), and siblings are the other answers to, or edits of, the same turn.
The active path runs from a root to the leaf the conversation last showed.

Pure functions over a list of messages in the order they were written (oldest first);
nothing here reads the disk."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from vicuna_tui.store.records import SavedMessage


def children(tree: Sequence[SavedMessage], parent: str | None) -> list[SavedMessage]:
    """The messages under ``parent`` (the roots for None), oldest first."""
    return [m for m in tree if m.parent == parent]


def siblings(tree: Sequence[SavedMessage], message: SavedMessage) -> list[SavedMessage]:
    """``message`` and the others at its place, oldest first."""
    return children(tree, message.parent)


def latest_leaf(tree: Sequence[SavedMessage], start: str | None) -> str | None:
    """The newest leaf below ``start`` (below the roots for None): the end of the
    branch last added to there.  ``start`` itself when nothing is below it."""
    below = subtree(tree, start) if start is not None else list(tree)
    has_children = {m.parent for m in tree}
    leaves = [m for m in below if m.uid not in has_children]
    if not leaves:
        return start
    order = {m.uid: i for i, m in enumerate(tree)}
    return max(leaves, key=lambda m: order[m.uid]).uid


def remembered_leaf(tree: Sequence[SavedMessage], start: str) -> str:
    """The leaf reached from ``start`` by following, at each message, the child last
    shown below it (``chosen_child``); where no choice is known, or it is gone, the
    newest leaf below."""
    by_uid = {m.uid: m for m in tree}
    has_children = {m.parent for m in tree}
    node, seen = start, set()
    while node in has_children and node not in seen:
        seen.add(node)
        chosen = by_uid[node].chosen_child if node in by_uid else None
        if chosen is None or chosen not in by_uid or by_uid[chosen].parent != node:
            return latest_leaf(tree, node) or node
        node = chosen
    return node


def remember_path(path: Sequence[SavedMessage]) -> None:
    """Mark, on each message of ``path``, the next one as the child chosen below it."""
    for above, below in itertools.pairwise(path):
        above.chosen_child = below.uid


def path_to(tree: Sequence[SavedMessage], leaf: str | None) -> list[SavedMessage]:
    """The messages from a root down to ``leaf``; with no leaf, or one not in the tree
    (a damaged record), the path to the newest leaf."""
    by_uid = {m.uid: m for m in tree}
    if leaf not in by_uid:
        leaf = latest_leaf(tree, None)
    path: list[SavedMessage] = []
    seen: set[str] = set()
    while leaf is not None and leaf in by_uid and leaf not in seen:
        seen.add(leaf)
        message = by_uid[leaf]
        path.append(message)
        leaf = message.parent
    return path[::-1]


def subtree(tree: Sequence[SavedMessage], uid: str) -> list[SavedMessage]:
    """``uid``'s message and everything below it."""
    out = [m for m in tree if m.uid == uid]
    frontier = [uid]
    while frontier:
        below = [m for m in tree if m.parent in frontier]
        out += below
        frontier = [m.uid for m in below]
    return out
