"""``vicuna-tui judge show JUDGMENTS.jsonl``: the results as tables (or ``--json``):
mean scores overall, per turn and per category, or win / loss / tie and win rates."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vicuna_tui.commands.console import out
from vicuna_tui.errors import SettingsError
from vicuna_tui.evaluation import judgments, results
from vicuna_tui.evaluation.browse import read_question_file
from vicuna_tui.evaluation.results import Results, score_text
from vicuna_tui.questions import read_questions
from vicuna_tui.textsafe import json_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicuna-tui judge show",
        description="The results of `vicuna-tui judge`, as FastChat's show_result.py counts them.",
    )
    parser.add_argument("judgments", help="a judgment file (model_judgment/JUDGE_MODE.jsonl)")
    parser.add_argument("--baseline", help="pairwise: count only the pairs with this model")
    parser.add_argument("--models", nargs="+", help="only these models")
    parser.add_argument(
        "--questions", help="the question file, for categories (default: ../question.jsonl)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    return parser


def categories_for(judgment_file: Path, questions: Path | None) -> dict[Any, str]:
    """Question id to category, from the question file (FastChat keeps it one folder
    up from the judgments); {} when there is none.  A file named on the command line
    must be readable."""
    if questions is not None:
        read_questions(questions)  # a clear message for a bad --questions
    path = questions or judgment_file.parent.parent / "question.jsonl"
    return {qid: category for qid, (category, _) in read_question_file(path).items()}


def load_results(
    path: Path,
    *,
    baseline: str | None = None,
    models: Sequence[str] | None = None,
    questions: Path | None = None,
) -> Results:
    if not path.exists():
        raise SettingsError(f"no such judgment file: {path}", "run `vicuna-tui judge` first")
    records = judgments.read_records(path)
    if not records:
        raise SettingsError(f"{path} holds no judgments", "run `vicuna-tui judge` first")
    if results.kind_of(records) == "single":
        shown = results.single_results(records, categories_for(path, questions), models)
    else:
        shown = results.pair_results(records, baseline, models)
    if not (shown.scores or shown.pairs) and (models or baseline):
        raise _nothing_matches(records, path, models, baseline)
    return shown


def _nothing_matches(
    records: Sequence[Mapping[str, Any]],
    path: Path,
    models: Sequence[str] | None,
    baseline: str | None,
) -> SettingsError:
    """Why a table filtered by --models / --baseline would be empty, and what is there."""
    keys = ("model",) if results.kind_of(records) == "single" else ("model_1", "model_2")
    judged = sorted({str(r[k]) for r in records for k in keys if k in r})
    asked = []
    if models:
        asked.append(f"--models {' '.join(models)}")
    if baseline:
        asked.append(f"--baseline {baseline}")
    return SettingsError(
        f"no judgment in {path} matches {' and '.join(asked)}",
        f"the models judged there: {', '.join(judged) or 'none'}",
    )


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    path = Path(args.judgments).expanduser()
    shown = load_results(
        path,
        baseline=args.baseline,
        models=args.models,
        questions=Path(args.questions).expanduser() if args.questions else None,
    )
    if args.json:
        sys.stdout.write(json_text(shown.as_json()) + "\n")
        return 0
    out(f"judge: {', '.join(shown.judges)}   mode: {shown.mode}   file: {path}")
    if shown.errors:
        out(f"{shown.errors} judgment(s) without a verdict, left out")
    out("")
    for line in table_lines(shown):
        out(line)
    return 0


def table_lines(shown: Results) -> list[str]:
    """The table as text lines, columns aligned."""
    if shown.mode == "single":
        head = ["model", "score", "turn 1", "turn 2", *shown.categories, "judged", "errors"]
        body = [
            [
                r.model,
                score_text(r.score),
                score_text(r.turn_1),
                score_text(r.turn_2),
                *(score_text(r.by_category.get(c)) for c in shown.categories),
                str(r.judged),
                str(r.errors),
            ]
            for r in shown.scores
        ]
    else:
        head = ["model", "win", "loss", "tie", "win rate", "loss rate", "adjusted"]
        body = [
            [
                r.model,
                str(r.win),
                str(r.loss),
                str(r.tie),
                f"{r.win_rate:.3f}",
                f"{r.loss_rate:.3f}",
                f"{r.win_rate_adjusted:.3f}",
            ]
            for r in shown.pairs
        ]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = []
    for row in [head, *body]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines
