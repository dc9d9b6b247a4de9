"""A bench folder with two models' answers and a judge's verdicts, written by hand, for
the evaluation screen's tests (no model, no server: every frame holds still)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vicuna_tui.evaluation import answers
from vicuna_tui.store import Store

QUESTIONS = Path(__file__).parent / "fixtures" / "bench_questions.jsonl"
SCORES = {  # (question, model, turn): the judge's score
    (81, "vicuna-7b", 1): 8,
    (81, "vicuna-7b-q4", 1): 7,
    (111, "vicuna-7b", 1): 9,
    (111, "vicuna-7b-q4", 1): 5,
    (111, "vicuna-7b", 2): 6,
    (111, "vicuna-7b-q4", 2): -1,
    (7, "vicuna-7b", 1): 10,
    (7, "vicuna-7b-q4", 1): 9,
}
WINNERS = {  # (question, turn): (g1, g2)
    (81, 1): ("model_1", "model_1"),
    (111, 1): ("model_1", "model_2"),
    (111, 2): ("tie", "tie"),
    (7, 1): ("model_2", "model_2"),
}


def write_bench(root: Path) -> tuple[Path, Path]:
    """The folder, as FastChat lays it out; returns the single and pair judgment files,
    both listed in the store for the evaluation screen."""
    folder = root / "vicuna_bench"
    (folder / "model_answer").mkdir(parents=True)
    (folder / "model_judgment").mkdir()
    shutil.copy(QUESTIONS, folder / "question.jsonl")
    turns = {81: ["Soft wool, calm eyes."], 111: ["42.", "84."], 7: ["Jupiter."]}
    for model in ("vicuna-7b", "vicuna-7b-q4"):
        lines = [
            answers.answer_record(q, model, [[f"{model}: {t}" for t in ts]])
            for q, ts in turns.items()
        ]
        (folder / "model_answer" / f"{model}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in lines)
        )
    single = folder / "model_judgment" / "gpt-4_single.jsonl"
    records: list[dict[str, Any]] = [
        {
            "question_id": q, "model": m, "judge": ["gpt-4", "single-v1"],
            "user_prompt": "...", "score": s, "turn": t, "tstamp": 0,
            "judgment": f"The answer to {q} is {'unreadable' if s == -1 else 'fine'}. "
            + ("" if s == -1 else f"Rating: [[{s}]]"),
        }
        for (q, m, t), s in SCORES.items()
    ]  # fmt: skip
    records[-1]["judgment"] = "[red]not markup[/red]\x1b[2J and a fine answer. Rating: [[9]]"
    single.write_text("".join(json.dumps(r) + "\n" for r in records))
    pair = folder / "model_judgment" / "gpt-4_pair.jsonl"
    records = [
        {
            "question_id": q, "model_1": "vicuna-7b", "model_2": "vicuna-7b-q4",
            "g1_winner": g1, "g2_winner": g2, "judge": ["gpt-4", "pair-v2"],
            "g1_user_prompt": "...", "g1_judgment": "A reads better. [[A]]",
            "g2_user_prompt": "...", "g2_judgment": "B reads better. [[B]]",
            "turn": t, "tstamp": 0,
        }
        for (q, t), (g1, g2) in WINNERS.items()
    ]  # fmt: skip
    pair.write_text("".join(json.dumps(r) + "\n" for r in records))
    with Store() as store:
        store.evaluations.remember(str(pair), "pairwise-all", "gpt-4")
        store.evaluations.remember(str(single), "single", "gpt-4", str(folder / "question.jsonl"))
    return single, pair
