"""The help screen (F1 or ?): every action and its key, and how focus moves."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from vicuna_tui.keymap import ACTIONS, human_key
from vicuna_tui.tui.plain import plain

FOCUS_ROWS = (
    ("Esc", "Back to the input from a message (and cancels an edit)"),
    ("← / →", "On a focused message: its previous / next branch"),
    ("Typing", "On a focused message: the text goes to the input"),
    ("← / → (token view)", "On a focused reply: the previous / next token"),
    ("Ctrl+← / →", "Token view: the previous / next token written at under 10%"),
    ("1-5 (token view)", "Branch from the focused token with that alternative"),
    ("Up", "Earlier prompts (in an empty input)"),
    ("Ctrl+P", "Command palette (every action)"),
    ("Shift+Enter", "Newline, where the terminal reports it"),
)


def help_rows(keys: dict[str, str]) -> list[tuple[str, str]]:
    rows = [(human_key(keys.get(a.action, a.key)), a.description) for a in ACTIONS]
    return rows + list(FOCUS_ROWS)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q,question_mark", "dismiss", "Close")]

    def __init__(self, keys: dict[str, str]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="dialog"):
            yield Static(plain("Keys"), classes="dialog-title")
            yield Static(
                plain(
                    "F6, F7, F8 and ←/→ act on the focused message (boxed, with its keys in "
                    "its title), else the last one. Tab and Shift+Tab move the focus."
                ),
                classes="dim",
            )
            # Two columns: a wrapped description stays in its own column.
            with VerticalScroll(), Grid(id="help-keys"):
                for key, description in help_rows(self.keys):
                    yield Static(plain(key), classes="help-key")
                    yield Static(plain(description), classes="help-what")
            yield Static(plain("Esc closes"), classes="dim")
