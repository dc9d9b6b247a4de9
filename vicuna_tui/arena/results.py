"""The leaderboard from the battles in the store, for `arena results` and the TUI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vicuna_tui.arena.ratings import Standing, Vote, leaderboard
from vicuna_tui.store import Battle, Store


def votes_of(battles: Sequence[Battle]) -> list[Vote]:
    """The voted battles' outcomes, oldest first (the order online Elo takes them in)."""
    return [Vote(b.model_a, b.model_b, b.vote) for b in battles if b.vote is not None]


@dataclass(frozen=True)
class Results:
    """The leaderboard, the voted battles it counts, and the voted battles it leaves
    out: those with the same model on both sides, which rate nothing."""

    rows: list[Standing]
    counted: int
    same_model: int

    def summary(self) -> str:
        """One line: what the table counts and what it left out."""
        text = f"{self.counted} voted battle{'s' if self.counted != 1 else ''} counted"
        if self.same_model:
            text += f"; {self.same_model} more left out: the same model on both sides rates nothing"
        return text


def standings(store: Store, *, rounds: int = 200, seed: int = 0) -> Results:
    """The leaderboard from every voted battle in the store."""
    votes = votes_of(store.battles.all(voted_only=True))
    same = sum(v.model_a == v.model_b for v in votes)
    return Results(leaderboard(votes, rounds=rounds, seed=seed), len(votes) - same, same)


def as_json(results: Results) -> dict[str, Any]:
    return {
        "battles": results.counted,
        "left_out_same_model": results.same_model,
        "models": [{**asdict(r), "win_rate": r.win_rate} for r in results.rows],
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
