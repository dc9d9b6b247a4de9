"""``vicuna-tui arena``: an app that shows only the arena (and its leaderboard)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from textual.app import SystemCommand
from textual.screen import Screen

from vicuna_tui import runtime
from vicuna_tui.store import Store
from vicuna_tui.tui.arena.screen import ArenaScreen
from vicuna_tui.tui.arena.side import SideFactory, side_backend
from vicuna_tui.tui.literal import LiteralNotifications
from vicuna_tui.tui.store_calls import StoreCalls


class ArenaApp(LiteralNotifications):
    CSS_PATH = "styles/app.tcss"
    TITLE = "vicuna-tui arena"

    def __init__(
        self,
        sides: Sequence[runtime.Resolved],
        store: Store | None,
        *,
        factory: SideFactory | None = None,
        blind: bool = True,
        one_at_a_time: bool = False,
        debug: bool = False,
        swapped: bool | None = None,
        labels: Sequence[str] = (),
        not_saving: str | None = None,
    ) -> None:
        super().__init__()
        self.store_calls = StoreCalls(store) if store is not None else None
        self.arena = ArenaScreen(
            sides,
            factory or side_backend(debug),
            self.store_calls,
            blind=blind,
            one_at_a_time=one_at_a_time,
            debug=debug,
            swapped=lambda: swapped,
            settings={"given": list(labels)},
            not_saving=not_saving,
        )

    def on_mount(self) -> None:
        self.end_on_signals()
        self.push_screen(self.arena)

    def on_unmount(self) -> None:
        self.finish()
        self.exit_watch.ended()

    def finish(self) -> None:
        for side in self.arena.sides:
            side.shutdown()
        if self.store_calls is not None:
            self.store_calls.close()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Arena leaderboard",
            "ratings from every vote, with intervals",
            self.arena.action_results,
        )
        yield SystemCommand(
            "New battle", "a new pair of chats (Ctrl+N)", self.arena.action_new_battle
        )

    def run_arena(self) -> int:
        self.run()
        return self.return_code or 0
