"""Delta arithmetic: whether two checkpoints fit together, and base ± other, block by
block in float32, cast to the output dtype and streamed to the shard writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicuna_tui.errors import DeltaError
from vicuna_tui.weights.checkpoint import Checkpoint, TensorInfo
from vicuna_tui.weights.readers import Reader, row_blocks, rows, scalar
from vicuna_tui.weights.writer import ShardWriter

BLOCK_BYTES = 4 * 2**20


@dataclass(frozen=True)
class DeltaProgress:
    tensors_done: int
    tensors_total: int
    bytes_done: int
    bytes_total: int
    name: str


DeltaProgressFn = Callable[[DeltaProgress], None]


def is_vocab_growth(small: tuple[int, ...], big: tuple[int, ...]) -> bool:
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
        if is_vocab_growth(info.shape, theirs):
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


def combined_blocks(
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
        theirs = scalar(o_src)
        if not b_info.floating:
            yield theirs
            return
        mine = scalar(b_src)
        yield (theirs.float() - mine.float() if subtract else mine.float() + theirs.float()).to(
            out_dtype
        )
        return
    base_rows = b_info.shape[0]
    for start, end in row_blocks(o_info, block_bytes):
        theirs = rows(o_src, start, end)
        advance((end - start) * (o_info.nbytes() // max(1, o_info.shape[0])))
        if not b_info.floating:
            yield theirs
            continue
        mine = (
            rows(b_src, start, min(end, base_rows))
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


def combine(
    base: Checkpoint,
    other: Checkpoint,
    out_dir: Path,
    *,
    subtract: bool,
    dtype: str,
    low_memory: bool,
    max_shard_bytes: int,
    progress: DeltaProgressFn | None,
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
    first, second = Reader(base, low_memory), Reader(other, low_memory)
    block_bytes = BLOCK_BYTES if low_memory else 8 * BLOCK_BYTES
    done = [0, 0]  # tensors, bytes

    def advance(count: int) -> None:
        done[1] += count
        if progress is not None:
            progress(DeltaProgress(done[0], len(names), min(done[1], total), total, current[0]))

    current = [""]
    try:
        for name in names:
            current[0] = name
            with first.tensor(name) as b_src, second.tensor(name) as o_src:
                writer.write_blocks(
                    name,
                    combined_blocks(
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
        progress(DeltaProgress(len(names), len(names), total, total, ""))


def return_freed_memory() -> None:
    """glibc raises its mmap threshold after large frees, after which freed blocks stay in
    the heap; pin it at 128 KiB so each block's memory goes back to the system at once."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass
