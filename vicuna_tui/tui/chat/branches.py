"""Branches in the chat: every message with siblings shows ``‹ 2/3 ›``, keys step
between them (the transcript follows the branch chosen), any user message can be
edited and resent as a new branch, and a turn can be deleted.  Nothing is overwritten.

``BranchNavigator`` owns no state of its own: the tree is the session's, the focus is
the transcript's.  It turns branch keys into session changes and redraws the path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vicuna_tui.tui.chat.editing import EditMode
from vicuna_tui.tui.chat.replies import ChatReplies
from vicuna_tui.tui.chat.view import ChatView
from vicuna_tui.tui.screens.dialogs import ConfirmScreen
from vicuna_tui.tui.widgets.transcript import MessageView


@dataclass(eq=False)
class BranchNavigator:
    view: ChatView
    _replies: ChatReplies
    _editing: EditMode
    _changed: Callable[[], None]

    def mark(self) -> None:
        """Put ``‹ which/count ›`` on each message that has siblings."""
        views = self.view.transcript.views
        for index in range(min(len(views), len(self.view.session.messages))):
            views[index].set_branch(*self.view.session.branches.branch_at(index))

    def chosen_index(self) -> int | None:
        """The message focused in the transcript, else the last one."""
        focused = self.view.ui.app.focused
        views = self.view.transcript.views
        if isinstance(focused, MessageView) and focused in views:
            index = views.index(focused)
            if index < len(self.view.session.messages):
                return index
        return len(self.view.session.messages) - 1 if self.view.session.messages else None

    async def show_path(self, focus: int | None = None) -> None:
        """Draw the branch now shown, from the top."""
        await self.view.redraw()
        self._changed()
        views = self.view.transcript.views
        if focus is not None and focus < len(views):
            views[focus].focus()
            views[focus].scroll_visible()

    def _branch_index(self) -> int | None:
        """The message a branch key acts on: the one focused, else the last one that has
        other branches (from the input, ``‹ 2/2 ›`` on an edited message is what the
        user sees), else the last."""
        focused = self.view.ui.app.focused
        if isinstance(focused, MessageView) and focused in self.view.transcript.views:
            return self.chosen_index()
        for index in range(len(self.view.session.messages) - 1, -1, -1):
            if self.view.session.branches.branch_at(index)[1] > 1:
                return index
        return self.chosen_index()

    async def step(self, step: int) -> None:
        if self._replies.busy():
            return
        index = self._branch_index()
        if index is None:
            self.view.ui.notify("There are no messages yet.")
            return
        which, count = self.view.session.branches.branch_at(index)
        if count == 1:
            self.view.ui.notify(
                "This message has no other branches: Ctrl+R or editing a message makes one."
            )
            return
        if not self.view.session.switch_branch(index, step):
            where = "first" if step < 0 else "last"
            self.view.ui.notify(f"This is the {where} branch here ({which}/{count}).")
            return
        await self.show_path(focus=index)

    def edit_message(self) -> None:
        """Edit the focused user message (else the last one) and resend it as a branch."""
        if self._replies.busy():
            return
        messages = self.view.session.messages
        index = self.chosen_index()
        while index is not None and index >= 0 and messages[index].role != "user":
            index -= 1
        if index is None or index < 0:
            self.view.ui.notify("There is no message to edit yet.")
            return
        self._editing.begin(index, messages[index].content)
        self.view.ui.notify(
            "Editing a message: Enter sends it as a new branch (the old one stays), "
            "Esc leaves it as it was."
        )

    async def delete_turn(self) -> None:
        """Delete the focused message's turn (else the last turn) and everything below
        it, on every branch, after saying how many messages go."""
        await self._replies.stop()
        session = self.view.session
        start = session.branches.turn_start(self.chosen_index())
        if start is None:
            self.view.ui.notify("There is nothing to delete.")
            return
        count = session.branches.turn_size(start)
        shown = len(session.messages) - start
        last = session.branches.turn_start() == start

        async def done(yes: bool | None) -> None:
            if yes and session.remove_turn_at(start):
                await self.view.transcript.drop_last(len(self.view.transcript.views) - start)
                self._changed()

        which = "the last turn" if last else "this turn and every turn after it"
        others = count - shown
        branches = f", {others} of them on other branches" if others > 0 else ""
        self.view.ui.app.push_screen(
            ConfirmScreen(f"Delete {which}: {count} message(s){branches}?"), done
        )
