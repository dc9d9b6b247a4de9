"""The help screen (F1 or ?): every action and its key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from vicuna_tui.keymap import ACTIONS
from vicuna_tui.tui.plain import plain


def key_label(key: str) -> str:
    return "+".join(part.capitalize() if len(part) > 1 else part.upper() for part in key.split("+"))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q,question_mark", "dismiss", "Close")]

    def __init__(self, keys: dict[str, str]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="dialog"):
            yield Static(plain("Keys"), classes="dialog-title")
            with VerticalScroll():
                rows = [(key_label(self.keys.get(a.action, a.key)), a.description) for a in ACTIONS]
                rows += [
                    ("Ctrl+P", "Command palette (every action)"),
                    ("Shift+Enter", "Newline, where the terminal reports it"),
                    ("Up", "Earlier prompts (in an empty input)"),
                ]
                width = max(len(k) for k, _ in rows) + 2
                text = "\n".join(f"{k:<{width}}{d}" for k, d in rows)
                yield Static(plain(text), id="help-keys")
            yield Static(plain("Esc closes"), classes="dim")
