"""Palette → "Arena": which two models to put side by side, and whether blind."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Static

from vicuna_tui.tui.plain import plain

PLACEHOLDER = "a model folder, .gguf or Hub id · a profile name · http://host/v1 MODEL"


@dataclass(frozen=True)
class ArenaChoice:
    first: str
    second: str
    blind: bool


class ArenaSetupScreen(ModalScreen[ArenaChoice | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, first: str = "") -> None:
        super().__init__()
        self.first = first

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="arena-setup"):
            yield Static(plain("Arena: two models side by side"), classes="dialog-title")
            yield Input(self.first, placeholder=PLACEHOLDER, id="arena-first")
            yield Input(placeholder=PLACEHOLDER, id="arena-second")
            yield Checkbox(plain("Blind: names hidden until you vote"), True, id="arena-blind")
            yield Static(plain(""), id="arena-setup-error", classes="dim")
            with Horizontal(classes="buttons"):
                yield Button("Start", id="start", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#arena-second" if self.first else "#arena-first", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        first = self.query_one("#arena-first", Input).value.strip()
        second = self.query_one("#arena-second", Input).value.strip()
        if not first or not second:
            self.query_one("#arena-setup-error", Static).update(
                plain("Give both models: a path, Hub id, profile name or server URL.")
            )
            return
        self.dismiss(ArenaChoice(first, second, self.query_one(Checkbox).value))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
