"""Two models at once, as the arena runs them: each in its own process, decoding at the
same time, against each alone.

    python benchmarks/arena.py [--runs 3] [--tokens 128]

The demo model on llama.cpp and on transformers (the arena's test pair).  Each side is
a worker process that loads its model, then generates --tokens tokens (greedy, EOS
ignored) whenever it is told to go.  Taking turns, run by run:

* each alone, with the arena's thread share (the cores split between the two);
* both at once with that share (what `vicuna-tui arena` does);
* both at once with every core each (what each would take alone).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from _common import fmt, smollm_folder, smollm_gguf, table, write_section

HERE = Path(__file__).resolve().parent
PROMPT = "Write a long story about a lighthouse keeper and a storm."


def worker(engine: str, threads: int, tokens: int) -> None:
    """A side: load, say ready, then one reply per 'go' line (its stats as JSON)."""
    os.environ.setdefault("VICUNA_TUI_HOME", tempfile.mkdtemp(prefix="arena-bench-"))
    from _common import no_eos

    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings, LoadSettings

    backend: Any
    if engine == "llama.cpp":
        from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend

        backend = LlamaCppBackend(
            LoadSettings(model_path=str(smollm_gguf()), device="cpu", threads=threads),
            prefill_threads=threads,
        )
    else:
        from vicuna_tui.engine.transformers.backend import LocalBackend

        backend = LocalBackend(
            LoadSettings(model_path=str(smollm_folder()), device="cpu", threads=threads)
        )
    backend.load()
    no_eos(backend)
    gen = GenerationSettings(temperature=0.0, max_new_tokens=tokens)
    request = ChatRequest(turns=(("user", PROMPT),), generation=gen)
    list(backend.generate(request, threading.Event()))  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        done = list(backend.generate(request, threading.Event()))[-1]
        assert isinstance(done, ReplyDone)
        print(json.dumps({"tps": done.stats.tokens_per_second}), flush=True)
    backend.unload()


class Side:
    def __init__(self, engine: str, threads: int, tokens: int) -> None:
        self.engine = engine
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                engine,
                "--threads",
                str(threads),
                "--tokens",
                str(tokens),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"the {engine} worker did not start: {line!r}")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def result(self) -> float:
        assert self.process.stdout is not None
        return float(json.loads(self.process.stdout.readline())["tps"])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def round_of(sides: list[Side]) -> list[float]:
    for side in sides:
        side.go()
    return [side.result() for side in sides]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--worker")
    parser.add_argument("--threads", type=int, default=1)
    opts = parser.parse_args()
    if opts.worker:
        worker(opts.worker, opts.threads, opts.tokens)
        return
    sys.path.insert(0, str(HERE.parent))
    from vicuna_tui.arena.fit import shared_threads
    from vicuna_tui.engine.threads import cpu_cores

    cores = cpu_cores()
    share = shared_threads(2, cores) or 1
    engines = ["llama.cpp", "transformers"]
    cases = {
        f"alone, {share} thread(s)": [[e] for e in engines],
        f"both at once, {share} thread(s) each (the arena)": [engines],
        f"both at once, {cores} threads each": [engines],
    }
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(opts.runs):
        for label, groups in cases.items():
            threads = cores if label.endswith(f"{cores} threads each") else share
            for group in groups:
                sides = [Side(e, threads, opts.tokens) for e in group]
                try:
                    for side, tps in zip(sides, round_of(sides), strict=True):
                        results.setdefault((label, side.engine), []).append(tps)
                finally:
                    for side in sides:
                        side.close()
    alone = next(iter(cases))
    rows = []
    for label in cases:
        for engine in engines:
            values = results[(label, engine)]
            base = sorted(results[(alone, engine)])[len(results[(alone, engine)]) // 2]
            middle = sorted(values)[len(values) // 2]
            rows.append([label, engine, fmt(values, 1, " tok/s"), f"{middle / base:.2f}"])
    body = (
        f"{cores} cores. Each side in its own process, as in the arena; {opts.tokens} new "
        f"tokens (greedy, EOS ignored) after a warm-up; {opts.runs} runs, the cases taking "
        "turns.\n\n" + table(["case", "side", "decode speed", "÷ alone"], rows)
    )
    write_section("arena", "Two models at once (the arena)", body)


if __name__ == "__main__":
    main()
