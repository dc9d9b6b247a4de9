"""What a branch from a token costs: the prefix comes from the KV cache.

    python benchmarks/branch_token.py [--runs 3] [--tokens 200] [--at 150]

The demo model (SmolLM2-135M-Instruct: its Q4_1 GGUF on llama.cpp, its float32
safetensors on transformers), this CPU, greedy.  Each run writes a reply of --tokens
new tokens (the end of text ignored) with --logprobs 5, then branches from its token
--at with the second likeliest alternative there, as the token view's "2" does:

- warm: right after the reply, as in the TUI (the prompt and the reply's first --at
  tokens are still in the KV cache);
- cold: the same branch with the cache emptied first (everything read again);
- regenerate: the time the original reply took to reach token --at (what a user would
  wait to get back to the same point without a branch, if sampling even led there).

Time to the first new token, medians (min–max) of --runs, and the tokens the branch
took from the cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from typing import Any

from _common import fmt, no_eos, smollm_folder, smollm_gguf, table, write_section

PROMPT = "Tell me about llamas and alpacas."


def ask(backend: Any, tokens: int, prefix: str = "", ids: tuple[int, ...] = ()) -> Any:
    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings

    request = ChatRequest(
        turns=(("user", PROMPT),),
        generation=GenerationSettings(temperature=0.0, max_new_tokens=tokens),
        logprobs=5,
        reply_prefix=prefix,
        reply_prefix_ids=ids,
    )
    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone), done
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--at", type=int, default=150)
    opts = parser.parse_args()
    os.environ["VICUNA_TUI_HOME"] = tempfile.mkdtemp(prefix="branch-bench-")
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.transformers.backend import LocalBackend

    rows = []
    engines: list[tuple[str, Any]] = [
        ("llama.cpp", LlamaCppBackend(LoadSettings(model_path=str(smollm_gguf()), device="cpu"))),
        ("transformers", LocalBackend(LoadSettings(model_path=str(smollm_folder()), device="cpu"))),
    ]
    rest = opts.tokens - opts.at - 1
    for name, backend in engines:
        backend.load()
        no_eos(backend)
        ask(backend, 8)  # warm-up
        warm: list[float] = []
        cold: list[float] = []
        back: list[float] = []
        cached: list[int] = []
        for _ in range(opts.runs):
            backend.reset_cache()
            original = ask(backend, opts.tokens)
            stats = original.stats
            back.append(stats.time_to_first_token + (opts.at - 1) / stats.tokens_per_second)
            tokens = original.tokens
            other = next(c for c in tokens[opts.at].top if c.token != tokens[opts.at].token)
            prefix = "".join(t.token for t in tokens[: opts.at]) + other.token
            # the ids the model wrote, as the TUI sends them for the model that wrote them
            ids = (*(t.id for t in tokens[: opts.at]), other.id)
            branch = ask(backend, rest, prefix, ids)
            warm.append(branch.stats.time_to_first_token)
            cached.append(branch.stats.cached_tokens)
            backend.reset_cache()
            again = ask(backend, rest, prefix, ids)
            cold.append(again.stats.time_to_first_token)
            print(name, f"warm {warm[-1]:.3f} s cold {cold[-1]:.3f} s", flush=True)
        backend.unload()
        median = sorted(warm)[opts.runs // 2]
        rows.append(
            [
                name,
                fmt(warm, 3, " s"),
                f"{min(cached)}–{max(cached)}",
                fmt(cold, 3, " s"),
                fmt(back, 2, " s"),
                f"{sorted(cold)[opts.runs // 2] / median:.1f}×",
            ]
        )
    body = (
        f"SmolLM2-135M-Instruct on this CPU, greedy. A reply of {opts.tokens} tokens, then "
        f"a branch from its token {opts.at + 1} with the second likeliest alternative "
        "(the token view's 2); time to the branch's first new token. *warm*: right after "
        "the reply, as in the TUI; *cold*: the cache emptied first; *regenerate*: the time "
        f"the reply itself took to reach token {opts.at + 1}. Medians (min–max) of "
        f"{opts.runs}.\n\n"
        + table(
            [
                "engine",
                "branch, warm",
                "tokens from the cache",
                "branch, cold",
                "regenerate to there",
                "cold ÷ warm",
            ],
            rows,
        )
    )
    write_section("branch-token", "A branch from a token", body)


if __name__ == "__main__":
    main()
