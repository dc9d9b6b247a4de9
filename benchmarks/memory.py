"""Peak memory at load and while generating, for each precision on this CPU.

    python benchmarks/memory.py [--runs 5]

SmolLM2-135M-Instruct from its safetensors folder, in a fresh process per run; the
process's anonymous and file-backed RSS are sampled every 5 ms.  "final" is the RSS once
the model is loaded; the target is a load peak of at most 1.3 × final.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from _common import ROOT, fmt, smollm_folder, table, write_section

CHILD = r"""
import json, os, sys, threading, time
PEAK = {"RssAnon": 0, "RssFile": 0}
def rss():
    values = {}
    for line in open("/proc/self/status"):
        key = line.split(":")[0]
        if key in PEAK:
            values[key] = int(line.split()[1]) * 1024
    return values
def sample():
    while True:
        for key, value in rss().items():
            PEAK[key] = max(PEAK[key], value)
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
sys.path.insert(0, os.environ["VICUNA_ROOT"])
from vicuna_tui.engine.local import LocalBackend
from vicuna_tui.engine.settings import LoadSettings, GenerationSettings
from vicuna_tui.engine.events import ChatRequest
import torch
baseline = rss()
backend = LocalBackend(LoadSettings(**json.loads(sys.argv[1])))
backend.load()
time.sleep(0.1)
final = rss()
load_peak = dict(PEAK)
request = ChatRequest(turns=(("user", "Tell me a story."),),
                      generation=GenerationSettings(temperature=0.0, max_new_tokens=64))
list(backend.generate(request, threading.Event()))
time.sleep(0.05)
print("RESULT" + json.dumps({"baseline": baseline, "final": final, "load_peak": load_peak,
                             "gen_peak": dict(PEAK)}))
"""


def run(settings: dict[str, object]) -> dict[str, dict[str, int]]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(settings)],
        capture_output=True,
        text=True,
        env={**os.environ, "VICUNA_ROOT": str(ROOT)},
        timeout=600,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])  # type: ignore[no-any-return]
    raise SystemExit(out.stderr[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    folder = str(smollm_folder())
    rows = []
    for name, extra in (
        ("float32", {}),
        ("bfloat16", {"dtype": "bfloat16"}),
        ("8-bit", {"load_8bit": True}),
        ("4-bit", {"load_4bit": True}),
    ):
        settings = {"model_path": folder, "device": "cpu", **extra}
        run(settings)  # warm the page cache
        results = [run(settings) for _ in range(opts.runs)]

        def total(part: dict[str, int]) -> float:
            return (part["RssAnon"] + part["RssFile"]) / 2**20

        finals = [total(r["final"]) - total(r["baseline"]) for r in results]
        peaks = [total(r["load_peak"]) - total(r["baseline"]) for r in results]
        gens = [total(r["gen_peak"]) - total(r["baseline"]) for r in results]
        ratios = [p / f for p, f in zip(peaks, finals, strict=True)]
        anon = [(r["final"]["RssAnon"] - r["baseline"]["RssAnon"]) / 2**20 for r in results]
        rows.append(
            [
                name,
                fmt(finals, 0, " MB"),
                fmt(anon, 0, " MB"),
                fmt(peaks, 0, " MB"),
                fmt(gens, 0, " MB"),
                f"{statistics.median(ratios):.2f}×",
            ]
        )
        print(rows[-1], flush=True)
    body = (
        "SmolLM2-135M-Instruct (538 MB of float32 safetensors) on this CPU, a fresh process "
        f"per run, median (min–max) of {opts.runs}. Figures are above the process's "
        "footprint before loading (Python with vicuna-tui and torch imported). RSS counts "
        "anonymous memory plus the memory-mapped weights; float32 keeps the fused and "
        "transposed copies made by the CPU fast path. Target: load peak at most 1.3 × final."
        "\n\n"
        + table(
            [
                "precision",
                "final RSS",
                "of which anonymous",
                "load peak",
                "peak while generating",
                "load peak ÷ final",
            ],
            rows,
        )
    )
    print(body)
    write_section("memory", "Memory on CPU", body)


if __name__ == "__main__":
    main()
