"""Whether two models fit in this machine's memory at once, said before either loads,
and how the two share the CPU cores."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vicuna_tui import runtime
from vicuna_tui.engine import sources
from vicuna_tui.engine.backends import LLAMACPP, engine_for
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.engine.threads import cpu_cores

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
# A GGUF run by transformers is dequantized to 16 or 32 bits: several times its file.
DEQUANTIZED = 4
HEADROOM = 0.9  # of the memory free, what two models may take


def _weights_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(
        f.stat().st_size for f in path.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES
    )


def model_bytes(load: LoadSettings) -> int | None:
    """About how much memory a local model takes, from its files (None: not on disk
    here, e.g. a Hub id not downloaded yet)."""
    path = Path(load.model_path).expanduser() if load.model_path else sources.find_packaged_gguf()
    if path is None or not path.exists():
        return None
    size = _weights_on_disk(path)
    gguf = path.suffix == ".gguf" or (path.is_dir() and any(path.glob("*.gguf")))
    if gguf and engine_for(load) != LLAMACPP:
        size *= DEQUANTIZED
    if load.load_8bit:
        size //= 2
    elif load.load_4bit:
        size //= 4
    return size


def available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


@dataclass(frozen=True)
class Fit:
    """``need``: both models together (None when one is not known); ``free``: what the
    machine has; ``fits``: whether both can load at once."""

    need: int | None
    free: int

    @property
    def fits(self) -> bool:
        return self.need is None or self.need <= self.free * HEADROOM

    def describe(self) -> str:
        gib = 2**30
        need = f"about {self.need / gib:.1f} GiB" if self.need is not None else "?"
        return f"the two models need {need}; this machine has {self.free / gib:.1f} GiB free"


def check_fit(
    loads: Sequence[LoadSettings | None], free: Callable[[], int] = available_memory
) -> Fit:
    """``loads``: each local side's settings (None for a server, which needs none here)."""
    sizes = [model_bytes(load) for load in loads if load is not None]
    need = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    return Fit(need, free())


def shared_threads(local_sides: int, cores: int | None = None) -> int | None:
    """CPU threads for each of ``local_sides`` models decoding at the same time: the
    cores split evenly, so that neither starves the other (None: one model, which
    keeps its own default)."""
    if local_sides < 2:
        return None
    return max(1, (cores or cpu_cores()) // local_sides)


def share_cores(sides: list[runtime.Resolved]) -> list[runtime.Resolved]:
    """Two local models decode at the same time: each gets half the cores, unless its
    threads were given."""
    local = [s for s in sides if s.remote is None]
    threads = shared_threads(len(local))
    if threads is None:
        return sides
    return [
        dataclasses.replace(s, load=dataclasses.replace(s.load, threads=threads))
        if s.remote is None and s.load.threads is None
        else s
        for s in sides
    ]
