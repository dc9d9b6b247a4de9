"""Which local backend runs a model: llama.cpp for a GGUF, transformers otherwise.

``--backend auto`` (the default) picks llama.cpp for a ``.gguf`` file, a Hub repo with
``--gguf-file``, and the default model's packaged GGUF, when xllamacpp is installed;
``--backend transformers`` keeps the GGUF-to-safetensors conversion path.
"""

from __future__ import annotations

import importlib.util

from vicuna_tui.engine import sources
from vicuna_tui.engine.backend import Backend
from vicuna_tui.engine.settings import LoadSettings

TRANSFORMERS = "transformers"
LLAMACPP = "llamacpp"


def llamacpp_installed() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def engine_for(settings: LoadSettings) -> str:
    """ "transformers" or "llamacpp", for these settings (never imports either)."""
    if settings.backend == LLAMACPP:
        return LLAMACPP
    if settings.backend == TRANSFORMERS:
        return TRANSFORMERS
    if settings.model_path is None and settings.gguf_file is None:
        # The default model: its packaged GGUF on llama.cpp when both are here.
        if llamacpp_installed() and sources.find_packaged_gguf() is not None:
            return LLAMACPP
        return TRANSFORMERS
    if sources.wants_gguf(settings.model_path, settings.gguf_file) and (
        llamacpp_installed() or settings.gguf_file
    ):
        return LLAMACPP
    return TRANSFORMERS


def local_backend(settings: LoadSettings, *, native_log: bool = False) -> Backend:
    """The in-process backend for a local model."""
    if engine_for(settings) == LLAMACPP:
        from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend

        return LlamaCppBackend(settings, native_log=native_log)
    from vicuna_tui.engine.transformers.backend import LocalBackend

    return LocalBackend(settings)


ENGINE_LABELS = {LLAMACPP: "llama.cpp", TRANSFORMERS: "transformers"}


def describe_plan(settings: LoadSettings) -> str:
    """What is about to load, in words, before anything is loaded (first screen)."""
    chosen = engine_for(settings)
    engine = ENGINE_LABELS[chosen]
    if settings.model_path is None:
        model = f"{sources.DEFAULT_NAME} (the default model)"
        if chosen == LLAMACPP:
            return (
                f"{model} on {engine}, from the GGUF in the {sources.DEFAULT_GGUF_PACKAGE} package"
            )
        return f"{model} on {engine}"
    file = f" / {settings.gguf_file}" if settings.gguf_file else ""
    return f"{settings.model_path}{file} on {engine}"
