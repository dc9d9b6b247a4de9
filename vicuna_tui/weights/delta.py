"""Vicuna weights from a LLaMA base plus a delta (apply), and the inverse (make).

Both stream: each tensor is read from its memory-mapped file in blocks of rows, added
(or subtracted) in float32, cast to the output dtype and written straight to a
safetensors shard.  With ``low_memory`` every tensor reopens its file, so the process
never holds more than a block of arithmetic plus one tensor's mapped pages.

The output goes to a hidden folder beside the target and is renamed into place only
when complete: an interrupted run, a full disk or Ctrl-C never leaves a target that
looks complete.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicuna_tui.errors import VicunaError
from vicuna_tui.weights.checkpoint import Checkpoint, TensorInfo
from vicuna_tui.weights.writer import ShardWriter

DTYPES = ("float16", "bfloat16", "float32")
COPIED_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
)
BLOCK_BYTES = 4 * 2**20


class DeltaError(VicunaError):
    """Base and delta (or target) do not fit together, or the target cannot be written."""


@dataclass(frozen=True)
class Progress:
    tensors_done: int
    tensors_total: int
    bytes_done: int
    bytes_total: int
    name: str


ProgressFn = Callable[[Progress], None]


def _is_vocab_growth(small: tuple[int, ...], big: tuple[int, ...]) -> bool:
    return len(small) == len(big) >= 1 and small[1:] == big[1:] and big[0] > small[0]


def check_pair(base: Checkpoint, other: Checkpoint, *, resize_vocab: bool) -> dict[str, int]:
    """Refuse a base/other pair that cannot be combined; returns rows to pad per tensor."""
    role = other.role
    missing = sorted(set(base.tensors) - set(other.tensors))
    extra = sorted(set(other.tensors) - set(base.tensors))
    if missing:
        raise DeltaError(
            f"the {role} has no tensor {missing[0]}, which the base has"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            f"--base and --{role} must be the same architecture; check both paths",
        )
    if extra:
        raise DeltaError(
            f"the {role} has a tensor {extra[0]} that the base does not"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
            f"--base and --{role} must be the same architecture; check both paths",
        )
    pads: dict[str, int] = {}
    for name, info in base.tensors.items():
        theirs = other.tensors[name].shape
        if info.shape == theirs:
            continue
        if _is_vocab_growth(info.shape, theirs):
            if resize_vocab:
                pads[name] = theirs[0]
                continue
            raise DeltaError(
                f"{name}: the base has {info.shape[0]} rows but the {role} has {theirs[0]}. "
                f"This is the Vicuna v0 layout: the {role} adds {theirs[0] - info.shape[0]} "
                "token(s) (a [PAD] row) to the embeddings and lm_head",
                "rerun with --resize-vocab: the base's embeddings and lm_head grow to the "
                f"{role}'s vocabulary with zero rows before the delta is added",
            )
        raise DeltaError(
            f"{name}: the base has shape {list(info.shape)} but the {role} has {list(theirs)}",
            f"--base and --{role} must be the same model size and architecture",
        )
    return pads


class _DirectRows:
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


class _BinRows:
    """Rows of a .bin tensor, mapping the file only while a block is copied out."""

    def __init__(self, checkpoint: Checkpoint, file: Path, name: str) -> None:
        self.checkpoint = checkpoint
        self.file = file
        self.name = name

    def __getitem__(self, key: Any) -> Any:
        with self.checkpoint._bin(self.file) as state:
            return state[self.name][key].clone()


class _Reader:
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
            self._getter = lambda name: _DirectRows(self.checkpoint.tensors[name], handle)
        elif self.low_memory:
            self._manager = None
            self._getter = lambda name: _BinRows(self.checkpoint, file, name)
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


def _row_blocks(info: TensorInfo, block_bytes: int) -> Iterator[tuple[int, int]]:
    rows = info.shape[0]
    row_bytes = max(1, info.nbytes() // max(1, rows))
    step = max(1, block_bytes // row_bytes)
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


def _rows(source: Any, start: int, end: int) -> Any:
    """Rows start:end: a safetensors slice reads only those rows; a .bin view of the
    memory map reads them when used."""
    return source[start:end]


def _scalar(source: Any) -> Any:
    import torch

    if isinstance(source, _DirectRows):
        return source[None]
    if isinstance(source, _BinRows):
        return source[...]

    if hasattr(source, "get_shape"):  # a safetensors slice
        return torch.as_tensor(source[:]).clone()
    return torch.as_tensor(source).clone()


def _combined_blocks(
    b_src: Any,
    o_src: Any,
    b_info: TensorInfo,
    o_info: TensorInfo,
    subtract: bool,
    out_dtype: Any,
    block_bytes: int,
    advance: Callable[[int], None],
) -> Iterator[Any]:
    import torch

    if not o_info.shape:  # a scalar: read it whole
        theirs = _scalar(o_src)
        if not b_info.floating:
            yield theirs
            return
        mine = _scalar(b_src)
        yield (theirs.float() - mine.float() if subtract else mine.float() + theirs.float()).to(
            out_dtype
        )
        return
    base_rows = b_info.shape[0]
    for start, end in _row_blocks(o_info, block_bytes):
        theirs = _rows(o_src, start, end)
        advance((end - start) * (o_info.nbytes() // max(1, o_info.shape[0])))
        if not b_info.floating:
            yield theirs
            continue
        mine = (
            _rows(b_src, start, min(end, base_rows))
            if start < base_rows
            else torch.empty((0, *b_info.shape[1:]), dtype=theirs.dtype)
        )
        advance(mine.shape[0] * (b_info.nbytes() // max(1, base_rows)))
        if mine.shape[0] != theirs.shape[0]:  # rows the base lacks (--resize-vocab): zeros
            grown = torch.zeros(theirs.shape, dtype=torch.float32)
            grown[: mine.shape[0]] = mine.float()
            mine = grown
        mixed = theirs.to(torch.float32, copy=True)
        if subtract:
            mixed.sub_(mine)
        else:
            mixed.add_(mine)
        del theirs, mine
        yield mixed.to(out_dtype)


def _combine(
    base: Checkpoint,
    other: Checkpoint,
    out_dir: Path,
    *,
    subtract: bool,
    dtype: str,
    low_memory: bool,
    max_shard_bytes: int,
    progress: ProgressFn | None,
) -> None:
    import torch

    out_dtype = getattr(torch, dtype)
    names = list(base.tensors)  # file order, then header order
    plan: list[tuple[str, str, tuple[int, ...]]] = []
    for name in names:
        info, theirs = base.tensors[name], other.tensors[name]
        plan.append((name, dtype if info.floating else theirs.dtype, theirs.shape))
    total = sum(base.tensors[n].nbytes() + other.tensors[n].nbytes() for n in names)
    writer = ShardWriter(out_dir, plan, max_shard_bytes)
    first, second = _Reader(base, low_memory), _Reader(other, low_memory)
    block_bytes = BLOCK_BYTES if low_memory else 8 * BLOCK_BYTES
    done = [0, 0]  # tensors, bytes

    def advance(count: int) -> None:
        done[1] += count
        if progress is not None:
            progress(Progress(done[0], len(names), min(done[1], total), total, current[0]))

    current = [""]
    try:
        for name in names:
            current[0] = name
            with first.tensor(name) as b_src, second.tensor(name) as o_src:
                writer.write_blocks(
                    name,
                    _combined_blocks(
                        b_src,
                        o_src,
                        base.tensors[name],
                        other.tensors[name],
                        subtract,
                        out_dtype,
                        block_bytes,
                        advance,
                    ),
                )
            done[0] += 1
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        first.close()
        second.close()
    if progress is not None:
        progress(Progress(len(names), len(names), total, total, ""))


def _return_freed_memory() -> None:
    """glibc raises its mmap threshold after large frees, after which freed blocks stay in
    the heap; pin it at 128 KiB so each block's memory goes back to the system at once."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def _prepare_target(target: Path, force: bool) -> Path:

    target = target.expanduser().absolute()
    if target.exists():
        if not target.is_dir():
            raise DeltaError(f"the target {target} is a file", "choose a folder for --target")
        if any(target.iterdir()) and not force:
            raise DeltaError(
                f"the target {target} exists and is not empty",
                "choose a new folder, or pass --force to replace it",
            )
    if not target.parent.exists():
        raise DeltaError(
            f"the target's parent folder {target.parent} does not exist", "create it first"
        )
    return target


