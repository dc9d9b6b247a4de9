"""Time to first token after switching branches, against a normal next turn.

    python benchmarks/branches.py [--runs 5] [--turns 10] [--tokens 48]

A greedy chat of --turns turns on the demo model, per backend.  Then, taking turns:

* normal: one more turn on the branch shown;
* after a switch at the last turn: the last reply regenerated (a second branch),
  the first branch shown again, one more turn on it;
* after a switch at turn 2: the second question sent again (a sibling), the first
  branch shown again (most of the chat is new to the cache), one more turn on it;
* cache cleared: one more turn with nothing cached (what a full prefill costs).

Each is a turn sent through ChatSession (the branch logic the front ends use) to the
backend; time to first token and the prompt tokens found cached come from its stats.
On a CPU both backends keep two KV caches (the branch shown and the one left last), so
a switch back finds the branch cached.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from typing import Any

from _common import fmt, smollm_folder, smollm_gguf, table, write_section

PROMPTS = [f"Tell me one short fact about the number {n}." for n in range(1, 60)]


def turn(backend: Any, session: Any, request: Any) -> Any:
    from vicuna_tui.engine.events import ReplyDone

    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone)
    session.record_reply(done.text, done.finish_reason, done.stats)
    return done.stats


def chat(backend: Any, turns: int, tokens: int) -> Any:
    from vicuna_tui.engine.settings import GenerationSettings
    from vicuna_tui.session import ChatSession

    session = ChatSession(
        None, generation=GenerationSettings(temperature=0.0, max_new_tokens=tokens)
    )
    session.set_model(backend.info)
    for prompt in PROMPTS[:turns]:
        turn(backend, session, session.add_user(prompt))
    return session


def measure(backend: Any, turns: int, tokens: int, case: str, extra: int) -> Any:
    session = chat(backend, turns, tokens)
    if case == "last":  # the last reply again (a sibling), then the first one back
        index = len(session.messages) - 1
        turn(backend, session, session.regenerate())
        assert session.switch_branch(index, -1)
    elif case == "second":  # the second question sent again, then the first branch back
        index = 2
        turn(backend, session, session.edit_at(index, session.messages[index].content))
        assert session.switch_branch(index, -1)
        assert len(session.messages) == 2 * turns
    elif case == "cold":
        backend.reset_cache()
    return turn(backend, session, session.add_user(PROMPTS[turns + extra]))


RSS_CHILD = """
import sys, threading
from vicuna_tui.engine.llamacpp import fit as gguf_fit
from vicuna_tui.engine.llamacpp import backend as llamacpp
from vicuna_tui.engine.events import ChatRequest
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
slots = int(sys.argv[2])
llamacpp.branch_slots = lambda *a: slots
backend = llamacpp.LlamaCppBackend(LoadSettings(model_path=sys.argv[1], device="cpu"))
backend.load()
gen = GenerationSettings(temperature=0.0, max_new_tokens=256)
request = ChatRequest(turns=(("user", "Tell me a story."),), generation=gen)
list(backend.generate(request, threading.Event()))
print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
"""


def peak_rss_mib(slots: int) -> float:
    """A process's peak RSS when llama.cpp keeps ``slots`` KV caches."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(smollm_gguf()), str(slots)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=48)
    opts = parser.parse_args()
    os.environ["VICUNA_TUI_HOME"] = tempfile.mkdtemp(prefix="branch-bench-")
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.transformers.backend import LocalBackend

    backends = {
        "llama.cpp": LlamaCppBackend(LoadSettings(model_path=str(smollm_gguf()), device="cpu")),
        "transformers": LocalBackend(LoadSettings(model_path=str(smollm_folder()), device="cpu")),
    }
    cases = {
        "normal next turn": "normal",
        "after a switch at the last turn": "last",
        "after a switch at turn 2": "second",
        "cache cleared (full prefill)": "cold",
    }
    rows = []
    for name, backend in backends.items():
        backend.load()
        measure(backend, opts.turns, opts.tokens, "normal", 0)  # warm-up
        ttft: dict[str, list[float]] = {c: [] for c in cases}
        cached: dict[str, list[str]] = {c: [] for c in cases}
        for run in range(opts.runs):
            for label, case in cases.items():
                stats = measure(backend, opts.turns, opts.tokens, case, run)
                ttft[label].append(stats.time_to_first_token or 0.0)
                cached[label].append(f"{stats.cached_tokens}/{stats.prompt_tokens}")
        base = sorted(ttft["normal next turn"])[len(ttft["normal next turn"]) // 2]
        for label in cases:
            middle = sorted(ttft[label])[len(ttft[label]) // 2]
            rows.append(
                [name, label, fmt(ttft[label], 3, " s"), f"{middle / base:.2f}", cached[label][-1]]
            )
        backend.unload()
    body = (
        f"A greedy {opts.turns}-turn chat ({opts.tokens} new tokens a turn), then one more "
        f"turn in each way; {opts.runs} runs after a warm-up, the cases taking turns.\n\n"
        + table(
            ["backend", "the next turn", "time to first token", "÷ normal", "cached / prompt"],
            rows,
        )
    )
    rss = {slots: [peak_rss_mib(slots) for _ in range(2)] for slots in (1, 2)}
    body += (
        "\n\nThe second KV cache's memory (llama.cpp, a 4096-token context, peak RSS of a "
        "process that loads the demo model and writes 256 tokens, twice each):\n\n"
        + table(
            ["KV caches", "peak RSS"],
            [[str(slots), fmt(values, 0, " MiB")] for slots, values in rss.items()],
        )
    )
    write_section("branches", "Time to first token after a branch switch", body)


if __name__ == "__main__":
    main()
