"""The leaderboard from the battles in the store, for `arena results` and the TUI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vicuna_tui.arena.ratings import (
    BOOTSTRAP_ROUNDS,
    Standing,
    Vote,
    fewest_battles,
    groups,
    leaderboard,
)
from vicuna_tui.store import Battle, Store


def votes_of(battles: Sequence[Battle]) -> list[Vote]:
    """The voted battles' outcomes, oldest first (the order online Elo takes them in)."""
    return [Vote(b.model_a, b.model_b, b.vote) for b in battles if b.vote is not None]


# Below this many battles for some pair, the prior's pull on the gaps is worth saying.
FEW_BATTLES = 30


@dataclass(frozen=True)
class Results:
    """The leaderboard, the voted battles it counts, and those it leaves out: the same
    model on both sides (they rate nothing), and named votes (--no-blind) unless
    asked for, since Chatbot Arena rates anonymous votes only."""

    rows: list[Standing]
    counted: int
    same_model: int
    named: int = 0  # named votes left out (0 when they are counted)
    include_named: bool = False
    groups: tuple[tuple[str, ...], ...] = ()  # models that met, when more than one group
    fewest: int | None = None  # the fewest battles of any pair that met

    def summary(self) -> str:
        """What the table counts and what it left out, and what to keep in mind."""
        kind = "voted battle" if self.include_named else "blind voted battle"
        text = f"{self.counted} {kind}{'s' if self.counted != 1 else ''} counted"
        if self.same_model:
            text += f"; {self.same_model} more left out: the same model on both sides rates nothing"
        if self.named:
            text += (
                f"; {self.named} named vote{'s' if self.named != 1 else ''} (--no-blind) left "
                "out, as Chatbot Arena rates anonymous votes only (--include-named counts them)"
            )
        if self.fewest is not None and self.fewest < FEW_BATTLES:
            kept = self.fewest / (self.fewest + 1)
            text += (
                f". With {self.fewest} battle{'s' if self.fewest != 1 else ''} for the least "
                f"played pair, its rating gap shows about {kept:.0%} of what the votes alone "
                "say (one virtual tie per pair keeps unbeaten models finite)"
            )
        if len(self.groups) > 1:
            text += ". These groups never met, so ratings compare only within each: " + (
                " | ".join(", ".join(g) for g in self.groups)
            )
        return text


def standings(
    store: Store, *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0, include_named: bool = False
) -> Results:
    """The leaderboard from the voted battles in the store (blind ones only, unless
    ``include_named``)."""
    battles = store.battles.all(voted_only=True)
    named = 0 if include_named else sum(not b.blind for b in battles)
    votes = votes_of([b for b in battles if include_named or b.blind])
    same = sum(v.model_a == v.model_b for v in votes)
    met = groups(votes)
    return Results(
        leaderboard(votes, rounds=rounds, seed=seed),
        len(votes) - same,
        same,
        named,
        include_named,
        tuple(tuple(g) for g in met) if len(met) > 1 else (),
        fewest_battles(votes),
    )


def as_json(results: Results) -> dict[str, Any]:
    return {
        "battles": results.counted,
        "left_out_same_model": results.same_model,
        "left_out_named": results.named,
        "groups": [list(g) for g in results.groups],
        "fewest_battles_per_pair": results.fewest,
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
            str(row.rank),
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
        for row in rows
    ]