def _finish(tmp: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.replaced-{os.getpid()}"
        os.rename(target, old)
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_metadata(
    out: Path,
    source: Path,
    fallback: Path,
    dtype: str,
    vocab_rows: int | None,
    record: dict[str, Any],
) -> None:
    config_file = (
        source / "config.json" if (source / "config.json").is_file() else fallback / "config.json"
    )
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        config["torch_dtype"] = dtype
        if "dtype" in config:
            config["dtype"] = dtype
        if vocab_rows is not None:
            config["vocab_size"] = vocab_rows
        (out / "config.json").write_text(json.dumps(config, indent=2))
    for name in COPIED_FILES:
        for folder in (source, fallback):
            if (folder / name).is_file():
                shutil.copy2(folder / name, out / name)
                break
    (out / "vicuna-tui-delta.json").write_text(json.dumps(record, indent=2))


def _run(
    base_dir: Path,
    other_dir: Path,
    target: Path,
    *,
    other_role: str,
    subtract: bool,
    dtype: str,
    low_memory: bool,
    resize_vocab: bool,
    force: bool,
    max_shard_bytes: int,
    progress: ProgressFn | None,
) -> Path:
    if dtype not in DTYPES:
        raise DeltaError(f"--dtype {dtype} is not supported", "use float16, bfloat16 or float32")
    if low_memory:
        _return_freed_memory()
    base = Checkpoint(base_dir, "base")
    other = Checkpoint(other_dir, other_role)
    pads = check_pair(base, other, resize_vocab=resize_vocab)
    target = _prepare_target(target, force)
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _combine(
            base,
            other,
            tmp,
            subtract=subtract,
            dtype=dtype,
            low_memory=low_memory,
            max_shard_bytes=max_shard_bytes,
            progress=progress,
        )
        vocab_rows = max(pads.values()) if pads else None
        record = {
            "operation": "make-delta" if subtract else "apply-delta",
            "base": str(base.folder),
            other_role: str(other.folder),
            "dtype": dtype,
            "resized_vocab_to": vocab_rows,
        }
        # apply: tokenizer and config come from the delta, as FastChat does;
        # make: from the target, so the delta carries them.
        _write_metadata(tmp, other.folder, base.folder, dtype, vocab_rows, record)
        _finish(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise DeltaError(
                f"the disk filled up while writing {target}; nothing was written to the target",
                "free some space and run it again",
            ) from None
        raise DeltaError(
            f"cannot write {target}: {exc.strerror or exc}",
            "check the folder's permissions and free space",
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def apply_delta(
    base: Path,
    delta: Path,
    target: Path,
    *,
    dtype: str = "float16",
    low_memory: bool = False,
    resize_vocab: bool = False,
    force: bool = False,
    max_shard_bytes: int = 2 * 2**30,
    progress: ProgressFn | None = None,
) -> Path:
    """target = base + delta, tensor by tensor."""
    return _run(
        base,
        delta,
        target,
        other_role="delta",
        subtract=False,
        dtype=dtype,
        low_memory=low_memory,
        resize_vocab=resize_vocab,
        force=force,
        max_shard_bytes=max_shard_bytes,
        progress=progress,
    )


def make_delta(
    base: Path,
    target: Path,
    delta: Path,
    *,
    dtype: str = "float16",
    low_memory: bool = False,
    resize_vocab: bool = False,
    force: bool = False,
    max_shard_bytes: int = 2 * 2**30,
    progress: ProgressFn | None = None,
) -> Path:
    """delta = target - base, tensor by tensor (how deltas are published)."""
    return _run(
        base,
        target,
        delta,
        other_role="target",
        subtract=True,
        dtype=dtype,
        low_memory=low_memory,
        resize_vocab=resize_vocab,
        force=force,
        max_shard_bytes=max_shard_bytes,
        progress=progress,
    )
