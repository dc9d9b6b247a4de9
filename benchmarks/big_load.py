"""Loading a big GGUF: load time, time to the first token and memory of a one-shot, ours
against xllamacpp called directly with the same context and threads.

    python benchmarks/big_load.py [--models 1b,7b]

Each cell is a fresh process that loads the model (context 4096, every core), asks one
short question for 8 tokens, and reads its own /proc/self/status: peak RSS (VmHWM),
anonymous and file-backed RSS at the end.  Weights and KV are the GGUF's tensor bytes
and an f16 KV cache of 4096 tokens; "anon ÷ (weights + KV)" near 1 means nothing of
ours holds a second copy.  The page cache is warm (the file was read before).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from _common import run_cell, table, write_section

CELL = r"""
import json, sys, threading, time
kind, path = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if kind == "direct":
    import xllamacpp
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = 4096
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.verbosity = -1
    params.warmup = False
    server = xllamacpp.Server(params)
    loaded = time.perf_counter()
    ids = json.loads(sys.argv[3])  # the prompt ids our backend sent
    asked = time.perf_counter()
    chunks = []
    server.handle_completions({"prompt": ids, "max_tokens": 8, "temperature": 0,
                               "top_k": 1, "stream": True},
                              lambda chunk: chunks.append(time.perf_counter()) and False)
    first = chunks[0] - asked
else:
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
    backend = LlamaCppBackend(LoadSettings(model_path=path, device="cpu", context=4096))
    backend.load()
    loaded = time.perf_counter()
    request = ChatRequest(turns=(("user", "Hello, who are you?"),),
                          generation=GenerationSettings(temperature=0, max_new_tokens=8))
    ids = backend.prepare(request).ids
    for event in backend.generate(request, threading.Event()):
        if isinstance(event, ReplyDone):
            first = event.stats.time_to_first_token
status = {}
for line in open("/proc/self/status"):
    name, _, value = line.partition(":")
    if name in ("VmHWM", "RssAnon", "RssFile"):
        status[name] = int(value.split()[0]) * 1024
print(json.dumps({"load": loaded - start, "first": first, "ids": ids, **status}))
"""


def cell(kind: str, path: str, ids: list[int] | None = None) -> Any:
    return run_cell(CELL, kind, path, json.dumps(ids or []))


def gib(count: float) -> str:
    return f"{count / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="1b,7b")
    args = parser.parse_args()
    from random_gguf import make

    from vicuna_tui.engine import gguf_file
    from vicuna_tui.engine.llamacpp.fit import kv_cache_bytes

    rows = []
    for name in args.models.split(","):
        path = str(make(name))
        info = gguf_file.read(make(name))
        expected = info.tensor_bytes + kv_cache_bytes(info, 4096)
        path_bytes = make(name).stat().st_size
        ours = cell("ours", path)  # a warm-up: the page cache, and the prompt's ids
        for kind in ("direct", "ours"):
            got = cell(kind, path, ours["ids"])
            rows.append(
                [
                    f"{name} ({gib(path_bytes)} file)",
                    "xllamacpp directly" if kind == "direct" else "vicuna-tui backend",
                    f"{got['load']:.1f} s",
                    f"{got['first']:.2f} s",
                    gib(got["VmHWM"]),
                    gib(got["RssAnon"]),
                    gib(got["RssFile"]),
                    f"{got['RssAnon'] / expected:.2f}",
                ]
            )
            print(rows[-1], file=sys.stderr)
    body = (
        "One-shot on random-weight Llama shapes (benchmarks/random_gguf.py), context 4096, "
        "2 threads, page cache warm (a run before the rows); each row a fresh process. "
        "Load is from the start of the process's work to a model ready to answer; first "
        "token is from the request to the first streamed token, on the same prompt ids "
        "(our chat template's rendering of one short question).\n\n"
        + table(
            [
                "model",
                "who loads it",
                "load",
                "first token",
                "peak RSS",
                "anon at end",
                "file at end",
                "anon ÷ (weights + KV)",
            ],
            rows,
        )
    )
    write_section("big-load", "Loading a big GGUF: time and memory", body)


if __name__ == "__main__":
    main()
