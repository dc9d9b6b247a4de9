"""The arena's leaderboard (F9 in the arena; palette: "Arena leaderboard"): each model's
Bradley–Terry rating with its 95% interval as a chart, and the table of wins, losses,
ties and win rates.  Computed on the store's thread: the UI thread never waits."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from vicuna_tui.arena.ratings import BOOTSTRAP_ROUNDS, Standing
from vicuna_tui.arena.results import HEADERS, Results, standings, table_rows
from vicuna_tui.textsafe import terminal_safe
from vicuna_tui.tui.messages import StoreFailed, StoreResult
from vicuna_tui.tui.plain import plain
from vicuna_tui.tui.store_calls import StoreCalls
from vicuna_tui.tui.widgets.bar_chart import RatingChart


class ArenaResultsScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Close")]

    def __init__(self, store_calls: StoreCalls | None) -> None:
        super().__init__()
        self.store_calls = store_calls
        self.rows: list[Standing] = []

    def compose(self) -> ComposeResult:
        yield Static(plain("Arena leaderboard"), id="arena-results-title", classes="dialog-title")
        yield Static(plain("Reading the battles…"), id="arena-results-summary")
        yield RatingChart(id="arena-chart")
        yield DataTable(id="arena-table", zebra_stripes=True, cursor_type="row")
        yield Static(
            plain(
                "rating: Bradley–Terry on the Elo scale (ties count half), 95% interval from "
                f"{BOOTSTRAP_ROUNDS:,} bootstrap rounds · rank: by the intervals · win rate: "
                "ties left out, as FastChat · elo: online, K=4 · Esc closes"
            ),
            classes="dim",
        )

    def on_mount(self) -> None:
        if self.store_calls is None:
            self._say("Battles are not being saved (--no-save), so there is no leaderboard.")
            return
        self.store_calls.call(self, standings, self._show)

    async def on_store_result(self, message: StoreResult[Any]) -> None:
        await message.handle()

    def on_store_failed(self, message: StoreFailed) -> None:
        if not message.handle():
            self._say(f"Could not read the battles: {message.error.message}")

    def _show(self, result: Results) -> None:
        self.rows = result.rows
        if not self.rows:
            empty = "No votes yet: vote in a battle (a, b, t or x once both replies are in)."
            self._say(
                f"{empty} {result.summary()}." if result.same_model or result.named else empty
            )
            return
        self._say(f"{len(self.rows)} models · {result.summary()}")
        self.query_one(RatingChart).show(self.rows)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns(*HEADERS)
        for cells in table_rows(self.rows):
            table.add_row(*(Text(terminal_safe(c)) for c in cells))

    def _say(self, text: str) -> None:
        self.query_one("#arena-results-summary", Static).update(plain(text))
