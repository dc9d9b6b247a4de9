"""Judgments turned into tables: for single grading each model's mean score overall,
per turn and per category; for pairs, win, loss and tie with the win rates, as
FastChat's ``show_result.py`` counts them (a win counts only when both orders agree;
errors are left out, and counted)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from vicuna_tui.evaluation.judgments import ERROR


@dataclass
class ScoreRow:
    model: str
    score: float | None  # the mean over every judged turn
    turn_1: float | None
    turn_2: float | None
    by_category: dict[str, float] = field(default_factory=dict)
    judged: int = 0
    errors: int = 0


@dataclass
class PairRow:
    model: str
    win: int
    loss: int
    tie: int
    win_rate: float
    loss_rate: float
    win_rate_adjusted: float  # (win + 0.5 tie) / all


@dataclass
class Results:
    mode: str  # single | pairwise
    judges: list[str]
    errors: int
    scores: list[ScoreRow] = field(default_factory=list)  # single
    pairs: list[PairRow] = field(default_factory=list)  # pairwise
    categories: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "judges": self.judges,
            "errors": self.errors,
            "categories": self.categories,
            "models": [asdict(r) for r in (self.scores if self.mode == "single" else self.pairs)],
        }


def score_text(value: float | None) -> str:
    """A mean score as the tables show it ("-" where nothing was judged)."""
    return "-" if value is None else f"{value:.2f}"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def kind_of(records: Sequence[Mapping[str, Any]]) -> str:
    return "single" if records and "score" in records[0] else "pairwise"


def judges_of(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({str((r.get("judge") or ["?"])[0]) for r in records})


def single_results(
    records: Sequence[Mapping[str, Any]],
    categories: Mapping[Any, str],
    models: Sequence[str] | None = None,
) -> Results:
    """Mean scores, best first; ``categories`` maps question ids to their category."""
    scores: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for r in records:
        model = str(r["model"])
        if models is not None and model not in models:
            continue
        if r["score"] == -1:
            errors[model] += 1
            continue
        category = categories.get(r["question_id"], "general")
        scores[model].append((int(r.get("turn", 1)), category, float(r["score"])))
    rows = []
    for model in sorted(set(scores) | set(errors)):
        mine = scores[model]
        by_category: dict[str, list[float]] = defaultdict(list)
        for _, category, value in mine:
            by_category[category].append(value)
        rows.append(
            ScoreRow(
                model,
                _mean([v for _, _, v in mine]),
                _mean([v for t, _, v in mine if t == 1]),
                _mean([v for t, _, v in mine if t == 2]),
                {c: sum(v) / len(v) for c, v in sorted(by_category.items())},
                len(mine),
                errors[model],
            )
        )
    rows.sort(key=lambda r: -1.0 if r.score is None else r.score, reverse=True)
    shown = sorted({c for row in rows for c in row.by_category})
    return Results(
        "single", judges_of(records), sum(errors.values()), scores=rows, categories=shown
    )


def pair_results(
    records: Sequence[Mapping[str, Any]],
    baseline: str | None = None,
    models: Sequence[str] | None = None,
) -> Results:
    """Win, loss and tie per model, best adjusted win rate first; with ``baseline``
    only its pairs count, and it is left out of the table."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    errors = 0
    for r in records:
        if ERROR in (r["g1_winner"], r["g2_winner"]):
            errors += 1
            continue
        m1, m2 = str(r["model_1"]), str(r["model_2"])
        if models is not None and m1 not in models and m2 not in models:
            continue  # a model asked for may be either side (the baseline is model_2)
        if baseline is not None and baseline not in (m1, m2):
            continue
        if r["g1_winner"] == "tie" or r["g1_winner"] != r["g2_winner"]:
            counts[m1][2] += 1
            counts[m2][2] += 1
        else:
            winner, loser = (m1, m2) if r["g1_winner"] == "model_1" else (m2, m1)
            counts[winner][0] += 1
            counts[loser][1] += 1
    rows = []
    for model, (win, loss, tie) in counts.items():
        if model == baseline or (models is not None and model not in models):
            continue
        total = win + loss + tie
        rows.append(
            PairRow(model, win, loss, tie, win / total, loss / total, (win + 0.5 * tie) / total)
        )
    rows.sort(key=lambda r: (r.win_rate_adjusted, r.model), reverse=True)
    return Results("pairwise", judges_of(records), errors, pairs=rows)
