"""Peak memory of apply-delta, default and --low-cpu-mem, on a 541 MB model.

A random LLaMA of 270M parameters in float16 (16 layers, hidden 1024, vocab 32000),
saved in 200 MB shards, and a fine-tune of it; the delta is made once, then
apply-delta runs in a fresh process per run, and the process's peak RSS is read from
the kernel (wait4).  Five runs per mode after a warm-up.

    python benchmarks/delta.py [--runs 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, fmt, table, write_section


def to_bin(source: Path, out: Path) -> Path:
    """The same checkpoint as .bin shards (pytorch_model-*.bin plus an index)."""
    import json

    import torch
    from safetensors.torch import load_file

    if (out / "pytorch_model.bin.index.json").exists():
        return out
    out.mkdir(parents=True)
    index = json.loads((source / "model.safetensors.index.json").read_text())
    weight_map = {}
    files = sorted(set(index["weight_map"].values()))
    for number, name in enumerate(files, start=1):
        target = f"pytorch_model-{number:05d}-of-{len(files):05d}.bin"
        tensors = load_file(str(source / name))
        torch.save(tensors, out / target)
        weight_map.update(dict.fromkeys(tensors, target))
        del tensors
    (out / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    shutil.copy(source / "config.json", out / "config.json")
    return out


def build(folder: Path) -> tuple[Path, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    base, target = folder / "base", folder / "target"
    if (target / "model.safetensors.index.json").exists():
        return base, target
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=16,
        num_attention_heads=16,
        num_key_value_heads=16,
        tie_word_embeddings=False,
        torch_dtype="float16",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).half()
    model.save_pretrained(str(base), max_shard_size="200MB")
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 1e-3)
    model.save_pretrained(str(target), max_shard_size="200MB")
    return base, target


def peak_rss(args: list[str]) -> tuple[int, float]:
    """(peak RSS in bytes, seconds) of one vicuna-tui run in a fresh process.

    The kernel's VmHWM of the child is sampled until it exits (ru_maxrss would carry
    this script's own footprint across fork and exec)."""
    import time

    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vicuna_tui", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = 0
    status_file = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status_file.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"vicuna-tui {' '.join(args)} failed: {err}")
    return peak, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", help="folder for the models (kept between runs)")
    opts = parser.parse_args()
    work = Path(opts.keep or tempfile.mkdtemp(prefix="delta-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base, target = build(work)
    delta = work / "delta"
    if not delta.exists():
        peak_rss(
            [
                "make-delta",
                "--base",
                str(base),
                "--target",
                str(target),
                "--delta",
                str(delta),
                "--low-cpu-mem",
                "--max-shard-size",
                "200MB",
            ]
        )
    shards = sorted(base.glob("*.safetensors")) + sorted(delta.glob("*.safetensors"))
    largest = max(p.stat().st_size for p in shards)
    model_bytes = sum(p.stat().st_size for p in base.glob("*.safetensors"))
    baseline, _ = peak_rss(["--version"])  # the interpreter alone
    import_torch = subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch, safetensors, rich\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    torch_rss = int(import_torch.stdout) * 1024
    base_bin = to_bin(base, work / "base-bin")
    delta_bin = to_bin(delta, work / "delta-bin")
    results: dict[str, tuple[list[float], list[float]]] = {}
    for fmt_name, b, d in (("safetensors", base, delta), (".bin", base_bin, delta_bin)):
        for mode, extra in (("default", []), ("--low-cpu-mem", ["--low-cpu-mem"])):
            rss_values, times = [], []
            for run in range(opts.runs + 1):  # the first run warms the page cache
                out = work / f"out-{run}"
                rss, seconds = peak_rss(
                    [
                        "apply-delta",
                        "--base",
                        str(b),
                        "--delta",
                        str(d),
                        "--target",
                        str(out),
                        "--force",
                        "--max-shard-size",
                        "200MB",
                        *extra,
                    ]
                )
                shutil.rmtree(out, ignore_errors=True)
                if run:
                    rss_values.append(rss / 2**20)
                    times.append(seconds)
            results[f"{fmt_name}, {mode}"] = (rss_values, times)
    rows = [
        [
            mode,
            fmt(rss, 0, " MB"),
            fmt(t, 1, " s"),
            f"{statistics_median(rss) / (largest / 2**20):.2f}×",
        ]
        for mode, (rss, t) in results.items()
    ]
    body = (
        f"Model: {model_bytes / 2**20:.0f} MB of float16 weights (270M parameters) in "
        f"{len(list(base.glob('*.safetensors')))} shards; largest input shard "
        f"{largest / 2**20:.0f} MB, so the --low-cpu-mem bound is {2 * largest / 2**20:.0f} MB. "
        f"For reference, Python with torch, safetensors and rich imported peaks at "
        f"{torch_rss / 2**20:.0f} MB and `vicuna-tui --version` at {baseline / 2**20:.0f} MB.\n\n"
        + table(["inputs, mode", "peak RSS", "time", "peak ÷ largest shard"], rows)
        + "\n\nFastChat's `apply_delta` loads both models whole (about 30 GB of RAM for 7B); "
        "its `--low-cpu-mem` path needs `.bin` shards and reloads them repeatedly."
    )
    print(body)
    write_section("delta", "apply-delta memory", body)
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)


def statistics_median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


if __name__ == "__main__":
    main()
