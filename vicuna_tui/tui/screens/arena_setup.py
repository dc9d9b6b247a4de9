"""Palette → "Arena": which two models to put side by side, and whether blind."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Select, Static

from vicuna_tui.tui.plain import plain

HINT = (
    "Each side: a model folder, a .gguf file or a Hub id; a profile name from config.toml; "
    "or a server, as http://host:8000/v1 MODEL. The engine is for a local model (auto: "
    "llama.cpp for a .gguf, transformers for the rest)."
)
ENGINES = (
    ("engine: auto", "auto"),  # llama.cpp for a .gguf, transformers for the rest
    ("engine: transformers", "transformers"),
    ("engine: llama.cpp", "llamacpp"),
)


@dataclass(frozen=True)
class ArenaChoice:
    first: str
    second: str
    blind: bool
    first_engine: str = "auto"  # what runs each side, when it is a local model
    second_engine: str = "auto"


class ArenaSetupScreen(ModalScreen[ArenaChoice | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, first: str = "", engine: str = "auto") -> None:
        super().__init__()
        self.first = first
        self.engine = engine if engine in {value for _, value in ENGINES} else "auto"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="arena-setup"):
            yield Static(plain("Arena: two models side by side"), classes="dialog-title")
            for side, label, value, engine in (
                ("first", "First model", self.first, self.engine),
                ("second", "Second model", "", "auto"),
            ):
                yield Static(plain(label), classes="field-label", id=f"label-arena-{side}")
                with Horizontal(classes="arena-side"):
                    yield Input(
                        value, placeholder="path, Hub id, profile or URL", id=f"arena-{side}"
                    )
                    yield Select(
                        ENGINES, value=engine, allow_blank=False, id=f"arena-{side}-engine"
                    )
            yield Static(plain(HINT), classes="dim", id="arena-setup-hint")
            yield Checkbox(
                plain("Blind: which is which stays hidden until you vote"), True, id="arena-blind"
            )
            yield Static(plain(""), id="arena-setup-error", classes="field-error")
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
            missing = "the first model" if not first else "the second model"
            self.query_one("#arena-setup-error", Static).update(
                plain(f"Give {missing}: a path, Hub id, profile name or server URL.")
            )
            self.query_one("#arena-first" if not first else "#arena-second", Input).focus()
            return
        engines = [
            str(self.query_one(f"#arena-{side}-engine", Select).value)
            for side in ("first", "second")
        ]
        self.dismiss(
            ArenaChoice(first, second, self.query_one(Checkbox).value, engines[0], engines[1])
        )

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
