"""Switching among long chats in the TUI's model process: its memory with the prompt
cache's bound on and off, and how much of each chat comes back from the cache.

    python benchmarks/chat_switching.py [--model 500m] [--chats 10] [--rounds 3]

The model runs as the TUI runs it: in its own process (engine/process.py), with the
front end in this one.  ``--chats`` chats of about 600 tokens each are visited in turn,
``--rounds`` times, each visit adding a question and an 8-token reply, as a user going
from chat to chat does.  After each round the model process's anonymous memory is read
from /proc; 'from cache' is the share of a chat's prompt that did not have to be read
again when the user came back to it (rounds after the first).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from _common import run_cell, table, write_section

CELL = r"""
import json, sys, threading
from vicuna_tui.engine.process import ProcessBackend
from vicuna_tui.engine.events import ChatRequest, ReplyDone
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings

path, bound, chats, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mib = None if bound == "auto" else int(bound)
backend = ProcessBackend(LoadSettings(model_path=path, device="cpu", context=4096,
                                      prompt_cache_mib=mib))
info = backend.load()

def anon():
    for line in open(f"/proc/{backend.pid}/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

histories = [[("user", f"Chat {c}: " + f"tell me about the place number {c} and its story. " * 50)]
             for c in range(chats)]
after, cached, first, held = [], [], [], 0
for r in range(rounds):
    for c, turns in enumerate(histories):
        if r:
            turns.append(("user", f"And what happened next, in round {r}?"))
        request = ChatRequest(turns=tuple(turns),
                              generation=GenerationSettings(temperature=0, max_new_tokens=8))
        for event in backend.generate(request, threading.Event()):
            if isinstance(event, ReplyDone):
                turns.append(("assistant", event.text))
                held = event.stats.prompt_cache_bytes or 0
                if r:
                    cached.append(event.stats.cached_tokens / event.stats.prompt_tokens)
                    first.append(event.stats.time_to_first_token)
    after.append(anon())
backend.unload()
print(json.dumps({"bound": info.prompt_cache_mib, "after": after, "cached": cached,
                  "first": first, "held": held}))
"""


def mb(count: float) -> str:
    return f"{count / 2**20:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="500m")
    parser.add_argument("--chats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from random_gguf import make

    path = str(make(args.model))
    rows: list[list[Any]] = []
    for bound in ("64", "256", "auto", "8192"):
        got = run_cell(CELL, path, bound, str(args.chats), str(args.rounds), timeout=3600)
        label = {"auto": "default", "8192": "8192 (llama.cpp's own)"}.get(bound, bound)
        after = got["after"]
        rows.append(
            [
                f"{label}: {got['bound']} MiB",
                *(mb(value) for value in after),
                mb(after[-1] - after[0]),
                mb(got["held"]),
                f"{statistics.median(got['cached']):.0%}" if got["cached"] else "–",
                f"{statistics.median(got['first']):.2f} s" if got["first"] else "–",
            ]
        )
        print(rows[-1], file=sys.stderr)
    rounds = [f"anon after round {r + 1}" for r in range(args.rounds)]
    body = (
        f"{args.chats} chats of about 600 tokens each (random-weight {args.model} Q4_0, no "
        "GQA: 96 KiB of f16 KV a token, so each chat's state is about 60 MiB), visited in "
        f"turn {args.rounds} times through the TUI's model process, context 4096, each "
        "visit a new question and an 8-token reply. Anonymous memory of the model "
        "process after each round; 'growth' is from the first round to the last; "
        "'held' is what the status bar shows at the end; 'from cache' is the median "
        "share of a chat's prompt answered from llama.cpp's prompt cache on coming "
        "back to it.\n\n" + table(["bound", *rounds, "growth", "held", "from cache"], rows)
    )
    write_section("chat-switching", "Switching among long chats: memory and the cache", body)


if __name__ == "__main__":
    main()
