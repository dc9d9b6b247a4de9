"""One pane of the arena: its title ("Model A", and the name once it may be known),
its transcript, and a line saying what its model is doing."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from vicuna_tui.tui.plain import plain
from vicuna_tui.tui.widgets.transcript import Transcript


class ArenaPane(Vertical):
    def __init__(self, letter: str) -> None:
        super().__init__(id=f"pane-{letter.lower()}", classes="arena-pane")
        self.letter = letter

    def compose(self) -> ComposeResult:
        yield Static(plain(f"Model {self.letter}"), classes="pane-title arena-title")
        yield Transcript(
            id=f"transcript-{self.letter.lower()}",
            how_to="Type a prompt below: both models answer it, side by side.",
        )
        yield Static(plain("loading…"), classes="arena-status")

    @property
    def transcript(self) -> Transcript:
        return self.query_one(Transcript)

    def set_title(self, text: str) -> None:
        self.query_one(".arena-title", Static).update(plain(text))

    def title_text(self) -> str:
        return str(self.query_one(".arena-title", Static).render())

    def set_status(self, text: str) -> None:
        self.query_one(".arena-status", Static).update(plain(text))

    def status_text(self) -> str:
        return str(self.query_one(".arena-status", Static).render())
