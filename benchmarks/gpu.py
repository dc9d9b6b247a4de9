"""GPU decode speed and the CUDA loading paths, on a 7B-shaped LLaMA with random weights.

    python benchmarks/gpu.py decode      # eager HF, the engine, the engine with --compile
    python benchmarks/gpu.py load        # fp16 from disk (peak RSS), 8-bit, max-gpu-memory
    python benchmarks/gpu.py process     # the model in the UI's process vs its own process
    python benchmarks/gpu.py ... --tiny  # a small shape, to check the script on a CPU

decode: the HBM limit is the weights' bytes over the measured read bandwidth (a large
device-to-device copy counts bytes read plus written).  Decode tok/s is the median of 5
replies of 128 new tokens after a warm-up, greedy, from a 32-token prompt.
load: the model is saved once as safetensors; each load runs in a fresh process whose
peak RSS (VmHWM) shows whether weights were staged in system RAM.
process: the TUI runs a local model in a child process (engine/process.py); the same
saved model, loaded in-process and in its own process, side by side: decode tok/s seen
by the front end, GPU memory, how many tokens still arrive after a cancel, and whether
the GPU memory comes back when the model is unloaded.
Prints a table and writes its section of BENCHMARKS.md (and $OUT/gpu-*.md if set).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _common import ROOT, fmt, table, write_section

SEVEN_B = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
)
TINY = dict(
    vocab_size=1000,
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=512,
)


def config(tiny: bool) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(**(TINY if tiny else SEVEN_B), tie_word_embeddings=False)


def build(tiny: bool, device: str) -> Any:
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config(tiny)).to(
            torch.float16 if device == "cuda" else torch.float32
        )
    return model.eval()


class NumberTokenizer:
    """Enough of a tokenizer for the engine: token ids decode to short words."""

    chat_template = None
    eos_token_id = -1  # random weights: never stop early

    def __call__(self, text: str, add_special_tokens: bool = True) -> Any:
        ids = [1 + (ord(c) % 900) for c in text][:32]
        return type("Encoding", (), {"input_ids": ids})()

    def decode(self, ids: Any, skip_special_tokens: bool = True) -> str:
        return "".join(f" w{i}" for i in ids)


def engine_for(model: Any, device: str, compile_step: bool) -> Any:
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.sources import ModelSource
    from vicuna_tui.engine.transformers.backend import LocalBackend
    from vicuna_tui.engine.transformers.loader import LoadedModel

    loaded = LoadedModel(
        model=model,
        tokenizer=NumberTokenizer(),
        source=ModelSource("folder", Path("/random"), "llama-7b-random", "random weights"),
        device=device,
        dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
        quantization=None,
        context_length=2048,
        stop_token_ids=(),
        notices=(),
    )
    backend = LocalBackend(LoadSettings(device=device))
    backend.attach(loaded)
    if compile_step:
        backend.use_static_cache(compile=True)
    return backend


def engine_decode(backend: Any, new_tokens: int) -> tuple[float, float]:
    """(decode tok/s, seconds to first token) of one reply."""
    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings

    backend.reset_cache()
    request = ChatRequest(
        turns=(("user", "x" * 32),),
        template="zero_shot",
        generation=GenerationSettings(temperature=0.0, max_new_tokens=new_tokens),
    )
    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone) and done.stats.new_tokens == new_tokens, done
    return done.stats.tokens_per_second or 0.0, done.stats.time_to_first_token or 0.0


def hf_decode(model: Any, device: str, new_tokens: int) -> float:
    import torch

    ids = torch.randint(1, 900, (1, 32), device=device)

    def run(n: int) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return (new_tokens - 1) / (run(new_tokens) - run(1))


def bandwidth(device: str) -> float:
    """Bytes read per second, from a large device-to-device copy (read + write)."""
    import torch

    n = (1 << 30) if device == "cuda" else (1 << 25)
    a = torch.empty(n, dtype=torch.float32, device=device).normal_()
    b = torch.empty_like(a)
    times = []
    for _ in range(12):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        b.copy_(a)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    best = statistics.median(times[2:])
    del a, b
    # Bytes read plus bytes written per second: what the memory moves.  Decode only
    # reads weights, and reads alone can use all of it.
    return 2 * n * 4 / best


def decode_section(tiny: bool, runs: int, new_tokens: int) -> str:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build(tiny, device)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    read_rate = bandwidth(device)
    limit = read_rate / weight_bytes
    rows = []

    def measure(name: str, fn: Any, warmups: int = 1) -> None:
        for _ in range(warmups):
            fn()
        values = [fn() for _ in range(runs)]
        rates = [v[0] if isinstance(v, tuple) else v for v in values]
        rows.append([name, fmt(rates, 1, " tok/s"), f"{statistics.median(rates) / limit:.2f}"])
        print(rows[-1], flush=True)

    measure("transformers generate (eager)", lambda: hf_decode(model, device, new_tokens))
    eager = engine_for(model, device, compile_step=False)
    measure("vicuna-tui engine (eager)", lambda: engine_decode(eager, new_tokens))
    eager.unload()
    compiled = engine_for(model, device, compile_step=True)
    start = time.perf_counter()
    engine_decode(compiled, new_tokens)  # compiles
    compile_seconds = time.perf_counter() - start
    measure(
        "vicuna-tui --compile (static cache, CUDA graphs)",
        lambda: engine_decode(compiled, new_tokens),
        warmups=1,
    )
    shape = "tiny test shape" if tiny else "7B shape (6.7B parameters)"
    return (
        f"LLaMA {shape}, random weights, {next(model.parameters()).dtype}, on {device}: "
        f"{weight_bytes / 1e9:.2f} GB of weights read per token. Measured read bandwidth "
        f"{read_rate / 1e12:.2f} TB/s, so the limit is {limit:.0f} tok/s. Greedy, "
        f"{new_tokens} new tokens after a 32-token prompt; median (min–max) of {runs}. "
        f"The first --compile reply took {compile_seconds:.0f} s (compiling).\n\n"
        + table(["decode path", "tokens/s", "share of the HBM limit"], rows)
    )


# --- loading paths -------------------------------------------------------------------------

PEAK_SAMPLER = r"""
import threading, time
PEAK = {"RssAnon": 0, "RssFile": 0}
def _sample():
    while True:
        for line in open("/proc/self/status"):
            key = line.split(":")[0]
            if key in PEAK:
                PEAK[key] = max(PEAK[key], int(line.split()[1]) * 1024)
        time.sleep(0.005)
