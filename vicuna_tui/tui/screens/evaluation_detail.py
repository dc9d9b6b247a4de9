"""What stands behind a cell of the evaluation table: each question, the answers and
the judge's reasoning, in plain text (all of it comes from files and models)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from vicuna_tui.evaluation.browse import Detail
from vicuna_tui.tui.plain import plain


def _turns(turns: tuple[str, ...], upto: int) -> str:
    shown = turns[:upto] if upto > 1 else turns[:1]
    if len(shown) <= 1:
        return shown[0] if shown else "(missing)"
    return "\n\n".join(f"[turn {i}] {t}" for i, t in enumerate(shown, start=1))


class EvaluationDetailScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, title: str, details: list[Detail]) -> None:
        super().__init__()
        self.title_text = title
        self.details = details

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="eval-detail"):
            yield Static(plain(self.title_text), classes="dialog-title")
            with VerticalScroll():
                if not self.details:
                    yield Static(plain("No judgments here."), classes="dim")
                for detail in self.details:
                    yield Static(
                        plain(
                            f"Question {detail.question_id} ({detail.category}), turn {detail.turn}"
                        ),
                        classes="eval-question-title",
                    )
                    yield Static(plain(_turns(detail.question, detail.turn)), classes="eval-q")
                    with Horizontal(classes="eval-answers"):
                        for model, turns in detail.answers:
                            yield Static(
                                plain(f"{model}:\n{_turns(turns, detail.turn)}"),
                                classes="eval-answer",
                            )
                    for verdict in detail.verdicts:
                        yield Static(
                            plain(f"Judge ({verdict.label}): {verdict.value}"),
                            classes="eval-verdict",
                        )
                        yield Static(plain(verdict.reasoning), classes="eval-reasoning")
            yield Static(plain("Esc closes"), classes="dim")
