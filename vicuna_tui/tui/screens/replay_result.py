"""The replay screen: each saved reply next to its replay, with a word diff."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from vicuna_tui.replay_plan import Comparison
from vicuna_tui.textsafe import terminal_safe
from vicuna_tui.tui.plain import plain


def diff_content(comparison: Comparison) -> Content:
    parts: list[Content] = []
    for op, words in comparison.diff:
        text = terminal_safe(words)
        if op == "=":
            parts.append(plain(text))
        elif op == "-":
            parts.append(Content.styled(text, "red strike"))
        else:
            parts.append(Content.styled(text, "green bold"))
    return plain(" ").join(parts)


class ReplayScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, title: str, comparisons: list[Comparison], note: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.comparisons = comparisons
        self.note = note

    def compose(self) -> ComposeResult:
        same = sum(c.identical for c in self.comparisons)
        with Vertical(classes="dialog wide", id="replay-box"):
            yield Static(
                plain(f"{self.title_text}: {same} of {len(self.comparisons)} replies identical"),
                classes="dialog-title",
            )
            if self.note:
                yield Static(plain(self.note), classes="dim")
            with VerticalScroll():
                for number, comparison in enumerate(self.comparisons, start=1):
                    verdict = "identical" if comparison.identical else "differs"
                    yield Static(
                        plain(
                            f"Turn {number} · {verdict} · {terminal_safe(comparison.prompt)[:70]}"
                        ),
                        classes=f"replay-turn {verdict}",
                    )
                    with Horizontal(classes="replay-pair"):
                        yield Static(
                            plain(comparison.old or "(no saved reply)"),
                            classes="replay-old",
                        )
                        yield Static(plain(comparison.new), classes="replay-new")
                    if not comparison.identical:
                        yield Static(diff_content(comparison), classes="replay-diff")
            yield Static(plain("Left: saved reply · right: replay · Esc closes"), classes="dim")