threading.Thread(target=_sample, daemon=True).start()
"""

LOAD_CHILD = (
    PEAK_SAMPLER
    + r"""
import json, os, sys, time, threading
sys.path.insert(0, os.environ["VICUNA_ROOT"])
from vicuna_tui.engine.transformers.backend import LocalBackend
from vicuna_tui.engine.settings import LoadSettings, GenerationSettings
from vicuna_tui.engine.events import ChatRequest, ReplyDone
from vicuna_tui.errors import VicunaError
settings = LoadSettings(**json.loads(sys.argv[1]))
start = time.perf_counter()
backend = LocalBackend(settings)
result = {}
try:
    info = backend.load()
except VicunaError as exc:
    result["error"] = f"{exc.message} | hint: {exc.hint}"
else:
    result["load_s"] = time.perf_counter() - start
    model = backend._loaded.model
    device_map = getattr(model, "hf_device_map", None) or {"": str(backend._loaded.device)}
    result["placement"] = sorted(set(map(str, device_map.values())))
    import torch
    result["gpu_gb"] = torch.cuda.memory_allocated() / 1e9 if torch.cuda.is_available() else 0
    gen = GenerationSettings(temperature=0.0, max_new_tokens=int(sys.argv[2]))
    request = ChatRequest(turns=(("user", "hello"),), template="zero_shot", generation=gen)
    rates = []
    for _ in range(3):
        backend.reset_cache()
        done = list(backend.generate(request, threading.Event()))[-1]
        rates.append(done.stats.tokens_per_second or 0)
    result["tok_s"] = sorted(rates)[1]
