"""Decode speed on this CPU against the memory-bandwidth limit (SmolLM2-135M, float32).

    python benchmarks/decode.py [--runs 5] [--tokens 128] [--compile]

The limit is the weights' bytes (read once per token) over the read bandwidth this
script measures with the same thread count.  Each figure is the median of --runs replies
after a warm-up, greedy, the engine's own decode rate (first to last token).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

from _common import fmt, no_eos, read_bandwidth, smollm_folder, table, write_section


def engine(folder: Any, **settings: Any) -> Any:
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.transformers.backend import LocalBackend

    backend = LocalBackend(LoadSettings(model_path=str(folder), device="cpu", **settings))
    backend.load()
    no_eos(backend)
    return backend


def reply_rate(backend: Any, tokens: int) -> float:
    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings

    backend.reset_cache()
    request = ChatRequest(
        turns=(("user", "Tell me a long story about a lighthouse."),),
        generation=GenerationSettings(temperature=0.0, max_new_tokens=tokens),
    )
    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone) and done.stats.new_tokens == tokens, done
    return float(done.stats.tokens_per_second or 0.0)


def plain_generate_rate(folder: Any, tokens: int, runs: int) -> list[float]:
    """transformers' own generate on the same weights, decode rate by a timing streamer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me a long story about a lighthouse."}],
        add_generation_prompt=True,
        return_tensors="pt",
    )
    ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids

    class Clock:
        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value: Any) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    rates = []
    for run in range(runs + 1):
        clock = Clock()
        model.generate(
            ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, streamer=clock
        )
        first, last = clock.times[1], clock.times[-1]  # times[0] is the prompt
        if run:
            rates.append((tokens - 1) / (last - first))
    del model
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (slow)")
    opts = parser.parse_args()
    import torch

    from vicuna_tui.engine.threads import default_threads

    folder = smollm_folder()
    weight_bytes = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    rows: list[list[str]] = []
    limits: dict[int, float] = {}
    for threads in sorted({default_threads(), 2}):
        torch.set_num_threads(threads)
        limits[threads] = read_bandwidth() / weight_bytes

    def add(name: str, threads: int, rates: list[float]) -> None:
        limit = limits[threads]
        rows.append(
            [name, str(threads), fmt(rates, 1, " tok/s"), f"{statistics.median(rates) / limit:.2f}"]
        )
        print(rows[-1], flush=True)

    threads = default_threads()
    torch.set_num_threads(threads)
    add(
        "transformers generate (eager)",
        threads,
        plain_generate_rate(folder, opts.tokens, opts.runs),
    )
    # The default engine, and with its decode step and growing cache turned off, reply by
    # reply in turn (one loaded model), so that the ratios are taken side by side.
    default = engine(folder, threads=threads)
    toggles = [
        (
            "engine (default: fused + transposed linears, own decode step, growing KV cache)",
            True,
            True,
        ),
        ("engine, the model's own forward per token", True, False),
        ("engine, the model's own forward and transformers' KV cache (torch.cat)", False, False),
    ]
    turns: dict[str, list[float]] = {name: [] for name, _, _ in toggles}
    for run in range(opts.runs + 1):
        for name, grow, step in toggles:
            default.grow_cache, default.fast_step = grow, step
            rate = reply_rate(default, opts.tokens)
            if run:  # the first round warms up
                turns[name].append(rate)
    default.unload()
    for name, _, _ in toggles:
        add(name, threads, turns[name])
    medians = [statistics.median(turns[name]) for name, _, _ in toggles]
    side_by_side = (
        f" Taken in turn, reply by reply: the decode step is {medians[0] / medians[1]:.3f}× "
        f"the model's own forward, the growing cache {medians[1] / medians[2]:.3f}× "
        f"transformers' cache."
    )
    variants: list[tuple[str, dict[str, Any]]] = [
        ("engine, 2 threads", {"threads": 2}),
        ("engine, bfloat16 weights", {"threads": threads, "dtype": "bfloat16"}),
    ]
    if opts.compile:
        variants.append(("engine --compile (static cache)", {"threads": threads, "compile": True}))
    notes = []
    for name, settings in variants:
        backend = engine(folder, **settings)
        start = time.perf_counter()
        reply_rate(backend, opts.tokens)  # warm-up (compiles with --compile)
        if settings.get("compile"):
            notes.append(
                f" With --compile the first reply took {time.perf_counter() - start:.0f} s "
                "(compiling)."
            )
        rates = [reply_rate(backend, opts.tokens) for _ in range(opts.runs)]
        add(name, settings["threads"], rates)
        backend.unload()
    bandwidth = ", ".join(
        f"{t} thread(s): {limits[t] * weight_bytes / 1e9:.1f} GB/s → {limits[t]:.0f} tok/s"
        for t in sorted(limits)
    )
    body = (
        f"SmolLM2-135M-Instruct, float32: {weight_bytes / 1e6:.0f} MB of weights read per "
        f"token. Read bandwidth measured here (sum of a 512 MiB tensor) and the limit it "
        f"sets: {bandwidth}. {opts.tokens} new tokens, greedy; median (min–max) of "
        f"{opts.runs} after a warm-up. The default is the first engine row: one thread "
        f"fewer than the cores, and the CPU fast path (engine/transformers/fastpath.py), "
        f"whose greedy output matches `generate` (tests/test_real_model.py). bfloat16 halves "
        f"the bytes but this CPU has no native bfloat16 arithmetic, and it changes the output."
        + side_by_side
        + "".join(notes)
        + "\n\n"
        + table(["configuration", "threads", "decode", "share of the bandwidth limit"], rows)
    )
    print(body)
    write_section("decode", "CPU decode speed", body)


if __name__ == "__main__":
    main()
