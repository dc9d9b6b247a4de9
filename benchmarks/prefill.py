"""What reading a long prompt in chunks costs: time to first token, whole against chunked.

    python benchmarks/prefill.py [--runs 3] [--notes 120]

One long first message (about 2,000 tokens of SmolLM2's tokenizer), greedy, one new
token, the KV cache cleared before each run, so the whole prompt is read every time:

* the transformers engine (SmolLM2-135M-Instruct, float32, this CPU): the prompt in one
  forward, and in chunks of 512 (the default) and 256 tokens;
* the llama.cpp engine (the Q4_1 GGUF): in one request, and in its default chunks.

A chunk is what a cancel waits for at most, and after each one the TUI says how far
the reading got.  The settings take turns within each run; medians (min–max) of --runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from typing import Any

from _common import fmt, smollm_folder, smollm_gguf, table, write_section


def first_token(backend: Any, text: str, chunk: int) -> tuple[float, int]:
    """Seconds to the first token, and the prompt's tokens, reading ``chunk`` at a time."""
    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings

    backend.prefill_chunk = chunk
    backend.reset_cache()
    request = ChatRequest(
        turns=(("user", text),), generation=GenerationSettings(temperature=0.0, max_new_tokens=1)
    )
    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone)
    return done.stats.time_to_first_token or 0.0, done.stats.prompt_tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--notes", type=int, default=120)
    opts = parser.parse_args()
    os.environ["VICUNA_TUI_HOME"] = tempfile.mkdtemp(prefix="prefill-bench-")
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.transformers.backend import PREFILL_CHUNK, LocalBackend

    text = " ".join(f"note {i}: the llama number {i} eats grass." for i in range(opts.notes))
    text += "\nWhat do the llamas eat?"
    whole = 10**6
    hf = LocalBackend(LoadSettings(model_path=str(smollm_folder()), device="cpu"))
    hf.load()
    llama = LlamaCppBackend(LoadSettings(model_path=str(smollm_gguf()), device="cpu"))
    llama.load()
    llama_chunk = llama.prefill_chunk
    cases: dict[str, tuple[Any, int]] = {
        "transformers, one forward": (hf, whole),
        f"transformers, {PREFILL_CHUNK}-token chunks (default)": (hf, PREFILL_CHUNK),
        "transformers, 256-token chunks": (hf, 256),
        "llama.cpp, one request": (llama, whole),
        f"llama.cpp, {llama_chunk}-token chunks (default)": (llama, llama_chunk),
    }
    for backend, chunk in cases.values():
        first_token(backend, text, chunk)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in cases}
    tokens = 0
    for _ in range(opts.runs):
        for name, (backend, chunk) in cases.items():
            seconds, tokens = first_token(backend, text, chunk)
            times[name].append(seconds)
            print(name, f"{seconds:.2f} s", flush=True)
    hf.unload()
    llama.unload()
    rows = []
    for name, values in times.items():
        base = times[
            "transformers, one forward"
            if name.startswith("transformers")
            else "llama.cpp, one request"
        ]
        ratio = sorted(values)[len(values) // 2] / sorted(base)[len(base) // 2]
        rows.append([name, fmt(values, 2, " s"), f"{ratio:.2f}"])
    body = (
        f"SmolLM2-135M-Instruct on this CPU: a first message of {tokens:,} prompt tokens, "
        "the cache cleared before each run, time to the first token. The ratio is to the "
        "same engine reading the prompt at once. Settings take turns within each run; "
        f"medians (min–max) of {opts.runs}.\n\n"
        + table(["engine, prompt read", "time to first token", "÷ at once"], rows)
    )
    write_section("prefill", "Reading a long prompt in chunks", body)


if __name__ == "__main__":
    main()
