"""The leaderboard from the battles in the store, for `arena results` and the TUI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from vicuna_tui.arena.ratings import Standing, Vote, leaderboard
from vicuna_tui.store import Battle, Store


def votes_of(battles: Sequence[Battle]) -> list[Vote]:
    """The voted battles' outcomes, oldest first (the order online Elo takes them in)."""
    return [Vote(b.model_a, b.model_b, b.vote) for b in battles if b.vote is not None]


def standings(store: Store, *, rounds: int = 200, seed: int = 0) -> tuple[list[Standing], int]:
    """The leaderboard, and how many battles were voted on."""
    votes = votes_of(store.battles(voted_only=True))
    return leaderboard(votes, rounds=rounds, seed=seed), len(votes)


def as_json(rows: Sequence[Standing], battles: int) -> dict[str, Any]:
    return {
        "battles": battles,
        "models": [{**asdict(r), "win_rate": r.win_rate} for r in rows],
    }


HEADERS = (
    "rank",
    "model",
    "rating",
    "95% CI",
    "games",
    "wins",
    "losses",
    "ties",
    "win rate",
    "elo",
)


def table_rows(rows: Sequence[Standing]) -> list[tuple[str, ...]]:
    """Each standing as the leaderboard's cells, in HEADERS order."""
    return [
        (
            str(rank),
            row.model,
            f"{row.rating:.0f}",
            f"{row.low - row.rating:+.0f}/{row.high - row.rating:+.0f}",
            str(row.games),
            str(row.wins),
            str(row.losses),
            str(row.ties),
            f"{row.win_rate:.1%}",
            f"{row.elo:.0f}",
        )
        for rank, row in enumerate(rows, start=1)
    ]
