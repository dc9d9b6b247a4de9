"""The evaluation screen: the judge's results drawn, and a cell opened to its questions,
answers and the judge's reasons (Pilot and a snapshot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation_files import write_bench
from helpers import ScriptedBackend
from test_snapshots import settle, snapshot_app
from textual.widgets import DataTable, OptionList, Static
from tui_helpers import make_app, ready, run_test, settled, showing, shown, wait_for

from vicuna_tui.tui.screens.evaluation import EvaluationScreen
from vicuna_tui.tui.screens.evaluation_detail import EvaluationDetailScreen
from vicuna_tui.tui.widgets.bar_chart import BarChart


def _text(screen: Any) -> str:
    return "\n".join(str(w.render()) for w in screen.query(Static))


async def _open_from_the_palette(pilot: Any) -> EvaluationScreen:
    await ready(pilot)
    await pilot.press("ctrl+p")
    await pilot.press(*"Evaluation results")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await wait_for(pilot, lambda: showing(pilot.app, EvaluationScreen))
    screen = shown(pilot.app, EvaluationScreen)
    await wait_for(pilot, lambda: screen.query_one(DataTable).row_count > 0)
    return screen


async def test_results_are_drawn_and_a_cell_opens_its_questions(home: Path, tmp_path: Path) -> None:
    write_bench(tmp_path)
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=(130, 40)) as pilot:
        screen = await _open_from_the_palette(pilot)
        files = screen.query_one(OptionList)
        assert files.option_count == 2  # the newest first: the single grading
        table = screen.query_one(DataTable)
        assert [str(c.label) for c in table.columns.values()] == [
            "model", "score", "turn 1", "turn 2", "math", "stem", "writing"
        ]  # fmt: skip
        assert table.get_row_at(0)[1:4] == ["8.25", "9.00", "6.00"]
        assert table.get_row_at(1)[1:4] == ["7.00", "7.00", "-"]  # its turn 2: no verdict
        chart = str(screen.query_one(BarChart).render())
        assert "overall" in chart and "10.00" in chart and "█" in chart
        assert "1 without a verdict" in _text(screen)

        table.focus()
        table.move_cursor(row=0, column=4)  # vicuna-7b, math
        await pilot.press("enter")
        await wait_for(pilot, lambda: showing(pilot.app, EvaluationDetailScreen))
        detail = shown(pilot.app, EvaluationDetailScreen)
        text = _text(detail)
        assert "vicuna-7b · math" in text
        assert "Question 111 (math), turn 1" in text and "Question 111 (math), turn 2" in text
        assert "Question 81" not in text  # writing
        assert "What is 12 plus 30?" in text and "And that number times two?" in text
        assert "vicuna-7b-q4: 84." in text  # the other model's answer, beside it
        assert "Judge (vicuna-7b's score): 9" in text
        assert "Judge (vicuna-7b-q4's score): no verdict" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: showing(pilot.app, EvaluationScreen))

        table.move_cursor(row=1, column=5)  # vicuna-7b-q4, stem: text from a judge
        await pilot.press("enter")
        await wait_for(pilot, lambda: showing(pilot.app, EvaluationDetailScreen))
        text = _text(shown(pilot.app, EvaluationDetailScreen))
        assert "[red]not markup[/red]" in text and "\x1b" not in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: showing(pilot.app, EvaluationScreen))

        files.focus()
        files.highlighted = 1  # the pairwise file
        await wait_for(pilot, lambda: "win" in [str(c.label) for c in table.columns.values()])
        rows = {str(table.get_row_at(i)[0]): table.get_row_at(i) for i in range(table.row_count)}
        assert rows["vicuna-7b"][1:] == ["1", "1", "2", "25.0%", "50.0%"]
        assert "█ win" in str(screen.query_one(BarChart).render())
        await pilot.press("escape")
        await settled(pilot)
        assert not showing(pilot.app, EvaluationScreen)


async def test_without_evaluations_it_says_how_to_make_them(home: Path) -> None:
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=(130, 40)) as pilot:
        await ready(pilot)
        app.show_evaluations()
        await wait_for(pilot, lambda: showing(app, EvaluationScreen))
        screen = shown(app, EvaluationScreen)
        await wait_for(pilot, lambda: "No evaluations yet" in _text(screen))
        assert "vicuna-tui bench QUESTIONS --model-id NAME" in _text(screen)


def test_evaluation_screen_snapshot(snap_compare: Any, home: Path, tmp_path: Path) -> None:
    write_bench(tmp_path)

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: pilot.app.chat.model_ready)
        pilot.app.show_evaluations()
        await wait_for(pilot, lambda: showing(pilot.app, EvaluationScreen))
        screen = shown(pilot.app, EvaluationScreen)
        await wait_for(pilot, lambda: screen.query_one(DataTable).row_count == 2)
        await settle(pilot)

    app = snapshot_app(lambda load: ScriptedBackend())
    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)
