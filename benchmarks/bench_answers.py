"""How many answers a minute ``vicuna-tui bench`` writes on the demo model, per backend.

    python benchmarks/bench_answers.py [--runs 3] [--max-new-tokens 128]

Each run is a fresh ``vicuna-tui bench`` process over benchmarks/bench_questions.jsonl
(10 questions, 2 of them two-turn: 12 replies, FastChat's temperatures, a fixed seed),
timed from spawn to exit.  The same command with only the first question gives the
load and one answer; the rate without the load is (10 - 1) answers over the difference.
The backends take turns run by run, so the ratio is measured side by side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, fmt, smollm_folder, smollm_gguf, stats, table, write_section

QUESTIONS = ROOT / "benchmarks" / "bench_questions.jsonl"


def run_bench(model: str, questions: Path, max_new_tokens: int, env: dict[str, str]) -> float:
    output = Path(tempfile.mkdtemp(prefix="bench-answers-")) / "answers.jsonl"
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable, "-m", "vicuna_tui", "bench", str(questions), "--model-id", "smol",
            "-o", str(output), "--model-path", model, "--max-new-tokens", str(max_new_tokens),
            "--seed", "1", "--no-save",
        ],
        check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    assert len(output.read_text().splitlines()) == len(questions.read_text().splitlines())
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    opts = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VICUNA_TUI_HOME": tempfile.mkdtemp()}
    first = Path(tempfile.mkdtemp()) / "question.jsonl"
    first.write_text(QUESTIONS.read_text().splitlines()[0] + "\n")
    count = len(QUESTIONS.read_text().splitlines())
    backends = {"llama.cpp (GGUF)": str(smollm_gguf()), "transformers": str(smollm_folder())}
    whole: dict[str, list[float]] = {name: [] for name in backends}
    one: dict[str, list[float]] = {name: [] for name in backends}
    for model in backends.values():  # a warm-up each: page cache, compiled kernels
        run_bench(model, first, opts.max_new_tokens, env)
    for _ in range(opts.runs):
        for name, model in backends.items():
            whole[name].append(run_bench(model, QUESTIONS, opts.max_new_tokens, env))
            one[name].append(run_bench(model, first, opts.max_new_tokens, env))
    rows = []
    rates = {}
    for name in backends:
        per_minute = [count * 60 / t for t in whole[name]]
        steady = [(count - 1) * 60 / (w - o) for w, o in zip(whole[name], one[name], strict=True)]
        rates[name] = stats(steady)[0]
        rows.append(
            [
                name,
                fmt(whole[name], 1, " s"),
                fmt(per_minute, 1),
                fmt(one[name], 1, " s"),
                fmt(steady, 1),
            ]
        )
    ratio = rates["llama.cpp (GGUF)"] / rates["transformers"]
    body = (
        f"{count} questions (12 replies, up to {opts.max_new_tokens} new tokens each; FastChat's "
        "temperatures, seed 1), one fresh `vicuna-tui bench` process per run, the backends "
        f"taking turns; {opts.runs} runs after a warm-up.\n\n"
        + table(
            [
                "backend",
                f"{count} questions, whole process",
                "answers / min (with the load)",
                "1 question (load + 1 answer)",
                "answers / min (without the load)",
            ],
            rows,
        )
        + f"\n\nWithout the load, llama.cpp answers {ratio:.2f}× as many questions a minute as "
        "the transformers path."
    )
    write_section("bench-answers", "`vicuna-tui bench`: answers per minute", body)


if __name__ == "__main__":
    main()
