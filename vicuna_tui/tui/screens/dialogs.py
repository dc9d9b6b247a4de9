"""Small modal dialogs: confirm, ask for text, show an error, pick from a list."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from vicuna_tui.textsafe import terminal_safe
from vicuna_tui.tui.plain import plain


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("escape,n", "no", "No"), Binding("y", "yes", "Yes")]

    def __init__(self, question: str, yes: str = "Delete") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(plain(self.question), classes="dialog-title")
            with Horizontal(classes="buttons"):
                yield Button(self.yes, id="yes", variant="error")
                yield Button("Cancel", id="no")

    def on_mount(self) -> None:
        # query, not query_one: a dialog dismissed before it mounted has no buttons.
        for button in self.query("#no").results(Button):
            button.focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)


class TextInputScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(plain(self.title_text), classes="dialog-title")
            yield Input(self.value, id="text")
            yield Static(plain("Enter saves · Esc cancels"), classes="dim")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ErrorScreen(ModalScreen[None]):
    """A failure that needs the user's attention: what went wrong and how to fix it."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, title: str, message: str, hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Static(plain(self.title_text), classes="dialog-title")
            yield Static(plain(self.message), id="error-message")
            if self.hint:
                yield Static(plain("How to fix it: " + terminal_safe(self.hint)), id="error-hint")
            yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        # query, not query_one: a dialog dismissed before it mounted has no buttons.
        for button in self.query("#ok").results(Button):
            button.focus()

    @on(Button.Pressed)
    def _ok(self) -> None:
        self.dismiss(None)


class PickScreen(ModalScreen[int | None]):
    """Choose one of several items (a message or a code block to copy)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, items: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.items = items

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(plain(self.title_text), classes="dialog-title")
            options = []
            for index, item in enumerate(self.items):
                first = " ".join(terminal_safe(item).split())[:70] or "(empty)"
                options.append(Option(plain(f"{index + 1}. {first}"), id=str(index)))
            yield OptionList(*options, id="pick")

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def action_cancel(self) -> None:
        self.dismiss(None)


class PromptViewScreen(ModalScreen[None]):
    """The template view: the full prompt of the next turn and its token count."""

    BINDINGS = [Binding("escape,f4", "dismiss", "Close")]

    def __init__(self, template: str, text: str, tokens: int, dropped: int) -> None:
        super().__init__()
        self.template = template
        self.text = text
        self.tokens = tokens
        self.dropped = dropped

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            note = f" · {self.dropped} old turn(s) dropped" if self.dropped else ""
            yield Static(
                plain(f"Next prompt · template {self.template} · {self.tokens} tokens{note}"),
                classes="dialog-title",
            )
            with VerticalScroll():
                yield TextArea(self.text, read_only=True, soft_wrap=True, id="prompt-text")
            yield Static(plain("Esc closes"), classes="dim")
