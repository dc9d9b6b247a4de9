"""Vicuna weights from a LLaMA base plus a delta (apply), and the inverse (make).

Both stream: each tensor is read from its memory-mapped file in blocks of rows, added
(or subtracted) in float32, cast to the output dtype and written straight to a
safetensors shard.  With ``low_memory`` every tensor reopens its file, so the process
never holds more than a block of arithmetic plus one tensor's mapped pages.

The parts: ``readers`` (blocks of rows), ``arithmetic`` (base ± other), ``writer``
(safetensors shards) and ``output`` (the folder, renamed into place only when
complete).
"""

from __future__ import annotations

import functools
from pathlib import Path

from vicuna_tui.errors import DeltaError
from vicuna_tui.weights.arithmetic import (
    DeltaProgress,
    DeltaProgressFn,
    check_pair,
    combine,
    return_freed_memory,
)
from vicuna_tui.weights.checkpoint import Checkpoint
from vicuna_tui.weights.output import atomic_folder, write_metadata

__all__ = ["DTYPES", "DeltaError", "DeltaProgress", "apply_delta", "make_delta"]

DTYPES = ("float16", "bfloat16", "float32")


def _run(
    base_dir: Path,
    other_dir: Path,
    target: Path,
    *,
    other_role: str,
    subtract: bool,
    dtype: str = "float16",
    low_memory: bool = False,
    resize_vocab: bool = False,
    force: bool = False,
    max_shard_bytes: int = 2 * 2**30,
    progress: DeltaProgressFn | None = None,
) -> Path:
    """The output of ``base`` and ``other`` combined, at ``target`` (see apply_delta,
    make_delta)."""
    if dtype not in DTYPES:
        raise DeltaError(f"--dtype {dtype} is not supported", "use float16, bfloat16 or float32")
    if low_memory:
        return_freed_memory()
    base = Checkpoint(base_dir, "base")
    other = Checkpoint(other_dir, other_role)
    pads = check_pair(base, other, resize_vocab=resize_vocab)
    target = target.expanduser().absolute()
    with atomic_folder(target, force) as tmp:
        combine(
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
        write_metadata(tmp, other.folder, base.folder, dtype, vocab_rows, record)
    return target


# target = base + delta, tensor by tensor: apply_delta(base, delta, target, ...)
apply_delta = functools.partial(_run, other_role="delta", subtract=False)
# delta = target - base, tensor by tensor (how deltas are published):
# make_delta(base, target, delta, ...)
make_delta = functools.partial(_run, other_role="target", subtract=True)
