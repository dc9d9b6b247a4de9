"""The input box: multi-line, Enter sends, Ctrl+J (or Shift+Enter) adds a line."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual import events
from textual.widgets import TextArea

from vicuna_tui.tui.messages import PromptSubmitted


class PromptInput(TextArea):
    """A TextArea whose send key posts ``PromptSubmitted``.

    Up on an empty input (or while recalling) walks back through earlier prompts; Down
    walks forward again.  A multi-line paste keeps its lines.
    """

    def __init__(
        self,
        *,
        send_key: str = "enter",
        newline_keys: Sequence[str] = ("ctrl+j", "shift+enter"),
        passes: Callable[[str], bool] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            placeholder="Message the model (Enter sends, Ctrl+J adds a line)",
        )
        self.send_key = send_key
        self.newline_keys = tuple(newline_keys)
        self.prompt_history: list[str] = []
        self._recall: int | None = None
        # Keys the input leaves to the screen's bindings for now (the arena's one-letter
        # votes, in the empty input once both replies are in); it types all others.
        self.passes = passes

    def check_consume_key(self, key: str, character: str | None = None) -> bool:
        if self.passes is not None and self.passes(key):
            return False
        return super().check_consume_key(key, character)

    def remember(self, text: str) -> None:
        if text.strip() and (not self.prompt_history or self.prompt_history[-1] != text):
            self.prompt_history.append(text)
        self._recall = None

    def set_text(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == self.send_key:
            event.stop()
            event.prevent_default()
            if self.text.strip():
                self.post_message(PromptSubmitted(self.text))
            return
        if key in self.newline_keys:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        if (
            key == "up"
            and self.prompt_history
            and (not self.text or self._recall is not None)
            and self.cursor_location[0] == 0
        ):
            event.stop()
            event.prevent_default()
            index = len(self.prompt_history) if self._recall is None else self._recall
            self._recall = max(0, index - 1)
            self.set_text(self.prompt_history[self._recall])
            return
        if (
            key == "down"
            and self._recall is not None
            and self.cursor_location[0] == self.document.line_count - 1
        ):
            event.stop()
            event.prevent_default()
            self._recall += 1
            if self._recall >= len(self.prompt_history):
                self._recall = None
                self.set_text("")
            else:
                self.set_text(self.prompt_history[self._recall])
            return
        if event.is_printable or key in ("backspace", "delete"):
            self._recall = None
        await super()._on_key(event)
