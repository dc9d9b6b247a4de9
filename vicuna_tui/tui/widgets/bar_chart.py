"""Evaluation results drawn as bars: per category the models' mean scores side by side,
or per model its wins, ties and losses.  Text only (block characters), never markup."""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.widgets import Static

from vicuna_tui.arena.ratings import Standing
from vicuna_tui.evaluation.results import Results
from vicuna_tui.textsafe import terminal_safe
from vicuna_tui.tui.plain import plain

MODEL_COLOURS = ("#5fafff", "#ffaf5f", "#87d787", "#d787d7", "#d7d75f", "#5fd7d7")
_BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int) -> str:
    """A bar ``fraction`` of ``width`` cells long, to an eighth of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (_BLOCKS[part] if part else "")


def score_chart(results: Results, width: int) -> Content:
    """Each category's mean score per model (out of 10), the models in one colour each."""
    models = [r.model for r in results.scores]
    colours = {m: MODEL_COLOURS[i % len(MODEL_COLOURS)] for i, m in enumerate(models)}
    label_width = max([len(c) for c in results.categories] + [7])
    name_width = min(max([len(m) for m in models] + [5]), 20)
    bar_width = max(10, width - label_width - name_width - 10)
    lines: list[Content] = []
    for category in ["overall", *results.categories]:
        for index, row in enumerate(results.scores):
            value = row.score if category == "overall" else row.by_category.get(category)
            label = category if index == 0 else ""
            name = terminal_safe(row.model)[:name_width]
            head = plain(f"{label:<{label_width}}  {name:<{name_width}} ")
            if value is None:
                lines.append(head + plain("-"))
                continue
            drawn = Content.styled(bar(value / 10, bar_width), colours[row.model])
            lines.append(head + drawn + plain(f" {value:.2f}"))
        lines.append(plain(""))
    return Content("\n").join(lines[:-1]) if lines else plain("no scores")


def pair_chart(results: Results, width: int) -> Content:
    """Per model: wins, ties and losses as one bar, with the adjusted win rate."""
    name_width = min(max([len(r.model) for r in results.pairs] + [5]), 20)
    bar_width = max(10, width - name_width - 12)
    lines: list[Content] = []
    for row in results.pairs:
        total = row.win + row.loss + row.tie
        cells = [round(bar_width * n / total) for n in (row.win, row.tie)]
        cells.append(bar_width - sum(cells))
        drawn = (
            Content.styled("█" * cells[0], "#87d787")
            + Content.styled("█" * cells[1], "#d7d75f")
            + Content.styled("█" * cells[2], "#d75f5f")
        )
        name = terminal_safe(row.model)[:name_width]
        lines.append(
            plain(f"{name:<{name_width}} ") + drawn + plain(f" {row.win_rate_adjusted:.1%}")
        )
    lines.append(plain(""))
    lines.append(
        Content.styled("█ win ", "#87d787")
        + Content.styled("█ tie ", "#d7d75f")
        + Content.styled("█ loss", "#d75f5f")
        + plain("   adjusted win rate = (win + tie / 2) / all")
    )
    return Content("\n").join(lines)


class BarChart(Static):
    """Draws the results it is given, to its own width."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(plain(""), id=id)
        self.results: Results | None = None

    def show(self, results: Results | None) -> None:
        self.results = results
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        width = self.size.width or 80
        if self.results is None:
            self.update(plain(""))
        elif self.results.mode == "single":
            self.update(score_chart(self.results, width))
        else:
            self.update(pair_chart(self.results, width))


def rating_chart(rows: Sequence[Standing], width: int) -> Content:
    """Each model's rating as a bar, its 95% interval after it, best first."""
    if not rows:
        return plain("no votes yet")
    name_width = min(max(len(r.model) for r in rows), 32)
    bar_width = max(10, width - name_width - 22)
    floor = min(r.low for r in rows) - 50
    top = max(r.high for r in rows)
    lines: list[Content] = []
    for index, row in enumerate(rows):
        name = terminal_safe(row.model)[:name_width]
        fraction = (row.rating - floor) / (top - floor) if top > floor else 1.0
        drawn = Content.styled(
            bar(fraction, bar_width).ljust(bar_width), MODEL_COLOURS[index % len(MODEL_COLOURS)]
        )
        interval = f" {row.rating:5.0f} ({row.low:.0f}–{row.high:.0f})"
        lines.append(plain(f"{name:<{name_width}} ") + drawn + plain(interval))
    return Content("\n").join(lines)


class RatingChart(Static):
    """The arena's ratings, drawn to its own width."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(plain(""), id=id)
        self.rows: list[Standing] = []

    def show(self, rows: Sequence[Standing]) -> None:
        self.rows = list(rows)
        self.update(rating_chart(self.rows, self.size.width or 80))

    def on_resize(self) -> None:
        self.update(rating_chart(self.rows, self.size.width or 80))
