"""The llama.cpp backend against the transformers path and against xllamacpp called
directly, on the demo GGUF (SmolLM2-135M-Instruct, Q4_1), side by side in one run.

    python benchmarks/llamacpp.py [--runs 5]

Sections: decode tok/s (each backend's default threads, and llama.cpp at 1 and 2);
our backend against the library called directly (non-streamed, the same prompt ids and
settings), in this process and in the model's own process; prefill tok/s at about 1,000
tokens; time to the first token at turn 20 against turn 1; a whole `-p hi` process; peak
RSS while generating.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from _common import ROOT, fmt, no_eos, smollm_folder, smollm_gguf, table, write_section

PROMPT = "Tell me a very long story about a lighthouse keeper and the sea."
TOKENS = 128


def request(tokens: int = TOKENS, turns: Any = None, prompt: str = PROMPT) -> Any:
    from vicuna_tui.engine.events import ChatRequest
    from vicuna_tui.engine.settings import GenerationSettings

    return ChatRequest(
        turns=turns or (("user", prompt),),
        generation=GenerationSettings(temperature=0.0, max_new_tokens=tokens),
    )


def reply(backend: Any, req: Any) -> Any:
    from vicuna_tui.engine.events import ReplyDone

    done = None
    for event in backend.generate(req, threading.Event()):
        if isinstance(event, ReplyDone):
            done = event
    assert done is not None
    return done


def decode_rate(backend: Any, tokens: int = TOKENS) -> float:
    backend.reset_cache()
    done = reply(backend, request(tokens))
    assert done.stats.new_tokens >= tokens - 1, done.stats
    return float(done.stats.tokens_per_second)


def end_to_end(backend: Any, tokens: int = TOKENS) -> float:
    """New tokens over the whole reply's wall time, its prompt already cached."""
    reply(backend, request(tokens))  # the prompt into the cache
    start = time.perf_counter()
    done = reply(backend, request(tokens))
    return done.stats.new_tokens / (time.perf_counter() - start)


def direct(server: Any, ids: list[int], tokens: int = TOKENS, stream: bool = False) -> float:
    """xllamacpp's own completion call with our prompt ids and settings: not streamed,
    or streamed to a callback that does nothing."""
    body = {
        "prompt": ids,
        "max_tokens": tokens,
        "temperature": 0.0,
        "top_k": 1,
        "samplers": ["penalties", "top_k"],
        "ignore_eos": True,
        "cache_prompt": True,
        "stream": stream,
    }
    chunks: list[Any] = []

    def call() -> Any:
        chunks.clear()
        if stream:
            server.handle_completions(body, lambda chunk: chunks.append(chunk) and False)
            return chunks[-1]
        return server.handle_completions(body)

    call()
    start = time.perf_counter()
    result = call()
    return int(result["usage"]["completion_tokens"]) / (time.perf_counter() - start)


def prefill_rate(backend: Any, words: int) -> tuple[float, int]:
    """(prompt tokens per second to the first token, prompt tokens), from a cold cache."""
    backend.reset_cache()
    text = "Summarise this: " + " ".join(f"item{i}" for i in range(words))
    done = reply(backend, request(1, prompt=text))
    return done.stats.prompt_tokens / done.stats.time_to_first_token, done.stats.prompt_tokens


def prefill_cancel(backend: Any, words: int, after: float) -> float:
    """Seconds from a cancel, ``after`` seconds into a long prompt's prefill, to the
    reply's end (Esc during a long paste)."""
    from vicuna_tui.engine.events import ReplyDone

    backend.reset_cache()
    cancel = threading.Event()
    pressed: list[float] = []

    def press() -> None:
        pressed.append(time.perf_counter())
        cancel.set()

    timer = threading.Timer(after, press)
    text = "Summarise this: " + " ".join(f"item{i}" for i in range(words))
    timer.start()
    for event in backend.generate(request(64, prompt=text), cancel):
        if isinstance(event, ReplyDone):
            assert event.finish_reason == "cancelled", event.finish_reason
    stopped = time.perf_counter()
    timer.join()
    return stopped - pressed[0]


def turns_ttft(backend: Any, count: int = 20) -> tuple[float, float]:
    backend.reset_cache()
    turns: tuple[tuple[str, str], ...] = ()
    ttfts = []
    for i in range(count):
        turns += (("user", f"Give me fact number {i + 1} about the sea, in one sentence."),)
        done = reply(backend, request(32, turns=turns))
        ttfts.append(done.stats.time_to_first_token)
        turns += (("assistant", done.text),)
    return ttfts[0], ttfts[-1]


def whole_process(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "vicuna_tui", *args, "-p", "hi", "--max-new-tokens", "1"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        times.append(time.perf_counter() - start)
        assert result.returncode == 0, result.stderr
    return times


PEAK = """
import json, sys, threading
sys.path.insert(0, {root!r})
from vicuna_tui.engine.backends import local_backend
from vicuna_tui.engine.events import ChatRequest
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
backend = local_backend(LoadSettings(model_path=sys.argv[1], backend=sys.argv[2], device="cpu"))
backend.load()
req = ChatRequest(turns=(("user", {prompt!r}),),
                  generation=GenerationSettings(temperature=0.0, max_new_tokens=256))
for event in backend.generate(req, threading.Event()):
    pass
# VmHWM: this process's own peak (ru_maxrss would carry the parent's over exec)
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps(int(peak.split()[1]) * 1024))
"""


def peak_rss(path: str, backend: str) -> int:
    code = PEAK.format(root=str(ROOT), prompt=PROMPT)
    result = subprocess.run(
        [sys.executable, "-c", code, path, backend], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    os.environ["VICUNA_TUI_HOME"] = tempfile.mkdtemp(prefix="llamacpp-bench-")
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.process import ProcessBackend
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.threads import default_threads
    from vicuna_tui.engine.transformers.backend import LocalBackend

    gguf, folder = str(smollm_gguf()), str(smollm_folder())
    threads = default_threads()
    llama = LlamaCppBackend(LoadSettings(model_path=gguf, device="cpu"))
    llama.load()
    no_eos(llama)
    llama_two = LlamaCppBackend(LoadSettings(model_path=gguf, device="cpu", threads=2))
    llama_two.load()
    no_eos(llama_two)
    hf = LocalBackend(LoadSettings(model_path=folder, device="cpu"))
    hf.load()
    no_eos(hf)
    child = ProcessBackend(LoadSettings(model_path=gguf, device="cpu"))
    child.load()
    child.run(no_eos)
    ids = llama.prepare(request()).ids

    # -- decode, and our layers against the library called directly ------------------------
    decode: dict[str, list[float]] = {"llama": [], "llama2": [], "hf": []}
    layers: dict[str, list[float]] = {"direct": [], "streamed": [], "ours": [], "child": []}
    for run in range(opts.runs + 1):  # the first round warms up
        values = {
            "llama": decode_rate(llama),
            "llama2": decode_rate(llama_two),
            "hf": decode_rate(hf),
        }
        costs = {
            "direct": direct(llama._server, ids),
            "streamed": direct(llama._server, ids, stream=True),
            "ours": end_to_end(llama),
            "child": end_to_end(child),
        }
        if run:
            for key, value in values.items():
                decode[key].append(value)
            for key, value in costs.items():
                layers[key].append(value)
        print(run, values, costs, flush=True)
    speedup = [a / b for a, b in zip(decode["llama"], decode["hf"], strict=True)]
    ours = [a / b for a, b in zip(layers["ours"], layers["direct"], strict=True)]
    streamed = [a / b for a, b in zip(layers["streamed"], layers["direct"], strict=True)]
    child_ratio = [a / b for a, b in zip(layers["child"], layers["direct"], strict=True)]

    # -- prefill -------------------------------------------------------------------------
    prefill: dict[str, list[float]] = {"llama": [], "hf": [], "hf2": []}
    prompt_tokens = {}
    for _ in range(3):
        for key, backend in (("llama", llama), ("hf", hf)):
            value, prompt_tokens[key] = prefill_rate(backend, 330)
            prefill[key].append(value)
    import torch

    torch.set_num_threads(2)
    for _ in range(3):
        prefill["hf2"].append(prefill_rate(hf, 330)[0])
    torch.set_num_threads(threads)
    # llama.cpp with a single prefill thread, for the thread choice
    single = LlamaCppBackend(LoadSettings(model_path=gguf, device="cpu"), prefill_threads=1)
    single.load()
    one_prefill = [prefill_rate(single, 330)[0] for _ in range(3)]
    single.unload()
    params_note = "prefill threads = every core (2), decode threads = cores - 1 (1)"

    # -- a cancel during a long prefill (about 2,400 prompt tokens) ------------------------
    cancel_waits = [prefill_cancel(llama, 640, 0.5) for _ in range(3)]

    # -- time to the first token as a chat grows ------------------------------------------
    chats = [turns_ttft(llama) for _ in range(3)]
    hf_chats = [turns_ttft(hf) for _ in range(3)]
    first, last = (statistics.median(c[i] for c in chats) for i in (0, 1))
    hf_first, hf_last = (statistics.median(c[i] for c in hf_chats) for i in (0, 1))

    child.unload()
    llama.unload()
    llama_two.unload()
    hf.unload()

    # -- whole processes -----------------------------------------------------------------
    home = os.environ["VICUNA_TUI_HOME"]
    env_note = f"VICUNA_TUI_HOME={home}"
    proc_llama = whole_process(["--model-path", gguf], opts.runs)
    proc_hf = whole_process(["--model-path", gguf, "--backend", "transformers"], 1)  # converts
    proc_hf = whole_process(["--model-path", gguf, "--backend", "transformers"], opts.runs)

    rss_llama = peak_rss(gguf, "llamacpp")
    rss_hf = peak_rss(folder, "transformers")

    rows = [
        [
            "decode tok/s, 128 tokens greedy",
            fmt(decode["llama"], 1),
            fmt(decode["hf"], 1),
            f"{statistics.median(speedup):.2f}× ({min(speedup):.2f}–{max(speedup):.2f})",
            "≥ 3×",
        ],
        [
            "decode tok/s, llama.cpp with 2 decode threads",
            fmt(decode["llama2"], 1),
            "",
            f"{statistics.median(decode['llama2']) / statistics.median(decode['llama']):.2f}× "
            "the 1-thread default",
            "",
        ],
        [
            f"prefill tok/s, {prompt_tokens['llama']} prompt tokens, cold",
            fmt(prefill["llama"], 0) + " (2 threads); 1 thread: " + fmt(one_prefill, 0),
            fmt(prefill["hf"], 0) + f" ({threads} thread); 2 threads: " + fmt(prefill["hf2"], 0),
            f"{statistics.median(prefill['llama']) / statistics.median(prefill['hf']):.2f}×",
            "",
        ],
        [
            "Esc 0.5 s into the prefill of a 2,400-token prompt: time until it stops",
            fmt(cancel_waits, 2, " s") + f" (prefill in chunks of {llama.prefill_chunk} tokens)",
            "",
            "",
            "",
        ],
        [
            "time to first token, turn 20 ÷ turn 1 (medians of 3 chats)",
            f"{last / first:.2f} ({first:.2f} s → {last:.2f} s)",
            f"{hf_last / hf_first:.2f} ({hf_first:.2f} s → {hf_last:.2f} s)",
            "",
            "≤ 1.3",
        ],
        [
            "whole process `-p hi --max-new-tokens 1`",
            fmt(proc_llama, 2, " s"),
            fmt(proc_hf, 2, " s") + " (conversion cached)",
            f"{statistics.median(proc_hf) / statistics.median(proc_llama):.1f}× faster",
            "≤ 1.5 s",
        ],
        [
            "peak RSS (VmHWM) of a process that loads and generates 256 tokens",
            f"{rss_llama / 2**20:.0f} MiB",
            f"{rss_hf / 2**20:.0f} MiB",
            f"{rss_llama / rss_hf:.2f}×",
            "",
        ],
    ]
    layer_rows = [
        ["xllamacpp called directly (non-streamed)", fmt(layers["direct"], 1), "1.000", ""],
        [
            "xllamacpp called directly, streamed to a callback that does nothing",
            fmt(layers["streamed"], 1),
            fmt(streamed, 3),
            "",
        ],
        [
            "our backend, in this process (streamed, stops, stats)",
            fmt(layers["ours"], 1),
            fmt(ours, 3),
            "≥ 0.95",
        ],
        [
            "our backend in the model's own process (the TUI's)",
            fmt(layers["child"], 1),
            fmt(child_ratio, 3),
            "≥ 0.95",
        ],
    ]
    body = (
        "SmolLM2-135M-Instruct: the package's Q4_1 GGUF (98 MB) on llama.cpp (xllamacpp), "
        "and the same weights converted to float32 safetensors on the transformers path "
        "(its CPU fast path). Greedy, replies forced to the full length. Both backends are "
        "loaded at once and take turns, reply by reply; median (min–max) of "
        f"{opts.runs} rounds after a warm-up round. Defaults: {params_note}; transformers "
        f"uses {threads} thread. The transformers prefill row also gives 2 threads.\n\n"
        + table(["measure", "llama.cpp backend", "transformers path", "ratio", "target"], rows)
        + "\n\nOur layers against the library: new tokens over the wall time of a whole "
        f"{TOKENS}-token reply whose prompt is cached, taken in turn with xllamacpp's own "
        "non-streamed completion on the same prompt ids and settings; round-by-round ratios.\n\n"
        + table(["path", "tokens/s", "÷ direct", "target"], layer_rows)
        + f"\n\nWhole-process times run `python -m vicuna_tui` with {env_note}; the "
        "transformers row loads the GGUF's cached safetensors conversion (one run "
        "converted it first, not counted)."
    )
    print(body)
    write_section("llamacpp", "llama.cpp backend (GGUF) against the transformers path", body)


if __name__ == "__main__":
    main()
