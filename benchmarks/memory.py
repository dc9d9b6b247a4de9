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
from typing import Any

from _common import ROOT, fmt, smollm_folder, table, write_section

CHILD = r"""
import json, os, sys, threading, time
PEAK = {"RssAnon": 0, "RssFile": 0, "total": 0}
def rss():
    values = {}
    for line in open("/proc/self/status"):
        key = line.split(":")[0]
        if key in PEAK:
            values[key] = int(line.split()[1]) * 1024
    values["total"] = values["RssAnon"] + values["RssFile"]
    return values
def sample():
    while True:
        for key, value in rss().items():
            PEAK[key] = max(PEAK[key], value)
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
sys.path.insert(0, os.environ["VICUNA_ROOT"])
from vicuna_tui.engine.transformers.backend import LocalBackend
from vicuna_tui.engine.settings import LoadSettings, GenerationSettings
from vicuna_tui.engine.events import ChatRequest
import torch
baseline = rss()
backend = LocalBackend(LoadSettings(**json.loads(sys.argv[1])))
backend.load()
time.sleep(0.1)
final = rss()
load_peak = dict(PEAK)
PEAK.update(final)  # from here on: the peak while generating
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

        def above(key: str, part: str, results: list[Any] = results) -> list[float]:
            return [(r[part][key] - r["baseline"][key]) / 2**20 for r in results]

        finals, peaks = above("total", "final"), above("total", "load_peak")
        anon, anon_peaks = above("RssAnon", "final"), above("RssAnon", "load_peak")
        ratios = [p / f for p, f in zip(peaks, finals, strict=True)]
        anon_ratios = [p / f for p, f in zip(anon_peaks, anon, strict=True)]
        rows.append(
            [
                name,
                fmt(finals, 0, " MB"),
                fmt(peaks, 0, " MB"),
                f"{statistics.median(ratios):.2f}×",
                fmt(anon, 0, " MB"),
                fmt(anon_peaks, 0, " MB"),
                f"{statistics.median(anon_ratios):.2f}×",
                fmt(above("total", "gen_peak"), 0, " MB"),
            ]
        )
        print(rows[-1], flush=True)
    body = (
        "SmolLM2-135M-Instruct (538 MB of float32 safetensors) on this CPU, a fresh process "
        f"per run, median (min–max) of {opts.runs}. Figures are above the process's "
        "footprint before loading (Python with vicuna-tui and torch imported), sampled "
        "every 5 ms. RSS is anonymous memory plus the pages of the memory-mapped "
        "safetensors file that were read: clean page cache, which the kernel can drop, "
        "but which RSS counts while the file stays mapped. In float32 the file stays "
        "mapped (the weights that are used as stored are views into it) and the CPU fast "
        "path adds its fused and transposed copies as anonymous memory; a bfloat16 load "
        "converts every tensor, so it reads the float32 file with pread instead of mapping "
        "it (engine/transformers/loader.py; mapped, its pages peaked at 2.2 × final). Target: load "
        "peak at most 1.3 × final.\n\n"
        + table(
            [
                "precision",
                "final RSS",
                "load peak",
                "peak ÷ final",
                "final anonymous",
                "anonymous peak",
                "anon. peak ÷ final",
                "peak while generating",
            ],
            rows,
        )
    )
    print(body)
    write_section("memory", "Memory on CPU", body)


if __name__ == "__main__":
    main()
