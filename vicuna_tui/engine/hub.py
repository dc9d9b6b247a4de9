"""The Hugging Face Hub: the offline switch, the cache, and fetching a model's files.

huggingface_hub is imported only here, and only when it is needed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vicuna_tui.engine.progress import Progress
from vicuna_tui.errors import ModelNotFoundError, OfflineError


def is_hub_id(text: str) -> bool:
    """Whether ``text`` reads as owner/name (and not as a relative path)."""
    return bool(HUB_ID_RE.match(text)) and not text.startswith((".", "~"))


HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


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


def hub_offline() -> bool:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def has_weights(folder: Path) -> bool:
    return any(p.suffix in _WEIGHT_SUFFIXES for p in folder.iterdir() if p.is_file())


def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (OSError, ValueError):  # not in the cache (or not a valid repo id)
        return None
    if (folder / "config.json").is_file() and has_weights(folder):
        return folder
    return None


def download(repo_id: str, revision: str | None, progress: Progress) -> Path:
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
        ggufs = hub_gguf_names(repo_id, revision)
        if ggufs:
            raise GGUFChoiceError(repo_id, ggufs)
        raise ModelNotFoundError(
            f"{repo_id} has no .safetensors or .bin weights", "pick a transformers model"
        )
    return folder


def hub_gguf_names(repo_id: str, revision: str | None) -> list[str]:
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


def fetch_gguf(repo_id: str, gguf_file: str, revision: str | None, report: Progress) -> Path:
    """One .gguf of a Hub repo: from the cache, else downloaded into it."""
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
    return found
