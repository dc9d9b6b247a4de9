"""Reading a checkpoint's tensors in blocks of rows, from memory-mapped safetensors or
from .bin files, reopened per tensor with ``low_memory``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vicuna_tui.weights.checkpoint import Checkpoint, TensorInfo


class DirectRows:
    """Rows of a safetensors tensor read with plain file reads (no memory map, so the
    pages never count against this process)."""

    def __init__(self, info: TensorInfo, handle: Any) -> None:
        self.info = info
        self.handle = handle
        rows = info.shape[0] if info.shape else 1
        self.row_bytes = info.nbytes() // max(1, rows)

    def __getitem__(self, key: Any) -> Any:
        import torch

        if not self.info.shape:
            start, end = 0, 1
        else:
            start, end = key.start or 0, key.stop
        assert self.info.offset is not None
        self.handle.seek(self.info.offset + start * self.row_bytes)
        data = bytearray((end - start) * self.row_bytes)
        view = memoryview(data)
        got = 0
        while got < len(data):
            count = self.handle.readinto(view[got:])
            if not count:
                raise OSError(f"{self.info.file} is shorter than its header says")
            got += count
        dtype = getattr(torch, self.info.dtype)
        if not data:
            return torch.empty((0, *self.info.shape[1:]), dtype=dtype)
        flat = torch.frombuffer(data, dtype=dtype)
        return (
            flat.reshape((end - start, *self.info.shape[1:]))
            if self.info.shape
            else flat.reshape(())
        )


class BinRows:
    """Rows of a .bin tensor, mapping the file only while a block is copied out."""

    def __init__(self, checkpoint: Checkpoint, file: Path, name: str) -> None:
        self.checkpoint = checkpoint
        self.file = file
        self.name = name

    def __getitem__(self, key: Any) -> Any:
        with self.checkpoint._bin(self.file) as state:
            return state[self.name][key].clone()


class Reader:
    """Row blocks of one checkpoint's tensors; keeps one file open unless low_memory.

    With low_memory, safetensors are read with plain reads and .bin files are reopened
    for every tensor, so no more than one tensor's mapped pages are ever resident.
    """

    def __init__(self, checkpoint: Checkpoint, low_memory: bool) -> None:
        self.checkpoint = checkpoint
        self.low_memory = low_memory
        self._file: Path | None = None
        self._getter: Callable[[str], Any] | None = None
        self._manager: Any = None

    def _open(self, file: Path) -> Callable[[str], Any]:
        if self._file == file and self._getter is not None:
            return self._getter
        self.close()
        if self.checkpoint.kind == "safetensors" and self.low_memory:
            self._manager = file.open("rb", buffering=0)
            handle = self._manager.__enter__()
            self._getter = lambda name: DirectRows(self.checkpoint.tensors[name], handle)
        elif self.low_memory:
            self._manager = None
            self._getter = lambda name: BinRows(self.checkpoint, file, name)
        elif self.checkpoint.kind == "safetensors":
            from safetensors import safe_open

            self._manager = safe_open(str(file), framework="pt", device="cpu")
            handle = self._manager.__enter__()
            self._getter = handle.get_slice
        else:
            self._manager = self.checkpoint._bin(file)
            state = self._manager.__enter__()
            self._getter = state.__getitem__
        self._file = file
        return self._getter

    def close(self) -> None:
        if self._manager is not None:
            self._manager.__exit__(None, None, None)
        self._manager = None
        self._file = None
        self._getter = None

    @contextmanager
    def tensor(self, name: str) -> Iterator[Any]:
        info = self.checkpoint.tensors[name]
        try:
            yield self._open(info.file)(name)
        finally:
            if self.low_memory:
                self.close()


def row_blocks(info: TensorInfo, block_bytes: int) -> Iterator[tuple[int, int]]:
    rows = info.shape[0]
    row_bytes = max(1, info.nbytes() // max(1, rows))
    step = max(1, block_bytes // row_bytes)
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


def rows(source: Any, start: int, end: int) -> Any:
    """Rows start:end: a safetensors slice reads only those rows; a .bin view of the
    memory map reads them when used."""
    return source[start:end]


def scalar(source: Any) -> Any:
    import torch

    if isinstance(source, DirectRows):
        return source[None]
    if isinstance(source, BinRows):
        return source[...]

    if hasattr(source, "get_shape"):  # a safetensors slice
        return torch.as_tensor(source[:]).clone()
    return torch.as_tensor(source).clone()
