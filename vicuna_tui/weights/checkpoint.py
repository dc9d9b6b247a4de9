"""A Hugging Face checkpoint folder, read one tensor at a time.

Safetensors headers are read without touching tensor data; ``.bin`` files are opened
with ``torch.load(weights_only=True, mmap=True)``.  ``low_memory`` reopens the file for
every tensor, so pages read through the memory map are released straight away.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicuna_tui.errors import ModelNotFoundError

SAFETENSORS_DTYPES = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
TORCH_TO_SAFETENSORS = {name: code for code, (name, _) in SAFETENSORS_DTYPES.items()}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    file: Path
    dtype: str  # torch dtype name, e.g. "float16"
    shape: tuple[int, ...]
    offset: int | None = None  # safetensors: where the tensor's bytes start in the file

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    def nbytes(self, dtype: str | None = None) -> int:
        size = next(s for n, s in SAFETENSORS_DTYPES.values() if n == (dtype or self.dtype))
        return self.numel * size

    @property
    def floating(self) -> bool:
        return self.dtype in ("float64", "float32", "float16", "bfloat16")


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The tensor entries of a safetensors header, each with "start": its file offset."""
    with path.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise ModelNotFoundError(
                f"{path} is not a safetensors file (too short)", "re-download or re-convert it"
            )
        (length,) = struct.unpack("<Q", raw)
        if length > 100_000_000:
            raise ModelNotFoundError(
                f"{path} is not a safetensors file (bad header)", "re-download or re-convert it"
            )
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            raise ModelNotFoundError(
                f"{path} is not a safetensors file (bad header)", "re-download or re-convert it"
            ) from None
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    for entry in entries.values():
        entry["start"] = 8 + length + entry["data_offsets"][0]
    return entries


def _weight_files(folder: Path) -> tuple[str, list[Path]]:
    for index_name, kind in (
        ("model.safetensors.index.json", "safetensors"),
        ("pytorch_model.bin.index.json", "bin"),
    ):
        index = folder / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text()).get("weight_map", {})
            files = sorted({folder / f for f in weight_map.values()})
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise ModelNotFoundError(
                    f"{folder} is missing shard(s) listed in {index_name}: "
                    + ", ".join(missing[:3]),
                    "finish the download, or copy the missing files",
                )
            return kind, files
    safe = sorted(folder.glob("*.safetensors"))
    if safe:
        return "safetensors", safe
    bins = sorted(p for p in folder.glob("*.bin") if p.name != "training_args.bin")
    if bins:
        return "bin", bins
    raise ModelNotFoundError(
        f"{folder} holds no .safetensors or .bin weights", "point at a Hugging Face model folder"
    )


class Checkpoint:
    def __init__(self, folder: Path, role: str = "model") -> None:
        folder = folder.expanduser()
        if not folder.exists():
            raise ModelNotFoundError(
                f"no such folder for the {role}: {folder}", f"check the --{role} path"
            )
        if not folder.is_dir():
            raise ModelNotFoundError(
                f"the {role} must be a model folder, not a file: {folder}",
                "pass the folder that holds config.json and the weights",
            )
        self.folder = folder
        self.role = role
        self.kind, self.files = _weight_files(folder)
        self.tensors: dict[str, TensorInfo] = {}
        for file in self.files:
            for info in self._scan(file):
                self.tensors[info.name] = info

    def _scan(self, file: Path) -> list[TensorInfo]:
        if self.kind == "safetensors":
            header = _safetensors_header(file)
            out = []
            for name, meta in header.items():
                dtype = SAFETENSORS_DTYPES.get(meta.get("dtype", ""), (None, 0))[0]
                if dtype is None:
                    raise ModelNotFoundError(
                        f"{file}: tensor {name} has an unsupported dtype {meta.get('dtype')}",
                        "convert the model first",
                    )
                out.append(TensorInfo(name, file, dtype, tuple(meta["shape"]), meta["start"]))

            return out
        with self._bin(file) as state:
            return [
                TensorInfo(name, file, str(t.dtype).replace("torch.", ""), tuple(t.shape))
                for name, t in state.items()
            ]

    @contextmanager
    def _bin(self, file: Path) -> Iterator[dict[str, Any]]:
        import torch

        try:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:  # a legacy (non-zip) file cannot be memory-mapped
            if "mmap" not in str(exc).lower() and "zip" not in str(exc).lower():
                raise
            state = torch.load(file, map_location="cpu", weights_only=True)
        try:
            yield state
        finally:
            del state

    @property
    def largest_file(self) -> int:
        return max(f.stat().st_size for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def read(self, names: list[str], *, low_memory: bool) -> Iterator[tuple[str, Any]]:
        """Yield (name, tensor) for ``names``, grouped by file, as owned CPU tensors."""
        by_file: dict[Path, list[str]] = {}
        for name in names:
            by_file.setdefault(self.tensors[name].file, []).append(name)
        for file, group in by_file.items():
            if low_memory:
                for name in group:  # reopen per tensor: the map's pages go with it
                    with self._open(file) as handle:
                        yield name, handle(name)
            else:
                with self._open(file) as handle:
                    for name in group:
                        yield name, handle(name)

    @contextmanager
    def _open(self, file: Path) -> Iterator[Any]:
        if self.kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(file), framework="pt", device="cpu") as handle:
                yield handle.get_tensor
        else:
            with self._bin(file) as state:
                yield lambda name: state[name].clone()
