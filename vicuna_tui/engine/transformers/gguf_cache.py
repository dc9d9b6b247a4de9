"""The GGUF conversion cache: a ``.gguf`` run on transformers is converted once into a
safetensors folder (transformers parses GGUF metadata slowly), keyed on the file's size,
modification time and SHA-256, and loaded from that folder from then on.  Conversions
run under a lock, so simultaneous first runs convert once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vicuna_tui import filelock, locations, writable
from vicuna_tui.engine.progress import Progress, quiet
from vicuna_tui.errors import SettingsError


def _sha256(path: Path, report: Progress) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
            done += len(chunk)
            report("checking GGUF file", done, total)
    return digest.hexdigest()


def _index_path(root: Path) -> Path:
    return root / "index.json"


def _read_index(root: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_index_path(root).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_index(root: Path, index: dict[str, dict[str, Any]]) -> None:
    tmp = root / f".index-{os.getpid()}.json"
    tmp.write_text(json.dumps(index, indent=1))
    locations.private_file(tmp)
    os.replace(tmp, _index_path(root))


def gguf_cache_key(path: Path, report: Progress | None = None) -> tuple[str, bool]:
    """(sha256 of the file, whether it was known already) for the file as it is now.

    The hash is remembered against the path, size and mtime, so an unchanged file is
    not read again; any change to size or mtime makes it hashed afresh.
    """
    root = locations.gguf_cache_dir()
    stat = path.stat()
    entry = _read_index(root).get(str(path))
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return str(entry["sha256"]), True
    return _sha256(path, quiet(report)), False


def converted_folder_for(path: Path, digest: str) -> Path:
    return locations.gguf_cache_dir() / f"{path.stem}-{digest[:16]}"


def cached_conversion(path: Path) -> Path | None:
    """The converted folder for ``path`` if one is ready (no hashing if unchanged)."""
    digest, _ = gguf_cache_key(path)
    folder = converted_folder_for(path, digest)
    return folder if (folder / "conversion.json").is_file() else None


def convert_gguf(path: Path, report: Progress | None = None) -> tuple[Path, bool]:
    """A safetensors folder with the same weights and tokenizer as ``path``.

    Returns (folder, converted_now).  The conversion is written to a temporary folder
    and renamed into place only when complete.
    """
    progress = quiet(report)
    try:
        root = locations.ensure_private_dir(locations.gguf_cache_dir())
        digest, _known = gguf_cache_key(path, progress)
        folder = converted_folder_for(path, digest)
        stat = path.stat()
        fresh = False
        if not (folder / "conversion.json").is_file():
            # One process converts; the others wait, then use its result.
            waiting = "waiting for another vicuna-tui to finish converting"
            with filelock.held(root / f".{folder.name}.lock", lambda: progress(waiting, 0, 1)):
                if not (folder / "conversion.json").is_file():
                    _convert(path, folder, root, digest, progress)
                    fresh = True
        with filelock.held(root / ".index.lock"):
            index = _read_index(root)
            index[str(path)] = {
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "sha256": digest,
                "folder": folder.name,
            }
            _write_index(root, index)
    except OSError as exc:
        problem = writable.os_error_problem(exc, locations.gguf_cache_dir() / "x")
        raise SettingsError(
            f"cannot convert {path.name} into the cache at {locations.gguf_cache_dir()}: {problem}",
            f"{writable.fix_for(problem)}; or run the GGUF as it is on llama.cpp "
            "(--backend llamacpp), which needs no conversion",
        ) from None
    return folder, fresh


CONVERTING = ".converting-"  # a conversion's folder until it is complete: .converting-PID-…


def sweep_abandoned(root: Path) -> list[Path]:
    """Remove the half-made folders of conversions whose process is gone (killed, or
    stopped by Ctrl-C before it could clean up); the ones removed."""
    import psutil

    removed = []
    for folder in root.glob(f"{CONVERTING}*"):
        pid = folder.name[len(CONVERTING) :].split("-", 1)[0]
        if pid.isdigit() and psutil.pid_exists(int(pid)):
            continue  # still being written (or another process with that id: keep it)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _convert(path: Path, folder: Path, root: Path, digest: str, progress: Progress) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress("converting GGUF (once)", 0, 1)
    sweep_abandoned(root)
    tmp = Path(tempfile.mkdtemp(prefix=f"{CONVERTING}{os.getpid()}-", dir=root))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
        # transformers refuses save_pretrained on a GGUF-loaded model while it still
        # carries the GGUF quantizer; the weights are already dequantized.
        setattr(model, "hf_quantizer", None)  # noqa: B010
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / "conversion.json").write_text(
            json.dumps({"gguf": str(path), "sha256": digest, "size": path.stat().st_size})
        )
        for child in tmp.iterdir():
            locations.private_file(child)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    progress("converting GGUF (once)", 1, 1)
