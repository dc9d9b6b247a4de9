"""Edit mode: a user message is being edited in the input, to be resent as a new
branch.  It is marked on the input (its colour and its title) until it ends."""

from __future__ import annotations

from vicuna_tui.tui.widgets.composer import PromptInput

EDIT_TITLE = "✎ editing message {n}: Enter resends it as a new branch · Esc cancels"


class EditMode:
    def __init__(self, prompt: PromptInput) -> None:
        self._prompt = prompt
        self.at: int | None = None  # the index of the user message being edited

    @property
    def active(self) -> bool:
        return self.at is not None

    def begin(self, index: int, text: str) -> None:
        self.at = index
        self._prompt.add_class("editing")
        self._prompt.border_title = EDIT_TITLE.format(n=index + 1)
        self._prompt.set_text(text)
        self._prompt.focus()

    def end(self) -> None:
        self.at = None
        self._prompt.remove_class("editing")
        self._prompt.border_title = None
