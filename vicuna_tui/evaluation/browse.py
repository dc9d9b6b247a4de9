"""One judgment file opened for browsing: its results, and for any cell of the table
the questions behind it, the answers and the judge's reasoning.  Reading it touches
the disk: the TUI does it on a worker thread."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicuna_tui.errors import SettingsError
from vicuna_tui.evaluation import answers, judgments, results
from vicuna_tui.evaluation.results import Results
from vicuna_tui.questions import QuestionFileError, read_questions

_WINNER_TEXT = {"model_1": "{0} wins", "model_2": "{1} wins", "tie": "tie", "error": "no verdict"}


@dataclass(frozen=True)
class Verdict:
    label: str  # "score", or which order the pair was shown in
    value: str  # "8", "no verdict", "good wins"
    reasoning: str  # the judge's own words


@dataclass(frozen=True)
class Detail:
    question_id: Any
    category: str
    turn: int
    question: tuple[str, ...]  # the question's turns
    answers: tuple[tuple[str, tuple[str, ...]], ...]  # (model, its turns)
    verdicts: tuple[Verdict, ...]


@dataclass
class Evaluation:
    path: Path
    results: Results
    records: list[dict[str, Any]]
    questions: dict[Any, tuple[str, tuple[str, ...]]]  # id: (category, turns)
    answers: Mapping[str, Mapping[Any, Mapping[str, Any]]]

    def category(self, question_id: Any) -> str:
        return self.questions.get(question_id, ("general", ()))[0]

    def details(self, model: str, category: str | None = None) -> list[Detail]:
        """What stands behind one cell: every judgment of ``model`` (in ``category``,
        if given), with the question, the answers and the judge's reasons."""
        out = []
        for record in self.records:
            qid = record["question_id"]
            if category is not None and self.category(qid) != category:
                continue
            if "model" in record:
                if record["model"] != model:
                    continue
                # beside it, every other model's answer to the same turn, and its score
                same = [
                    r
                    for r in self.records
                    if "model" in r
                    and r["question_id"] == qid
                    and r.get("turn", 1) == record.get("turn", 1)
                    and r["model"] != model
                ]
                models = (model, *(str(r["model"]) for r in same))
                verdicts = tuple(v for r in (record, *same) for v in _verdicts(r, (r["model"],)))
            else:
                models = (record["model_1"], record["model_2"])
                if model not in models:
                    continue
                verdicts = _verdicts(record, models)
            out.append(
                Detail(
                    qid,
                    self.category(qid),
                    int(record.get("turn", 1)),
                    self.questions.get(qid, ("general", ()))[1],
                    tuple((m, self._turns(m, qid)) for m in models),
                    verdicts,
                )
            )
        return out

    def _turns(self, model: str, qid: Any) -> tuple[str, ...]:
        record = self.answers.get(model, {}).get(qid)
        return judgments.first_turns(record) if record else ()


def _verdicts(record: Mapping[str, Any], models: tuple[str, ...]) -> tuple[Verdict, ...]:
    if "score" in record:
        value = "no verdict" if record["score"] == -1 else f"{record['score']}"
        return (Verdict(f"{models[0]}'s score", value, str(record.get("judgment", ""))),)
    first, second = models
    return (
        Verdict(
            f"{first} shown first",
            _WINNER_TEXT.get(str(record["g1_winner"]), "?").format(first, second),
            str(record.get("g1_judgment", "")),
        ),
        Verdict(
            f"{second} shown first",
            _WINNER_TEXT.get(str(record["g2_winner"]), "?").format(first, second),
            str(record.get("g2_judgment", "")),
        ),
    )


def read_question_file(path: Path) -> dict[Any, tuple[str, tuple[str, ...]]]:
    """Question id: (category, turns), from a question file; {} when it is missing or
    cannot be read (results are still shown, without categories)."""
    if not path.is_file():
        return {}
    try:
        return {
            answers.question_id(record, number): (
                str(record.get("category") or "general"),
                tuple(turns),
            )
            for number, record, turns in read_questions(path)
        }
    except QuestionFileError:
        return {}


def open_evaluation(path: Path, questions: Path | None = None) -> Evaluation:
    """The judgment file with its question file (given, or FastChat's ../question.jsonl)
    and the answers beside it (../model_answer/)."""
    if not path.is_file():
        raise SettingsError(f"no such judgment file: {path}", "run `vicuna-tui judge` again")
    records = judgments.read_records(path)
    if not records:
        raise SettingsError(f"{path} holds no judgments", "run `vicuna-tui judge` again")
    question_file = questions if questions and questions.is_file() else None
    question_file = question_file or path.parent.parent / "question.jsonl"
    parsed = read_question_file(question_file)
    model_answers = answers.read_answer_dir(question_file.parent / "model_answer")
    if results.kind_of(records) == "single":
        shown = results.single_results(records, {k: v[0] for k, v in parsed.items()})
    else:
        shown = results.pair_results(records)
    return Evaluation(path, shown, records, parsed, model_answers)
