"""What the judge is asked (the matches) and what it decided (FastChat's judgment JSONL).

Single: one record per answer and turn, ``question_id, model, judge, user_prompt,
judgment, score, turn, tstamp``; a score of -1 is an error.  Pairwise: one record per
pair and turn, judged in both orders (``g1_*`` with model_1 as assistant A, ``g2_*``
swapped back), ``g1_winner`` / ``g2_winner`` being model_1, model_2, tie or error.  A
rerun skips what is decided and judges the errors again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicuna_tui import locations
from vicuna_tui.errors import SettingsError
from vicuna_tui.evaluation.answers import question_records
from vicuna_tui.evaluation.judge_prompts import JudgePrompt, pick

# FastChat's categories whose questions have one right answer: judged against a reference
NEED_REFERENCE = ("math", "reasoning", "coding", "arena-hard-200")
MODES = ("single", "pairwise-baseline", "pairwise-all")
ERROR = "error"
_SWAP = {"A": "model_2", "B": "model_1", "tie": "tie"}
_SAME = {"A": "model_1", "B": "model_2", "tie": "tie"}


@dataclass(frozen=True)
class Question:
    id: int | str
    category: str
    turns: tuple[str, ...]
    reference: tuple[str, ...] | None  # the reference answer's turns, if any


@dataclass(frozen=True)
class Match:
    """One thing to judge: an answer (single) or two (pairwise), at one turn."""

    question: Question
    models: tuple[str, ...]  # one, or model_1 and model_2
    answers: tuple[tuple[str, ...], ...]  # each model's turns (its first choice)
    turn: int  # 1, or 2 for the second turn in the first's context
    prompt: JudgePrompt

    def user_prompt(self, swapped: bool = False) -> str:
        """The prompt for this match; ``swapped`` puts model_2's answer first."""
        q = self.question
        values: dict[str, str] = {}
        if q.reference is not None:
            values["ref_answer_1"] = q.reference[0]
            if len(q.reference) > 1:
                values["ref_answer_2"] = q.reference[1]
        answers = self.answers[::-1] if swapped else self.answers
        if self.turn == 1:
            values["question"] = q.turns[0]
            if len(answers) == 1:
                values["answer"] = answers[0][0]
            else:
                values["answer_a"], values["answer_b"] = answers[0][0], answers[1][0]
        else:
            values["question_1"], values["question_2"] = q.turns[0], q.turns[1]
            if len(answers) == 1:
                values["answer_1"], values["answer_2"] = answers[0][0], answers[0][1]
            else:
                (a1, a2), (b1, b2) = answers[0][:2], answers[1][:2]
                values.update(answer_a_1=a1, answer_a_2=a2, answer_b_1=b1, answer_b_2=b2)
        return self.prompt.render(values)

    def key(self, judge: str) -> tuple[Any, ...]:
        return (self.question.id, *self.models, self.turn, judge, self.prompt.name)


def first_turns(record: Mapping[str, Any]) -> tuple[str, ...]:
    """An answer record's turns (its first choice, as FastChat judges)."""
    choices = record.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ()  # a damaged record: nothing to judge
    turns = choices[0].get("turns")
    return tuple(str(t) for t in turns) if isinstance(turns, list) else ()


def plan(
    mode: str,
    questions: Sequence[Question],
    answers: Mapping[str, Mapping[Any, Mapping[str, Any]]],
    models: Sequence[str],
    prompts: Mapping[str, JudgePrompt],
    baseline: str | None = None,
) -> list[Match]:
    """Every match of ``mode``, turn 1 of each question then the second turns, as
    FastChat's gen_judgment plans them."""
    groups = _groups(mode, models, baseline)
    kind = "single" if mode == "single" else "pairwise"
    matches = []
    for turn in (1, 2):
        for q in questions:
            if turn == 2 and len(q.turns) != 2:
                continue
            reference = q.category in NEED_REFERENCE and q.reference is not None
            prompt = pick(dict(prompts), kind, reference=reference, second_turn=turn == 2)
            for group in groups:
                turns = tuple(first_turns(answers[m][q.id]) for m in group)
                if any(len(t) < turn for t in turns):
                    continue  # an answer cut short has no such turn to judge
                matches.append(Match(q, group, turns, turn, prompt))
    return matches


