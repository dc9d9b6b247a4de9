"""The arena's leaderboard: wins, losses, ties, and ratings from votes, as Chatbot
Arena reports them.

- **Bradley–Terry** (the main rating): the strengths that make the votes most likely,
  found by Hunter's MM algorithm and put on the Elo scale (400 points for 10:1 odds),
  the models' mean rating 1000.  As Chatbot Arena counts them, a tie (and "both bad")
  is half a win for each side.  Each pair of models that met also gets one virtual
  tie, a weak prior, so that a model that won every game has a finite rating; for two
  models the rating gap is then ``400·log10(p / (1 - p))`` with
  ``p = (wins + ties/2 + 1/2) / (games + 1)``.
- **The 95% confidence interval** comes from the bootstrap: the battles are drawn again
  with replacement (``rounds`` times, 1,000 by default, seeded) and the ratings
  refitted; a model that no battle of a round drew is left out of that round.
- **The rank** follows the intervals, as later Chatbot Arena leaderboards do: one more
  than the number of models whose interval lies wholly above this one's.
- **Win rate** leaves ties out, as FastChat's does: wins ÷ (wins + losses).
- **Online Elo** (Chatbot Arena's first leaderboard): K = 4, in the order the votes
  were given.

Pure computation: no store, no UI.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

VOTES = ("a", "b", "tie", "bothbad")
VOTE_WORDS = {"a": "A is better", "b": "B is better", "tie": "tie", "bothbad": "both are bad"}
SCALE = 400.0
BASE = 10.0
MEAN_RATING = 1000.0
ELO_K = 4.0
PRIOR_TIES = 1.0  # virtual ties per pair of models that met
BOOTSTRAP_ROUNDS = 1000  # resamples for the 95% interval


@dataclass(frozen=True)
class Vote:
    """One battle's outcome: ``model_a`` was shown as Model A; ``vote`` is one of VOTES."""

    model_a: str
    model_b: str
    vote: str


@dataclass(frozen=True)
class Standing:
    model: str
    games: int
    wins: int
    losses: int
    ties: int  # both_bad included
    both_bad: int
    rating: float
    low: float  # the 95% confidence interval
    high: float
    elo: float
    rank: int = 1  # 1 + the models whose interval lies wholly above this one's

    @property
    def win_rate(self) -> float:
        """FastChat's: wins over decided games, ties left out."""
        decided = self.wins + self.losses
        return self.wins / decided if decided else 0.0


def _scores(vote: Vote) -> tuple[float, float]:
    if vote.vote == "a":
        return 1.0, 0.0
    if vote.vote == "b":
        return 0.0, 1.0
    return 0.5, 0.5


def _pairs(
    votes: Iterable[Vote], weights: Iterable[float] | None = None
) -> dict[tuple[str, str], list[float]]:
    """Per pair of models (sorted names): [score of the first, score of the second];
    each vote counted ``weights[i]`` times (once when no weights are given)."""
    table: dict[tuple[str, str], list[float]] = {}
    listed = list(votes)
    counts = list(weights) if weights is not None else [1.0] * len(listed)
    for vote, weight in zip(listed, counts, strict=True):
        if vote.model_a == vote.model_b or weight == 0:
            continue  # a model against itself says nothing about ratings
        a, b = _scores(vote)
        first, second = sorted((vote.model_a, vote.model_b))
        cell = table.setdefault((first, second), [0.0, 0.0])
        if first == vote.model_a:
            cell[0] += a * weight
            cell[1] += b * weight
        else:
            cell[0] += b * weight
            cell[1] += a * weight
    return table


def bradley_terry(
    pairs: dict[tuple[str, str], list[float]],
    models: Sequence[str],
    *,
    iterations: int = 2000,
    tolerance: float = 1e-10,
) -> dict[str, float]:
    """Ratings on the Elo scale (mean ``MEAN_RATING``) from per-pair scores."""
    if not models:
        return {}
    wins = dict.fromkeys(models, 0.0)
    games: dict[tuple[str, str], float] = {}
    for (first, second), (s1, s2) in pairs.items():
        total = s1 + s2 + PRIOR_TIES
        if total <= PRIOR_TIES:
            continue
        wins[first] += s1 + PRIOR_TIES / 2
        wins[second] += s2 + PRIOR_TIES / 2
        games[(first, second)] = total
    strength = dict.fromkeys(models, 1.0)
    for _ in range(iterations):
        denominators = dict.fromkeys(models, 0.0)
        for (first, second), count in games.items():
            shared = count / (strength[first] + strength[second])
            denominators[first] += shared
            denominators[second] += shared
        updated = {
            m: (wins[m] / denominators[m] if denominators[m] > 0 else strength[m]) for m in models
        }
        mean_log = sum(math.log(v) for v in updated.values()) / len(models)
        updated = {m: v / math.exp(mean_log) for m, v in updated.items()}
        change = max(abs(math.log(updated[m] / strength[m])) for m in models)
        strength = updated
        if change < tolerance:
            break
    return {m: MEAN_RATING + SCALE * math.log(strength[m], BASE) for m in models}


