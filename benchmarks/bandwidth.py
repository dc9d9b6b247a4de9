"""Decode speed as a share of this machine's memory bandwidth, and whether llama.cpp's
CPU repack of the weights pays here.

    python benchmarks/bandwidth.py [--models 1b,7b] [--runs 3]

Decoding one token reads every weight once (the token embedding only one row), so
tok/s × those bytes is the memory traffic a decode needs; the machine's read bandwidth
(the sum of a 512 MiB tensor on every core, torch) is its ceiling.  Each cell is a fresh
process: llama.cpp called directly on every core with its default CPU repack (the Q4_0
weights copied into an interleaved layout) and with ``no_extra_bufts`` (the weights used
where they are mapped), and our backend with its own defaults.  The figure is llama.cpp's
own decode rate, median of the runs after a warm-up; memory is the process's anonymous
RSS at the end.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from _common import read_bandwidth, run_cell, table, write_section

CELL = r"""
import json, statistics, sys, threading
kind, path = sys.argv[1], sys.argv[2]
tokens, runs, cores = (int(value) for value in sys.argv[3:6])
rates = []
if kind in ("repack", "mapped"):
    import xllamacpp
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = 1024
    params.cpuparams.n_threads = cores
    params.cpuparams_batch.n_threads = cores
    params.no_extra_bufts = kind == "mapped"
    params.verbosity = -1
    params.warmup = False
    server = xllamacpp.Server(params)
    for i in range(runs + 1):
        result = server.handle_completions({"prompt": [1, 2, 3, 4, 5, 6, 7, 8],
            "max_tokens": tokens, "temperature": 0, "top_k": 1, "ignore_eos": True,
            "cache_prompt": False})
        if i:
            rates.append(result["timings"]["predicted_per_second"])
else:
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
    backend = LlamaCppBackend(LoadSettings(model_path=path, device="cpu", context=1024))
    backend.load()
    backend.ignore_eos = True
    request = ChatRequest(turns=(("user", "Tell me a long story about the sea."),),
                          generation=GenerationSettings(temperature=0, max_new_tokens=tokens))
    for i in range(runs + 1):
        backend.reset_cache()
        for event in backend.generate(request, threading.Event()):
            if isinstance(event, ReplyDone) and i:
                rates.append(event.stats.tokens_per_second)
anon = 0
for line in open("/proc/self/status"):
    if line.startswith("RssAnon:"):
        anon = int(line.split()[1]) * 1024
print(json.dumps({"rate": statistics.median(rates), "anon": anon}))
"""


def bytes_per_token(path: str) -> int:
    """The bytes one decode step reads: every tensor but the token embedding, which is
    read one row at a time (unless it is also the output layer)."""
    from gguf import GGUFReader

    tensors = {t.name: int(t.n_bytes) for t in GGUFReader(path).tensors}
    tied = "output.weight" not in tensors
    return sum(size for name, size in tensors.items() if tied or name != "token_embd.weight")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="1b,7b")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from random_gguf import make

    from vicuna_tui.engine.threads import cpu_cores

    cores = cpu_cores()
    bandwidth = read_bandwidth()
    print(f"read bandwidth {bandwidth / 1e9:.1f} GB/s", file=sys.stderr)
    rows: list[list[Any]] = []
    verdicts: list[str] = []
    for name in args.models.split(","):
        path = str(make(name))
        traffic = bytes_per_token(path)
        tokens = 32 if name != "7b" else 16
        cells = {
            kind: run_cell(CELL, kind, path, str(tokens), str(args.runs), str(cores), timeout=1800)
            for kind in ("repack", "mapped", "ours")
        }
        for kind, label in (
            ("repack", "llama.cpp directly, CPU repack (its default)"),
            ("mapped", "llama.cpp directly, no_extra_bufts (no repack)"),
            ("ours", "vicuna-tui backend (its defaults)"),
        ):
            rate = cells[kind]["rate"]
            rows.append(
                [
                    f"{name} ({traffic / 2**30:.2f} GiB a token)",
                    label,
                    f"{rate:.1f}",
                    f"{rate * traffic / 1e9:.1f} GB/s",
                    f"{rate * traffic / bandwidth:.0%}",
                    f"{cells[kind]['anon'] / 2**30:.2f} GiB",
                ]
            )
            print(rows[-1], file=sys.stderr)
        repack, mapped = cells["repack"], cells["mapped"]
        verdicts.append(
            f"{name}: the repack decodes {repack['rate'] / mapped['rate']:.2f}× as fast for "
            f"{(repack['anon'] - mapped['anon']) / 2**30:.2f} GiB more anonymous memory"
        )
    body = (
        f"Read bandwidth of this machine: {bandwidth / 1e9:.1f} GB/s (the sum of a 512 MiB "
        f"float32 tensor with torch on {cores} cores, median of 10). Decode tok/s of "
        f"random-weight Llama shapes (benchmarks/random_gguf.py, Q4_0), 32 tokens (16 at "
        f"7B) forced to full length, median of {args.runs} after a warm-up, every core, "
        "each cell a fresh process. 'Traffic' is tok/s × the bytes a token reads (every "
        "weight but the token embedding); 'share' is that over the read bandwidth. "
        "'Anon' is the process's anonymous memory at the end: the repacked copy of the "
        "weights lives there, the mapped file does not.\n\n"
        + table(["model", "who decodes", "tok/s", "traffic", "share", "anon"], rows)
        + "\n\nWhether the repack pays here: "
        + "; ".join(verdicts)
        + ". vicuna-tui keeps llama.cpp's default (the repack)."
    )
    write_section("bandwidth", "Decode against memory bandwidth, and llama.cpp's repack", body)


if __name__ == "__main__":
    main()