result["peak_anon_gb"] = PEAK["RssAnon"] / 1e9
result["peak_file_gb"] = PEAK["RssFile"] / 1e9
print("RESULT" + json.dumps(result))
"""
)

STAGED_CHILD = (
    PEAK_SAMPLER
    + r"""
import sys, time, torch
from transformers import AutoModelForCausalLM
start = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float16,
                                             low_cpu_mem_usage=True)
model.to("cuda")
print("RESULT" + str(PEAK["RssAnon"] / 1e9))
"""
)


def child(code: str, *args: str) -> dict[str, Any] | float:
    env = {**os.environ, "VICUNA_ROOT": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=900
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])  # type: ignore[no-any-return]
    raise RuntimeError(out.stderr[-3000:])


def save_random(tiny: bool, device: str, folder: Path) -> None:
    """The random model as safetensors with a small tokenizer, once."""
    import torch

    if (folder / "config.json").exists():
        return
    model = build(tiny, device)
    model.save_pretrained(str(folder), max_shard_size="2GB")
    from helpers import build_tokenizer

    build_tokenizer(folder)
    # Every id the random model can emit decodes to a word, so its replies stream text.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    size = model.config.vocab_size
    tokenizer.add_tokens([f" w{i}" for i in range(len(tokenizer), size)])
    tokenizer.save_pretrained(str(folder))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()


def load_section(tiny: bool, folder: Path, new_tokens: int) -> str:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    save_random(tiny, device, folder)
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 1e9
    wanted = os.environ.get("GPU_LOAD_CASES", "")
    cases = [
        ("--device cuda (fp16, one GPU)", {"device": device}),
        ("--num-gpus 1 --max-gpu-memory 40GiB", {"device": device, "max_gpu_memory": "40GiB"}),
        ("--load-8bit", {"device": device, "load_8bit": True}),
        ("--load-4bit", {"device": device, "load_4bit": True}),
        ("--max-gpu-memory 6GiB (does not fit)", {"device": device, "max_gpu_memory": "6GiB"}),
        (
            "--max-gpu-memory 6GiB --cpu-offloading",
            {"device": device, "max_gpu_memory": "6GiB", "cpu_offloading": True},
        ),
        ("--num-gpus 2 (one GPU visible)", {"device": device, "num_gpus": 2}),
    ]
    if wanted:
        cases = [case for index, case in enumerate(cases) if str(index) in wanted.split(",")]
    rows = []
    for name, settings in cases:
        model_settings = {"model_path": str(folder), **settings}
        try:
            result = child(LOAD_CHILD, json.dumps(model_settings), str(new_tokens))
        except Exception as exc:  # noqa: BLE001 - report it and go on with the next case
            rows.append([name, "crashed", str(exc).splitlines()[-1][:120], "", "", ""])
            print(rows[-1], flush=True)
            continue
        assert isinstance(result, dict)
        if "error" in result:
            rows.append(
                [
                    name,
                    "refused",
                    " ".join(result["error"].split())[:160],
                    "",
                    "",
                    f"{result.get('peak_anon_gb', 0):.1f} GB",
                    "",
                ]
            )
        else:
            rows.append(
                [
                    name,
                    f"{result['load_s']:.1f} s",
                    ", ".join(result["placement"]),
                    f"{result['gpu_gb']:.1f} GB",
                    f"{result['tok_s']:.1f}",
                    f"{result['peak_anon_gb']:.1f} GB",
                    f"{result['peak_file_gb']:.1f} GB",
                ]
            )
        print(rows[-1], flush=True)
    staged = child(STAGED_CHILD, str(folder)) if device == "cuda" else 0.0
    return (
        f"The same model saved as {size:.1f} GB of float16 safetensors, loaded through "
        f"vicuna-tui's loader in a fresh process per row (decode: median of 3 replies of "
        f"{new_tokens} tokens). Anonymous RSS is memory the process allocated (what gets a "
        f"process OOM-killed); file-backed RSS is the memory-mapped safetensors in the page "
        f"cache, which the kernel can drop. For comparison, loading to the CPU first and "
        f"then moving to the GPU (FastChat's single-GPU path) peaks at {staged:.1f} GB of "
        f"anonymous RSS with this transformers version.\n\n"
        + table(
            [
                "flags",
                "load",
                "placement",
                "GPU memory",
                "tok/s",
                "peak anonymous RSS",
                "peak file-backed RSS",
            ],
            rows,
        )
    )


# --- the model in its own process ----------------------------------------------------------

PROCESS_CHILD = r"""
import json, os, subprocess, sys, threading, time
sys.path.insert(0, os.environ["VICUNA_ROOT"])
from vicuna_tui.engine.events import ChatRequest, ReplyDelta, ReplyDone
from vicuna_tui.engine.settings import LoadSettings, GenerationSettings
from vicuna_tui.errors import VicunaError
from vicuna_tui.engine.transformers.backend import LocalBackend
from vicuna_tui.engine.process import ProcessBackend

