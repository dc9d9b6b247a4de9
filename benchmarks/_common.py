"""Shared by the benchmark scripts: timing statistics, machine facts, BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "BENCHMARKS.md"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def stats(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def fmt(values: Sequence[float], digits: int = 2, unit: str = "") -> str:
    med, low, high = stats(values)
    return f"{med:.{digits}f}{unit} ({low:.{digits}f}–{high:.{digits}f})"


def git_sha() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import psutil

        ram = f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        ram = "RAM unknown"
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{cpu}, {cores} cores, {ram}{gpu}"


def versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for name in ("torch", "transformers", "textual", "xllamacpp"):
        try:
            module = __import__(name)
            parts.append(f"{name} {module.__version__}")
        except ImportError:
            pass
    from vicuna_tui import __version__

    parts.append(f"vicuna-tui {__version__} ({git_sha()})")
    return ", ".join(parts)


def write_section(name: str, title: str, body: str, *, command: str | None = None) -> None:
    """Replace this script's section of BENCHMARKS.md (or add it)."""
    command = command or "python " + " ".join(
        [f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- BEGIN {name} -->\n## {title}\n\n"
        f"- command: `{command}`\n- machine: {machine()}\n- versions: {versions()}\n"
        f"- run: {stamp}\n\n{body.strip()}\n<!-- END {name} -->"
    )
    text = (
        REPORT.read_text()
        if REPORT.exists()
        else (
            "# Benchmarks\n\nEach section is written by the script named in it; comparisons are "
            "ratios measured side by side in one run. Figures are medians with (min–max).\n"
        )
    )
    pattern = re.compile(
        rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.DOTALL
    )
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    REPORT.write_text(text)
    print(f"updated the {name!r} section of {REPORT}")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.start


def smollm_folder() -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder (the tests' cached conversion)."""
    from vicuna_tui.engine.transformers import gguf_cache

    previous = os.environ.get("VICUNA_TUI_HOME")
    os.environ["VICUNA_TUI_HOME"] = str(ROOT / ".cache" / "test-home")
    try:
        folder, _ = gguf_cache.convert_gguf(smollm_gguf())
    finally:
        if previous is None:
            os.environ.pop("VICUNA_TUI_HOME", None)
        else:
            os.environ["VICUNA_TUI_HOME"] = previous
    return folder


def read_bandwidth(mib: int = 512, repeats: int = 10) -> float:
    """Bytes per second this process reads from memory (the sum of a large tensor)."""
    import torch

    data = torch.ones(mib * 2**20 // 4, dtype=torch.float32)
    data.sum()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        data.sum()
        times.append(time.perf_counter() - start)
    return data.numel() * 4 / statistics.median(times)


def no_eos(backend: object) -> None:
    """Let replies run to max_new_tokens (benchmarks compare equal lengths)."""
    if hasattr(backend, "ignore_eos"):  # llama.cpp
        backend.ignore_eos = True
        return
    loaded = backend._loaded  # type: ignore[attr-defined]
    loaded.stop_token_ids = ()


def smollm_gguf() -> Path:
    """The demo model's GGUF, as the package ships it."""
    from vicuna_tui.engine import sources

    gguf = sources.find_packaged_gguf()
    if gguf is None:
        found = sorted((ROOT / ".cache" / "models").glob("**/*.gguf"))
        if not found:
            raise SystemExit("the demo model is missing: run `make test` (or `make run`) first")
        gguf = found[0]
    return gguf


def run_cell(code: str, *args: str, timeout: float = 3600) -> Any:
    """Run ``code`` in a fresh Python process (``sys.argv[1:]`` = ``args``) and return
    the JSON of the last line it printed."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])
