"""The output folder of apply-delta and make-delta, written atomically: into a hidden
folder beside the target, renamed into place only when complete, so an interrupted run,
a full disk or Ctrl-C never leaves a target that looks complete."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vicuna_tui.errors import DeltaError

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


def prepare_target(target: Path, force: bool) -> Path:

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


def finish(tmp: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.replaced-{os.getpid()}"
        os.rename(target, old)
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_metadata(
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


@contextmanager
def atomic_folder(target: Path, force: bool) -> Iterator[Path]:
    """A hidden folder to write the output into; it becomes ``target`` when the block
    ends without error, and is removed when it does not."""
    target = prepare_target(target, force)
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        finish(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise DeltaError(
                f"the disk filled up while writing {target}; nothing was written to the target",
                "free some space and run it again",
            ) from exc
        raise DeltaError(
            f"cannot write {target}: {exc.strerror or exc}",
            "check the folder's permissions and free space",
        ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
