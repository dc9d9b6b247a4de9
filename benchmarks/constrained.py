"""What output that must parse costs, and what it buys.

    python benchmarks/constrained.py [--runs 5]

1. Decode speed on llama.cpp (the demo model's Q4_1 GGUF) and on transformers (its
   float32 safetensors, held by xgrammar), greedy, this CPU, with every reply held to a
   JSON schema of five fields, against the same prompt unheld; the two take turns
   within each run; medians (min–max) of --runs.
2. The demo model as judge on the bench fixtures (3 questions, 4 turns, two models'
   answers; single and pairwise-all): verdicts that could be read, with the second
   ask held to the verdict's form (the default) and asked plainly (--no-constrain).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from _common import ROOT, fmt, smollm_folder, smollm_gguf, table, write_section

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"type": "string", "maxLength": 30},
        "email": {"type": "string", "maxLength": 40},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
    },
    "required": ["name", "age", "city", "email", "tags"],
    "additionalProperties": False,
}
PROMPT = "Write a JSON record for a fictional customer: name, age, city, email and tags."


def decode(backend: Any, constraint: Any) -> Any:
    """One greedy reply (a ReplyDone), held to ``constraint`` when one is given."""
    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings

    request = ChatRequest(
        turns=(("user", PROMPT),),
        generation=GenerationSettings(temperature=0.0, max_new_tokens=160),
        constraint=constraint,
    )
    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone)
    return done


def speed(runs: int) -> str:
    from vicuna_tui.engine.constraints import OutputConstraint, check_reply
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.transformers.backend import LocalBackend

    held = OutputConstraint("json_schema", "five fields", schema=SCHEMA)
    engines: list[tuple[str, Any]] = [
        ("llama.cpp", LlamaCppBackend(LoadSettings(model_path=str(smollm_gguf()), device="cpu"))),
        ("transformers", LocalBackend(LoadSettings(model_path=str(smollm_folder()), device="cpu"))),
    ]
    rows = []
    for engine, backend in engines:
        backend.load()
        cases = {"unheld": None, "held to the 5-field schema": held}
        for constraint in cases.values():
            decode(backend, constraint)  # warm-up
        rates: dict[str, list[float]] = {name: [] for name in cases}
        tokens: dict[str, int] = {}
        for _ in range(runs):
            for name, constraint in cases.items():
                done = decode(backend, constraint)
                rates[name].append(done.stats.tokens_per_second or 0.0)
                tokens[name] = done.stats.new_tokens
                print(engine, name, f"{rates[name][-1]:.1f} tok/s, {tokens[name]} tokens")
                if constraint is not None:  # what was timed really held to the schema
                    check_reply(constraint, done.text, done.finish_reason)
        backend.unload()
        base = sorted(rates["unheld"])[runs // 2]
        rows += [
            [
                engine,
                name,
                fmt(values, 1, " tok/s"),
                tokens[name],
                f"{sorted(values)[runs // 2] / base:.2f}",
            ]
            for name, values in rates.items()
        ]
    return table(["engine", "reply", "decode", "tokens", "÷ unheld"], rows)


def judge_counts(folder: Path, mode: str, *extra: str) -> tuple[int, int]:
    """(verdicts read, verdicts asked) for one judge run of the demo model."""
    out = folder / f"{mode}{'-'.join(extra)}.jsonl"
    subprocess.run(
        [
            sys.executable, "-m", "vicuna_tui", "judge", str(folder / "question.jsonl"),
            "--mode", mode, "--model-path", str(smollm_gguf()), "--max-new-tokens", "24",
            "-o", str(out), *extra,
        ],
        check=False, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    records = [json.loads(line) for line in out.read_text().splitlines()]
    if mode == "single":
        return sum(r["score"] != -1 for r in records), len(records)
    winners = [r[k] for r in records for k in ("g1_winner", "g2_winner")]
    return sum(w != "error" for w in winners), len(winners)


def judging() -> str:
    from test_judge import _bench_folder

    folder = _bench_folder(Path(tempfile.mkdtemp(prefix="constrained-judge-")))
    rows = []
    for mode in ("single", "pairwise-all"):
        held = judge_counts(folder, mode)
        plain = judge_counts(folder, mode, "--no-constrain")
        rows.append([mode, f"{held[0]} of {held[1]}", f"{plain[0]} of {plain[1]}"])
    shutil.rmtree(folder.parent, ignore_errors=True)
    return table(["mode", "held (default)", "--no-constrain"], rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    os.environ["VICUNA_TUI_HOME"] = tempfile.mkdtemp(prefix="constrained-bench-")
    body = (
        "**Decode speed held to a JSON schema** (SmolLM2-135M-Instruct: Q4_1 on llama.cpp, "
        "float32 on transformers held by xgrammar; this CPU, greedy, at most 160 new "
        "tokens; a schema of five fields: three bounded "
        "strings (name, city, email), an integer in a range, an array of up to three tags). "
        "The held and unheld replies take turns within each run; medians (min–max) of "
        f"{opts.runs}.\n\n"
        + speed(opts.runs)
        + "\n\n**Readable verdicts, the demo model as judge** (the bench fixtures: 3 "
        "questions, 4 turns, two models' answers; `--max-new-tokens 24`, greedy). Held: "
        "when no verdict can be read from a judgment, the second ask is held by a grammar "
        "to the verdict's form.\n\n" + judging()
    )
    write_section("constrained", "Output that must parse", body)


if __name__ == "__main__":
    main()
