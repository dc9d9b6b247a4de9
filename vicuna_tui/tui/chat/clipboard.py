"""Copying from the chat: the last reply, a message, or a code block."""

from __future__ import annotations

from vicuna_tui.tui.chat.view import ChatView
from vicuna_tui.tui.screens.dialogs import PickScreen
from vicuna_tui.tui.widgets.transcript import MessageView, code_blocks


class Clipboard:
    def __init__(self, view: ChatView) -> None:
        self.view = view

    def _copy(self, text: str, what: str) -> None:
        self.view.ui.app.copy_to_clipboard(text)
        self.view.ui.notify(f"Copied {what} ({len(text)} characters).")

    def _pick(self, question: str, texts: list[str], what: str) -> None:
        def picked(index: int | None) -> None:
            if index is not None:
                self._copy(texts[index], f"{what} {index + 1}")

        self.view.ui.app.push_screen(PickScreen(question, texts), picked)

    def last_reply(self) -> None:
        reply = self.view.session.last_reply()
        if reply is None:
            self.view.ui.notify("There is no reply to copy yet.")
            return
        self._copy(reply.content, "the last reply")

    def message(self) -> None:
        focused = self.view.ui.app.focused
        if isinstance(focused, MessageView):
            self._copy(focused.text, "the message")
            return
        views = self.view.transcript.views
        if not views:
            self.view.ui.notify("There is no message to copy yet.")
            return
        self._pick("Copy which message?", [v.text for v in views], "message")

    def code(self) -> None:
        focused = self.view.ui.app.focused
        if isinstance(focused, MessageView):
            source = focused.text
        else:
            reply = self.view.session.last_reply()
            source = reply.content if reply else ""
        blocks = code_blocks(source)
        if not blocks:
            self.view.ui.notify("No code block in that message.")
            return
        if len(blocks) == 1:
            self._copy(blocks[0], "the code block")
            return
        self._pick("Copy which code block?", blocks, "code block")