def online_elo(votes: Iterable[Vote], *, k: float = ELO_K) -> dict[str, float]:
    """Chatbot Arena's online Elo, the votes taken in order."""
    rating: dict[str, float] = {}
    for vote in votes:
        if vote.model_a == vote.model_b:
            continue
        ra = rating.setdefault(vote.model_a, MEAN_RATING)
        rb = rating.setdefault(vote.model_b, MEAN_RATING)
        expected_a = 1 / (1 + BASE ** ((rb - ra) / SCALE))
        score_a, _ = _scores(vote)
        rating[vote.model_a] = ra + k * (score_a - expected_a)
        rating[vote.model_b] = rb + k * ((1 - score_a) - (1 - expected_a))
    return rating


def _bootstrap(
    votes: Sequence[Vote], models: Sequence[str], rounds: int, seed: int
) -> dict[str, tuple[float, float]]:
    """The 2.5% and 97.5% quantiles of each rating over ``rounds`` resamples."""
    import numpy as np

    if rounds <= 0 or not votes:
        return {}
    # Drawing battles with replacement is drawing how often each kind of battle (the
    # models shown and the vote) comes up: one multinomial draw per round.
    kinds = sorted({v for v in votes}, key=lambda v: (v.model_a, v.model_b, v.vote))
    index = {kind: i for i, kind in enumerate(kinds)}
    counts = np.zeros(len(kinds))
    for vote in votes:
        counts[index[vote]] += 1
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(votes), counts / counts.sum(), size=rounds)
    samples: dict[str, list[float]] = {m: [] for m in models}
    for draw in draws:
        weights = [float(times) for times in draw]
        drawn = {m for kind, w in zip(kinds, weights, strict=True) if w for m in _sides(kind)}
        present = [m for m in models if m in drawn]  # a model no battle drew sits out
        ratings = bradley_terry(_pairs(kinds, weights), present, iterations=500, tolerance=1e-8)
        for model in present:
            samples[model].append(ratings[model])
    return {
        m: (float(np.quantile(s, 0.025)), float(np.quantile(s, 0.975)))
        for m, s in samples.items()
        if s
    }


def _sides(vote: Vote) -> tuple[str, ...]:
    return () if vote.model_a == vote.model_b else (vote.model_a, vote.model_b)


def groups(votes: Iterable[Vote]) -> list[list[str]]:
    """The models in groups that met, directly or through others (largest first): the
    ratings of two groups that never met cannot be compared."""
    links: dict[str, set[str]] = {}
    for vote in votes:
        if vote.model_a != vote.model_b:
            links.setdefault(vote.model_a, set()).add(vote.model_b)
            links.setdefault(vote.model_b, set()).add(vote.model_a)
    seen: set[str] = set()
    found = []
    for start in sorted(links):
        if start in seen:
            continue
        group, todo = set(), [start]
        while todo:
            model = todo.pop()
            if model not in group:
                group.add(model)
                todo.extend(links[model] - group)
        seen |= group
        found.append(sorted(group))
    return sorted(found, key=lambda g: (-len(g), g))


def fewest_battles(votes: Iterable[Vote]) -> int | None:
    """The fewest voted battles any pair of models that met has had (None: no pair)."""
    counts: dict[tuple[str, ...], int] = {}
    for vote in votes:
        if vote.model_a != vote.model_b:
            pair = tuple(sorted((vote.model_a, vote.model_b)))
            counts[pair] = counts.get(pair, 0) + 1
    return min(counts.values()) if counts else None


def leaderboard(
    votes: Sequence[Vote], *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> list[Standing]:
    """Every model that took part in a voted battle, best rating first."""
    played = [v for v in votes if v.model_a != v.model_b]
    models = sorted({v.model_a for v in played} | {v.model_b for v in played})
    ratings = bradley_terry(_pairs(votes), models)
    intervals = _bootstrap(votes, models, rounds, seed)
    elo = online_elo(votes)
    rows = []
    for model in models:
        wins = losses = ties = both_bad = 0
        for vote in votes:
            if model not in (vote.model_a, vote.model_b) or vote.model_a == vote.model_b:
                continue
            side = "a" if vote.model_a == model else "b"
            if vote.vote == side:
                wins += 1
            elif vote.vote in ("a", "b"):
                losses += 1
            else:
                ties += 1
                both_bad += vote.vote == "bothbad"
        rating = ratings[model]
        low, high = intervals.get(model, (rating, rating))
        rows.append(
            Standing(
                model=model,
                games=wins + losses + ties,
                wins=wins,
                losses=losses,
                ties=ties,
                both_bad=both_bad,
                rating=rating,
                low=min(low, rating),
                high=max(high, rating),
                elo=elo.get(model, MEAN_RATING),
            )
        )
    ranked = [
        dataclasses.replace(row, rank=1 + sum(other.low > row.high for other in rows))
        for row in rows
    ]
    return sorted(ranked, key=lambda r: (-r.rating, r.model))
