"""Branches in the chat screen: every message with siblings shows ``‹ 2/3 ›``, keys
step between them (the transcript follows the branch chosen), and any user message can
be edited and resent as a new branch.  Nothing is overwritten."""

from __future__ import annotations

from vicuna_tui.tui.chat.stream import ReplyStream
from vicuna_tui.tui.screens.dialogs import ConfirmScreen
from vicuna_tui.tui.widgets.transcript import MessageView


class ChatBranches(ReplyStream):
    def _chosen_index(self) -> int | None:
        """The message focused in the transcript, else the last one."""
        focused = self.app.focused
        views = self.transcript.views
        if isinstance(focused, MessageView) and focused in views:
            index = views.index(focused)
            if index < len(self.session.messages):
                return index
        return len(self.session.messages) - 1 if self.session.messages else None

    async def show_path(self, focus: int | None = None) -> None:
        """Draw the branch now shown, from the top."""
        conv = self.session.conversation
        info = self.session.model_info
        name = (info.name if info else None) or (conv.model_name if conv else None)
        await self.transcript.show(
            self.session.messages, model_label=f"Assistant · {name}" if name else "Assistant"
        )
        self.mark_branches()
        self._after_change()
        views = self.transcript.views
        if focus is not None and focus < len(views):
            views[focus].focus()
            views[focus].scroll_visible()

    def on_message_view_typed(self, message: MessageView.Typed) -> None:
        """Typing while a message has focus: the text goes to the input."""
        if self.prompt.disabled:
            return
        self.prompt.focus()
        self.prompt.insert(message.character)

    async def action_branch_previous(self) -> None:
        await self._step(-1)

    async def action_branch_next(self) -> None:
        await self._step(1)

    def _branch_index(self) -> int | None:
        """The message a branch key acts on: the one focused, else the last one that has
        other branches (from the input, ``‹ 2/2 ›`` on an edited message is what the
        user sees), else the last."""
        focused = self.app.focused
        if isinstance(focused, MessageView) and focused in self.transcript.views:
            return self._chosen_index()
        for index in range(len(self.session.messages) - 1, -1, -1):
            if self.session.branch_at(index)[1] > 1:
                return index
        return self._chosen_index()

    async def _step(self, step: int) -> None:
        if self.busy_writing():
            return
        index = self._branch_index()
        if index is None:
            self.notify("There are no messages yet.")
            return
        which, count = self.session.branch_at(index)
        if count == 1:
            self.notify(
                "This message has no other branches: Ctrl+R or editing a message makes one."
            )
            return
        if not self.session.switch_branch(index, step):
            where = "first" if step < 0 else "last"
            self.notify(f"This is the {where} branch here ({which}/{count}).")
            return
        await self.show_path(focus=index)

    def action_edit_message(self) -> None:
        """Edit the focused user message (else the last one) and resend it as a branch."""
        if self.busy_writing():
            return
        index = self._chosen_index()
        while index is not None and index >= 0 and self.session.messages[index].role != "user":
            index -= 1
        if index is None or index < 0:
            self.notify("There is no message to edit yet.")
            return
        self.begin_edit(index, self.session.messages[index].content)
        self.notify(
            "Editing a message: Enter sends it as a new branch (the old one stays), "
            "Esc leaves it as it was."
        )

    async def action_delete_turn(self) -> None:
        """Delete the focused message's turn (else the last turn) and everything below
        it, on every branch, after saying how many messages go."""
        if self.streaming is not None:
            await self.stop_reply()
        start = self.session.turn_start(self._chosen_index())
        if start is None:
            self.notify("There is nothing to delete.")
            return
        count = self.session.turn_size(start)
        shown = len(self.session.messages) - start
        last = self.session.turn_start() == start

        async def done(yes: bool | None) -> None:
            if yes and self.session.remove_turn_at(start):
                await self.transcript.drop_last(len(self.transcript.views) - start)
                self._after_change()

        which = "the last turn" if last else "this turn and every turn after it"
        others = count - shown
        branches = f", {others} of them on other branches" if others > 0 else ""
        self.app.push_screen(ConfirmScreen(f"Delete {which}: {count} message(s){branches}?"), done)