def _groups(mode: str, models: Sequence[str], baseline: str | None) -> list[tuple[str, ...]]:
    if mode == "single":
        return [(m,) for m in models]
    if mode == "pairwise-all":
        return [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    assert baseline is not None
    return [(m, baseline) for m in models if m != baseline]


def check_answers(
    questions: Sequence[Question],
    answers: Mapping[str, Mapping[Any, Any]],
    models: Sequence[str],
    answer_dir: Path,
) -> None:
    """Every model answers every question, or the run is refused before it starts."""
    for model in models:
        if model not in answers:
            known = ", ".join(sorted(answers)) or "none"
            raise SettingsError(
                f"no answers from {model!r} in {answer_dir} (there are: {known})",
                f"answer with `vicuna-tui bench QUESTIONS --model-id {model}` first",
            )
        missing = [q.id for q in questions if q.id not in answers[model]]
        if missing:
            shown = ", ".join(str(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise SettingsError(
                f"{model!r} has not answered {len(missing)} question(s): {shown}",
                f"finish its answers with `vicuna-tui bench QUESTIONS --model-id {model}`",
            )


def single_record(
    match: Match,
    judge: str,
    user_prompt: str,
    judgment: str,
    score: float | None,
    *,
    constrained: bool = False,
    rule: str = "fastchat",
) -> dict[str, Any]:
    """FastChat's single-answer record, with ours beside it: whether the verdict was held
    to its form by a grammar, and the rule it was read by."""
    return {
        "question_id": match.question.id,
        "model": match.models[0],
        "judge": [judge, match.prompt.name],
        "user_prompt": user_prompt,
        "judgment": judgment,
        "score": -1 if score is None else score,
        "turn": match.turn,
        "tstamp": time.time(),
        "constrained": constrained,
        "verdict_rule": rule,
    }


def pair_record(
    match: Match,
    judge: str,
    first: tuple[str, str, str | None],
    second: tuple[str, str, str | None],
    *,
    constrained: tuple[bool, bool] = (False, False),
    rule: str = "fastchat",
) -> dict[str, Any]:
    """``first`` and ``second``: (user prompt, judgment, winner as A/B/tie or None) with
    model_1 as assistant A, then with the two swapped; ``constrained``: whether each
    order's verdict was held to its form by a grammar."""
    return {
        "question_id": match.question.id,
        "model_1": match.models[0],
        "model_2": match.models[1],
        "g1_winner": _SAME.get(first[2] or "", ERROR),
        "g2_winner": _SWAP.get(second[2] or "", ERROR),
        "judge": [judge, match.prompt.name],
        "g1_user_prompt": first[0],
        "g1_judgment": first[1],
        "g2_user_prompt": second[0],
        "g2_judgment": second[1],
        "turn": match.turn,
        "tstamp": time.time(),
        "g1_constrained": constrained[0],
        "g2_constrained": constrained[1],
        "verdict_rule": rule,
    }


def is_error(record: Mapping[str, Any]) -> bool:
    if "score" in record:
        return bool(record["score"] == -1)
    return ERROR in (record.get("g1_winner"), record.get("g2_winner"))


def record_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    judge = record.get("judge") or ["", ""]
    models = (record["model"],) if "model" in record else (record["model_1"], record["model_2"])
    return (record["question_id"], *models, record.get("turn", 1), judge[0], judge[1])


def read_records(path: Path) -> list[dict[str, Any]]:
    """The judgments in ``path`` (none if it does not exist; a cut last line skipped)."""
    return [
        r for r in question_records(path) if "model" in r or ("model_1" in r and "model_2" in r)
    ]


def decided(path: Path) -> set[tuple[Any, ...]]:
    """The matches that ``path`` already holds a verdict for (errors are judged again)."""
    return {record_key(r) for r in read_records(path) if not is_error(r)}


def append(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with locations.open_private(path, append=True) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def tidy(path: Path) -> list[dict[str, Any]]:
    """One record per match (the last), in question, model and turn order."""
    latest = {record_key(r): r for r in read_records(path)}
    ordered = [latest[k] for k in sorted(latest, key=lambda k: tuple(map(_sortable, k)))]
    with locations.open_private(path) as handle:
        for record in ordered:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return ordered


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def output_name(judge: str, mode: str) -> str:
    """FastChat's name for the judgment file: JUDGE_single.jsonl or JUDGE_pair.jsonl."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in judge)
    return f"{safe}_{'single' if mode == 'single' else 'pair'}.jsonl"


def questions_from(
    parsed: Iterable[tuple[int | str, dict[str, Any], list[str]]],
    references: Mapping[Any, Mapping[str, Any]] | None = None,
) -> list[Question]:
    """Questions to judge from (id, record, turns); each one's reference answer comes
    from ``references`` (a reference answer file, by question id), else from the
    question's own "reference" list."""
    out = []
    for qid, record, turns in parsed:
        reference: tuple[str, ...] | None = None
        if references is not None and qid in references:
            reference = first_turns(references[qid]) or None
        elif isinstance(record.get("reference"), list) and record["reference"]:
            reference = tuple(str(t) for t in record["reference"])
        category = str(record.get("category") or "general")
        out.append(Question(qid, category, tuple(turns), reference))
    return out
