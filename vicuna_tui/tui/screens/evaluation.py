"""The evaluation screen (palette: "Evaluation results"): the judgment files that
``vicuna-tui judge`` wrote, one chart and table per file, and a drill-down from any
cell of the table to the questions, answers and the judge's reasoning.

The list comes from the store (on its thread), the files are read on a worker
thread: the UI thread never waits on the disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option

from vicuna_tui.errors import VicunaError
from vicuna_tui.evaluation.browse import Evaluation, open_evaluation
from vicuna_tui.evaluation.results import score_text
from vicuna_tui.store import EvaluationFile
from vicuna_tui.textsafe import terminal_safe
from vicuna_tui.tui.messages import StoreFailed, StoreResult
from vicuna_tui.tui.plain import plain
from vicuna_tui.tui.screens.evaluation_detail import EvaluationDetailScreen
from vicuna_tui.tui.store_calls import StoreCalls
from vicuna_tui.tui.widgets.bar_chart import BarChart

_OVERALL = ("score", "turn 1", "turn 2")


def _name(text: str) -> Text:
    """A model's name as a table cell: literal (a str cell would be read as markup)."""
    return Text(terminal_safe(text))


class EvaluationScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Close")]

    def __init__(self, store_calls: StoreCalls | None) -> None:
        super().__init__()
        self.store_calls = store_calls
        self.files: list[EvaluationFile] = []
        self.evaluation: Evaluation | None = None

    def compose(self) -> ComposeResult:
        yield Static(plain("Evaluation results"), id="eval-title", classes="dialog-title")
        with Horizontal(id="eval-body"):
            yield OptionList(id="eval-files")
            with Vertical(id="eval-main"):
                yield Static(plain(""), id="eval-summary")
                yield BarChart(id="eval-chart")
                yield DataTable(id="eval-table", cursor_type="cell", zebra_stripes=True)
        yield Static(
            plain("Enter on a cell: the questions, answers and judge's reasons · Esc closes"),
            id="eval-hint",
            classes="dim",
        )

    def on_mount(self) -> None:
        if self.store_calls is None:
            self._say("Conversations are not being saved, so no judge runs are listed.")
            return
        self.store_calls.call(self, lambda store: store.evaluations.files(), self._listed)

    async def on_store_result(self, message: StoreResult[Any]) -> None:
        await message.handle()

    def on_store_failed(self, message: StoreFailed) -> None:
        if not message.handle():
            self._say(f"Could not read the list of evaluations: {message.error.message}")

    def _listed(self, files: list[EvaluationFile]) -> None:
        self.files = files
        listing = self.query_one("#eval-files", OptionList)
        listing.clear_options()
        for file in files:
            name = Path(file.path)
            bench = name.parent.parent.name
            listing.add_option(
                Option(plain(f"{bench}\n{file.mode} · {terminal_safe(file.judge)}"), id=file.path)
            )
        if not files:
            self._say(
                "No evaluations yet. Answer with `vicuna-tui bench QUESTIONS --model-id NAME`, "
                "then grade with `vicuna-tui judge QUESTIONS ...`."
            )
            return
        listing.highlighted = 0
        listing.focus()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index < len(self.files):
            file = self.files[event.option_index]
            self._say(f"Reading {file.path} ...")
            self._open(file)

    @work(thread=True, exclusive=True, group="evaluation")
    def _open(self, file: EvaluationFile) -> None:
        try:
            evaluation = open_evaluation(
                Path(file.path), Path(file.questions) if file.questions else None
            )
        except (VicunaError, OSError, ValueError) as exc:
            message = exc.message if isinstance(exc, VicunaError) else str(exc)
            self.app.call_from_thread(self._failed, message)
            return
        self.app.call_from_thread(self._show, evaluation)

    def _failed(self, message: str) -> None:
        self.evaluation = None
        self.query_one(BarChart).show(None)
        self.query_one(DataTable).clear(columns=True)
        self._say(message)

    def _say(self, text: str) -> None:
        self.query_one("#eval-summary", Static).update(plain(text))

    def _show(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        shown = evaluation.results
        judged = len(evaluation.records)
        errors = f", {shown.errors} without a verdict" if shown.errors else ""
        self._say(
            f"{evaluation.path.name}: judged by {', '.join(shown.judges)}, "
            f"{judged} judgment(s){errors}"
        )
        self.query_one(BarChart).show(shown)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        if shown.mode == "single":
            table.add_column("model", key="model")
            for name in (*_OVERALL, *shown.categories):
                table.add_column(name, key=name)
            for row in shown.scores:
                table.add_row(
                    _name(row.model),
                    score_text(row.score),
                    score_text(row.turn_1),
                    score_text(row.turn_2),
                    *(score_text(row.by_category.get(c)) for c in shown.categories),
                    key=row.model,
                )
        else:
            for name in ("model", "win", "loss", "tie", "win rate", "adjusted"):
                table.add_column(name, key=name)
            for pair in shown.pairs:
                table.add_row(
                    _name(pair.model),
                    str(pair.win),
                    str(pair.loss),
                    str(pair.tie),
                    f"{pair.win_rate:.1%}",
                    f"{pair.win_rate_adjusted:.1%}",
                    key=pair.model,
                )

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        if self.evaluation is None:
            return
        model = str(event.cell_key.row_key.value)
        column = str(event.cell_key.column_key.value)
        category = (
            None
            if column in ("model", *_OVERALL) or self.evaluation.results.mode != "single"
            else column
        )
        details = self.evaluation.details(model, category)
        if column == "turn 1" or column == "turn 2":
            details = [d for d in details if d.turn == int(column[-1])]
        where = f" · {category}" if category else (f" · {column}" if column in _OVERALL[1:] else "")
        self.app.push_screen(EvaluationDetailScreen(f"{model}{where}", details))
