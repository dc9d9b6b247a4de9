"""Memory at scale on llama.cpp: the prompt cache's bound over many questions, and a
q8_0 KV cache against f16.

    python benchmarks/kv_memory.py [--questions 30] [--model 500m]

Each row runs in a fresh process.  "Prompt cache" rows ask ``--questions`` distinct
questions of about 300 tokens through one backend (as `bench` does) and report the
process's resident memory, anonymous and file-backed, after the first question and
after the last, with the cache bound at its default, at a small bound, and at
llama.cpp's own 8 GiB.  "KV type" rows compare f16 and q8_0: peak anonymous memory,
decode tok/s (128 tokens), prefill tok/s (a prompt of about 2,300 tokens, cold), and whether the
greedy reply is the same as f16's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from _common import run_cell, smollm_gguf, table, write_section

CELL = r"""
import json, sys, threading
from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
from vicuna_tui.engine.events import ChatRequest, ReplyDone
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings

def memory():
    fields = {}
    for line in open("/proc/self/status"):
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields

mode, path, arg, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "cache":
    mib = None if arg == "auto" else int(arg)
    settings = LoadSettings(model_path=path, device="cpu", prompt_cache_mib=mib)
else:
    settings = LoadSettings(model_path=path, device="cpu", kv_type=arg, prompt_cache_mib=0)
backend = LlamaCppBackend(settings)
info = backend.load()

def ask(text, tokens):
    request = ChatRequest(turns=(("user", text),),
                          generation=GenerationSettings(temperature=0, max_new_tokens=tokens))
    for event in backend.generate(request, threading.Event()):
        if isinstance(event, ReplyDone):
            return event

out = {"bound": info.prompt_cache_mib}
if mode == "cache":
    for i in range(count):
        done = ask(f"Question {i}: " + f"say something about the number {i} and why. " * 30, 4)
        if i == 0:
            out["first"] = memory()
    out["last"] = memory()
    out["held"] = done.stats.prompt_cache_bytes
else:
    long = "Summarise this: " + " ".join(f"item{i}" for i in range(600))
    done = ask(long, 1)
    out["prefill"] = done.stats.prompt_tokens / done.stats.time_to_first_token
    out["prompt_tokens"] = done.stats.prompt_tokens
    backend.reset_cache()
    backend.ignore_eos = True
    rates = []
    for _ in range(3):
        backend.reset_cache()
        done = ask("Tell me a long story about the sea.", 128)
        rates.append(done.stats.tokens_per_second)
    out["decode"] = sorted(rates)[1]
    backend.ignore_eos = False
    backend.reset_cache()
    out["text"] = ask("What is the capital of France?", 32).text
    out["peak"] = memory()
print(json.dumps(out))
"""


def cell(mode: str, path: str, arg: str, count: int) -> Any:
    return run_cell(CELL, mode, path, arg, str(count))


def mb(count: float) -> str:
    return f"{count / 2**20:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--model", default="500m")
    args = parser.parse_args()
    from random_gguf import make

    big = str(make(args.model))
    cache_rows = []
    for arg in ("auto", "64", "8192", "0"):
        got = cell("cache", big, arg, args.questions)
        first, last = got["first"], got["last"]
        label = {"auto": "default", "8192": "8192 (llama.cpp's own)", "0": "0 (off)"}.get(arg, arg)
        cache_rows.append(
            [
                f"{label}: {got['bound']} MiB",
                mb(first["RssAnon"]),
                mb(last["RssAnon"]),
                mb(last["RssAnon"] - first["RssAnon"]),
                mb(got["held"] or 0),
                mb(last["RssFile"]),
            ]
        )
        print(cache_rows[-1], file=sys.stderr)
    kv_rows = []
    for name, path in (("demo", str(smollm_gguf())), (args.model, big)):
        base = None
        for kv in ("f16", "q8_0"):
            got = cell("kv", path, kv, 0)
            base = base or got
            kv_rows.append(
                [
                    name,
                    kv,
                    mb(got["peak"]["RssAnon"]),
                    mb(got["peak"]["VmHWM"]),
                    f"{got['decode']:.1f}",
                    f"{got['prefill']:.0f} ({got['prompt_tokens']} tokens)",
                    "yes" if got["text"] == base["text"] else f"no: {got['text'][:40]!r}",
                ]
            )
            print(kv_rows[-1], file=sys.stderr)
    body = (
        f"**The prompt cache's bound.** {args.questions} distinct questions of about 300 "
        f"tokens through one llama.cpp backend (random-weight {args.model} Q4_0, no GQA: "
        "96 KiB of f16 KV a token, so each question sets aside about 29 MiB), context "
        "4096. Anonymous memory (RssAnon) of the process after the first question and "
        "after the last; 'held' is what the status bar would show; RssFile is the "
        "mapped model file, which the kernel can drop and read back.\n\n"
        + table(
            ["bound", "anon after 1", f"anon after {args.questions}", "growth", "held", "file"],
            cache_rows,
        )
        + "\n\n**q8_0 KV against f16**, prompt cache off, context 4096, each in a fresh "
        "process: peak anonymous memory and peak RSS (VmHWM), decode tok/s (128 tokens, "
        "median of 3), prefill tok/s from a cold cache, and whether the greedy reply to "
        "'What is the capital of France?' (32 tokens) is f16's.\n\n"
        + table(
            ["model", "KV", "anon", "peak RSS", "decode tok/s", "prefill tok/s", "same reply"],
            kv_rows,
        )
    )
    write_section("kv-memory", "Memory at scale: the prompt cache's bound and q8_0 KV", body)


if __name__ == "__main__":
    main()