def gpu_used():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used",
                              "--format=csv,noheader,nounits"],
                             capture_output=True, text=True).stdout.split()
    except OSError:  # no GPU here (--tiny on a CPU)
        return 0.0
    return sum(int(x) for x in out) * 2**20 / 1e9

settings = LoadSettings(**json.loads(sys.argv[1]))
new_tokens = int(sys.argv[2])
wheres = sys.argv[3].split(",")  # "in", "own" or both: then taken turn about
backends, result = {}, {}
for where in wheres:  # loaded one after the other, to see each one's GPU memory
    before = gpu_used()
    backend = ProcessBackend(settings) if where == "own" else LocalBackend(settings)
    start = time.perf_counter()
    try:
        info = backend.load()
    except VicunaError as exc:
        print("RESULT" + json.dumps({"error": f"{exc.message} | hint: {exc.hint}"}))
        sys.exit()
    backends[where] = backend
    result[where] = {"load_s": time.perf_counter() - start, "device": info.device,
                     "reported_gb": (backend.memory_in_use() or 0) / 1e9,
                     "gpu_gb": gpu_used() - before, "rates": []}

def reply(backend, n, cancel_after=None):
    request = ChatRequest(turns=(("user", "hello"),), template="zero_shot",
                          generation=GenerationSettings(temperature=0.0, max_new_tokens=n))
    backend.reset_cache()
    cancel = threading.Event()
    times, after = [], 0
    for event in backend.generate(request, cancel):
        if isinstance(event, ReplyDelta):
            times.append(time.perf_counter())
            if cancel.is_set():
                after += 1
            if cancel_after is not None and len(times) == cancel_after:
                cancel.set()
                backend.cancel()  # what the TUI's Esc does
        elif isinstance(event, ReplyDone):
            done = event
    return times, after, done

for where in wheres:
    reply(backends[where], new_tokens)  # warm-up
for _ in range(5):
    for where in wheres:
        times, _, done = reply(backends[where], new_tokens)
        result[where]["rates"].append((len(times) - 1) / (times[-1] - times[0]))
for where in wheres:
    times, after, done = reply(backends[where], 4 * new_tokens, cancel_after=10)
    result[where]["cancel"] = {"after": after, "reason": done.finish_reason,
                               "tokens": done.stats.new_tokens}
for where in wheres:
    before = gpu_used()
    backends[where].unload()
    time.sleep(1)
    result[where]["freed_gb"] = before - gpu_used()
