"""``vicuna-tui apply-delta`` and ``make-delta``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vicuna_tui.engine.settings import memory_to_bytes


def build_parser(command: str) -> argparse.ArgumentParser:
    apply = command == "apply-delta"
    parser = argparse.ArgumentParser(
        prog=f"vicuna-tui {command}",
        description=(
            "Build Vicuna weights: target = base + delta, tensor by tensor."
            if apply
            else "Publish a delta: delta = target - base, tensor by tensor."
        ),
    )
    parser.add_argument("--base", required=True, help="the original model folder (LLaMA)")
    if apply:
        parser.add_argument("--delta", required=True, help="the delta folder")
        parser.add_argument("--target", required=True, help="where to write the result")
    else:
        parser.add_argument("--target", required=True, help="the fine-tuned model folder")
        parser.add_argument("--delta", required=True, help="where to write the delta")
    parser.add_argument(
        "--dtype",
        choices=("float16", "bfloat16", "float32"),
        default="float16",
        help="output precision (default float16, as FastChat)",
    )
    parser.add_argument(
        "--low-cpu-mem",
        action="store_true",
        help="reopen files per tensor: peak memory stays under twice the largest input shard",
    )
    parser.add_argument(
        "--resize-vocab",
        action="store_true",
        help="grow the base's embeddings and lm_head with zero rows to the "
        "other model's vocabulary (Vicuna v0 deltas: 32000 -> 32001)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    parser.add_argument("--max-shard-size", default="2GiB", help="output shard size (2GiB)")
    return parser


def main(command: str, argv: Sequence[str]) -> int:
    args = build_parser(command).parse_args(list(argv))
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from vicuna_tui.weights import delta as delta_mod

    out = Path(args.target if command == "apply-delta" else args.delta)
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[tensors]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(command, total=None, tensors="")

        def report(p: delta_mod.DeltaProgress) -> None:
            bar.update(
                task,
                total=p.bytes_total,
                completed=p.bytes_done,
                tensors=f"tensor {min(p.tensors_done + 1, p.tensors_total)}/{p.tensors_total}",
            )

        run = delta_mod.apply_delta if command == "apply-delta" else delta_mod.make_delta
        second = args.delta if command == "apply-delta" else args.target
        try:
            result = run(
                Path(args.base),
                Path(second),
                out,
                dtype=args.dtype,
                low_memory=args.low_cpu_mem,
                resize_vocab=args.resize_vocab,
                force=args.force,
                max_shard_bytes=memory_to_bytes(args.max_shard_size),
                progress=report,
            )
        except KeyboardInterrupt:
            bar.stop()
            print(f"interrupted: nothing was written to {out}", file=sys.stderr)
            return 130
    print(f"wrote {result}", file=sys.stderr)
    return 0
