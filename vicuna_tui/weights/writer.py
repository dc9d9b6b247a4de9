"""Writing safetensors shards one tensor at a time.

The safetensors library saves a whole dict of tensors at once, which would hold a
shard in memory.  Knowing every tensor's name, dtype and shape up front, this writer
puts each shard's header first and then streams the tensors' bytes in order, so memory
holds one tensor at a time.  The files are ordinary safetensors (checked on read-back).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vicuna_tui.weights.checkpoint import SAFETENSORS_DTYPES, TORCH_TO_SAFETENSORS


@dataclass
class _Shard:
    filename: str
    names: list[str] = field(default_factory=list)
    header: dict[str, Any] = field(default_factory=dict)
    size: int = 0


class ShardWriter:
    """Write the planned tensors, in plan order, as safetensors shards plus an index."""

    def __init__(
        self,
        folder: Path,
        plan: list[tuple[str, str, tuple[int, ...]]],
        max_shard_bytes: int = 2 * 2**30,
    ) -> None:
        self.folder = folder
        self.plan = plan
        self.shards: list[_Shard] = []
        current: _Shard | None = None
        for name, dtype, shape in plan:
            size = _numel(shape) * next(s for n, s in SAFETENSORS_DTYPES.values() if n == dtype)
            if current is None or (current.names and current.size + size > max_shard_bytes):
                current = _Shard("")
                self.shards.append(current)
            current.header[name] = {
                "dtype": TORCH_TO_SAFETENSORS[dtype],
                "shape": list(shape),
                "data_offsets": [current.size, current.size + size],
            }
            current.names.append(name)
            current.size += size
        total = len(self.shards)
        for number, shard in enumerate(self.shards, start=1):
            shard.filename = (
                "model.safetensors"
                if total == 1
                else f"model-{number:05d}-of-{total:05d}.safetensors"
            )
        self._order = [name for name, _, _ in plan]
        self._next = 0
        self._shard_index = -1
        self._handle: IO[bytes] | None = None

    def _open_next_shard(self) -> None:
        if self._handle is not None:
            self._close_handle()
        self._shard_index += 1
        shard = self.shards[self._shard_index]
        header = dict(shard.header)
        header["__metadata__"] = {"format": "pt"}
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
        self._handle = (self.folder / shard.filename).open("wb")
        self._handle.write(struct.pack("<Q", len(raw)))
        self._handle.write(raw)

    def _close_handle(self) -> None:
        assert self._handle is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None

    def write(self, name: str, tensor: Any) -> None:
        self.write_blocks(name, [tensor])

    def write_blocks(self, name: str, blocks: Any) -> None:
        """Write one tensor given as consecutive blocks of rows (any iterable of tensors)."""
        import torch

        expected = self._order[self._next]
        if name != expected:
            raise ValueError(
                f"tensors must be written in plan order: got {name}, expected {expected}"
            )
        shard_of = next(i for i, s in enumerate(self.shards) if name in s.header)
        if shard_of != self._shard_index:
            self._open_next_shard()
        meta = self.shards[self._shard_index].header[name]
        start, end = meta["data_offsets"]
        written = 0
        for block in blocks:
            code = TORCH_TO_SAFETENSORS[str(block.dtype).replace("torch.", "")]
            if code != meta["dtype"] or list(block.shape[1:]) != meta["shape"][1:]:
                raise ValueError(
                    f"{name}: got a {tuple(block.shape)} {block.dtype} block, "
                    f"planned {tuple(meta['shape'])} {meta['dtype']}"
                )
            data = block.detach().contiguous().cpu()
            if data.dtype == torch.bfloat16:
                data = data.view(torch.int16)  # numpy has no bfloat16; the bytes are the same
            raw = memoryview(data.numpy()).cast("B")
            assert self._handle is not None
            self._handle.write(raw)
            written += raw.nbytes
        if written != end - start:
            raise ValueError(f"{name}: wrote {written} bytes, planned {end - start}")
        self._next += 1

    def close(self) -> None:
        if self._next != len(self._order):
            raise ValueError(f"only {self._next} of {len(self._order)} tensors were written")
        if self._handle is not None:
            self._close_handle()
        if len(self.shards) > 1:
            index = {
                "metadata": {"total_size": sum(s.size for s in self.shards)},
                "weight_map": {n: s.filename for s in self.shards for n in s.names},
            }
            (self.folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count