print("RESULT" + json.dumps(result))
"""


def process_section(tiny: bool, folder: Path, new_tokens: int) -> str:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    save_random(tiny, device, folder)
    cases = [
        ("fp16", {"device": device}, "in,own"),
        ("--load-8bit", {"device": device, "load_8bit": True}, "own"),
    ]
    label = {"in": "in the UI's process", "own": "in its own process (the TUI's default)"}
    rows = []
    medians = {}
    for name, settings, wheres in cases:
        model_settings = {"model_path": str(folder), **settings}
        try:
            result = child(PROCESS_CHILD, json.dumps(model_settings), str(new_tokens), wheres)
        except Exception as exc:  # noqa: BLE001 - report it and go on with the next case
            rows.append([name, "crashed", str(exc).splitlines()[-1][:120], "", "", "", ""])
            print(rows[-1], flush=True)
            continue
        assert isinstance(result, dict)
        if "error" in result:
            rows.append([name, "refused", " ".join(result["error"].split())[:160], "", "", "", ""])
            print(rows[-1], flush=True)
            continue
        for where in wheres.split(","):
            got = result[where]
            medians[(name, where)] = statistics.median(got["rates"])
            cancel = got["cancel"]
            rows.append(
                [
                    f"{name}, {label[where]}",
                    f"{got['load_s']:.1f} s",
                    fmt(got["rates"], 1, ""),
                    f"{got['reported_gb']:.1f} GB",
                    f"{got['gpu_gb']:.1f} GB",
                    f"{cancel['after']} ({cancel['reason']}, {cancel['tokens']} tokens)",
                    f"{got['freed_gb']:.1f} GB",
                ]
            )
            print(rows[-1], flush=True)
    ratio = ""
    if ("fp16", "in") in medians and ("fp16", "own") in medians:
        ratio = (
            f" Both fp16 models were loaded at once and took turns, reply by reply; own "
            f"process ÷ in-process decode rate: "
            f"{medians[('fp16', 'own')] / medians[('fp16', 'in')]:.3f}."
        )
    return (
        f"The model of the loading table, loaded by a benchmark process (LocalBackend) or in "
        f"a child of it (ProcessBackend, what the TUI uses). Decode "
        f"tok/s is what the front end receives: tokens after the first over the time between "
        f"the first and the last, median (min–max) of 5 greedy replies of {new_tokens} tokens "
        f"after a warm-up. GPU memory: what the engine reports to the status bar, and what "
        f"nvidia-smi shows in use on the device. Cancel: a reply of {4 * new_tokens} tokens "
        f"cancelled after its 10th token, as Esc does; the column counts tokens that still "
        f"arrived after the cancel.{ratio}\n\n"
        + table(
            [
                "model",
                "load",
                "decode tok/s",
                "GPU memory reported",
                "GPU memory taken (nvidia-smi)",
                "tokens after cancel",
                "GPU memory given back at unload",
            ],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=("decode", "load", "process"))
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--folder", default="/tmp/llama-7b-random")
    opts = parser.parse_args()
    os.environ.setdefault("VICUNA_TUI_HOME", "/tmp/vicuna-bench-home")
    if opts.part == "decode":
        body = decode_section(opts.tiny, opts.runs, opts.tokens)
        title = "GPU decode (7B shape)"
    elif opts.part == "load":
        body = load_section(opts.tiny, Path(opts.folder), min(opts.tokens, 64))
        title = "GPU loading paths (7B shape)"
    else:
        body = process_section(opts.tiny, Path(opts.folder), opts.tokens)
        title = "GPU: the model in its own process (7B shape)"
    print(body)
    name = f"gpu-{opts.part}" + ("-tiny" if opts.tiny else "")
    out = os.environ.get("OUT")
    if out:
        Path(out, f"{name}.md").write_text(body)
    if not opts.tiny:
        write_section(name, title, body)


if __name__ == "__main__":
    main()
