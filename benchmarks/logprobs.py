"""What recording each token's log-probability and its top-5 alternatives costs.

    python benchmarks/logprobs.py [--runs 5] [--tokens 160]

The demo model (SmolLM2-135M-Instruct: its Q4_1 GGUF on llama.cpp, its float32
safetensors on transformers), this CPU, greedy, --tokens new tokens (the end of text
ignored); with --logprobs 5 and without, taking turns within each run; decode tok/s,
medians (min–max) of --runs.  The target is ≥ 0.95 of the rate without.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from typing import Any

from _common import fmt, no_eos, smollm_folder, smollm_gguf, table, write_section

PROMPT = "Tell me about llamas and alpacas."


def rate(backend: Any, alternatives: int, tokens: int) -> float:
    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings

    request = ChatRequest(
        turns=(("user", PROMPT),),
        generation=GenerationSettings(temperature=0.0, max_new_tokens=tokens),
        logprobs=alternatives,
    )
    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone)
    assert (done.tokens is not None) == bool(alternatives)
    return done.stats.tokens_per_second or 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=160)
    opts = parser.parse_args()
    os.environ["VICUNA_TUI_HOME"] = tempfile.mkdtemp(prefix="logprobs-bench-")
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.transformers.backend import LocalBackend

    rows = []
    engines: list[tuple[str, Any]] = [
        ("llama.cpp", LlamaCppBackend(LoadSettings(model_path=str(smollm_gguf()), device="cpu"))),
        ("transformers", LocalBackend(LoadSettings(model_path=str(smollm_folder()), device="cpu"))),
    ]
    for name, backend in engines:
        backend.load()
        no_eos(backend)
        rate(backend, 0, 16)  # warm-up
        rates: dict[int, list[float]] = {0: [], 5: []}
        for _ in range(opts.runs):
            for alternatives in rates:
                rates[alternatives].append(rate(backend, alternatives, opts.tokens))
                print(name, alternatives, f"{rates[alternatives][-1]:.1f} tok/s", flush=True)
        backend.unload()
        off = sorted(rates[0])[opts.runs // 2]
        on = sorted(rates[5])[opts.runs // 2]
        rows.append(
            [name, fmt(rates[0], 1, " tok/s"), fmt(rates[5], 1, " tok/s"), f"{on / off:.3f}"]
        )
    body = (
        f"SmolLM2-135M-Instruct on this CPU, greedy, {opts.tokens} new tokens (the end of "
        "text ignored); decode rate without log-probabilities and with `--logprobs 5` (each "
        "token's and its five likeliest alternatives'), taking turns within each run; "
        f"medians (min–max) of {opts.runs}. Target: ≥ 0.95.\n\n"
        + table(["engine", "without", "--logprobs 5", "÷ without"], rows)
    )
    write_section("logprobs", "The cost of token log-probabilities", body)


if __name__ == "__main__":
    main()
