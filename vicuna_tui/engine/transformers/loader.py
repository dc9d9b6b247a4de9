"""Loading a model and tokenizer with torch and transformers.

Imported only when a model is loaded, so that --help, the sessions commands and the
TUI's first frame never pay for importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicuna_tui.engine import sources
from vicuna_tui.engine.progress import Progress
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.engine.sources import ModelSource
from vicuna_tui.engine.threads import default_threads
from vicuna_tui.engine.transformers import gguf_cache
from vicuna_tui.engine.transformers.devices import (
    device_map,
    is_oom,
    oom_error,
    pick_device,
    quantization_config,
    resolve_dtype,
)
from vicuna_tui.engine.transformers.hf_patches import (
    converts_dtype,
    quiet_libraries,
    read_without_mmap,
    report_progress,
)
from vicuna_tui.engine.transformers.tokenizer_fixes import context_length, load_tokenizer, stop_ids
from vicuna_tui.errors import ModelNotFoundError, OutOfMemoryError, VicunaError


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: ModelSource
    device: str
    dtype: str
    quantization: str | None
    context_length: int
    stop_token_ids: tuple[int, ...]
    notices: tuple[str, ...]
    converted_now: bool = False

    @property
    def input_device(self) -> Any:
        return self.model.get_input_embeddings().weight.device


def load(
    settings: LoadSettings, progress: Progress | None = None, *, fast_path: bool = True
) -> LoadedModel:
    """Load the model and tokenizer that ``settings`` describe.

    ``fast_path``: repack the weights for faster single-token decode where that is
    measured to help (CPU, float32; see ``fastpath``)."""

    report: Progress = progress or (lambda stage, done, total: None)
    settings.check()
    report("importing torch", 0, 1)
    import torch

    quiet_libraries()
    report("importing torch", 1, 1)
    device = pick_device(settings.device, torch)
    dtype = resolve_dtype(settings.dtype, device, torch)
    if device == "cpu":
        torch.set_num_threads(settings.threads or default_threads())  # until attach measures
    elif settings.threads:
        torch.set_num_threads(settings.threads)
    kwargs = _placement(settings, device, dtype, torch)
    quant = kwargs.get("quantization_config")

    source = sources.resolve(settings.model_path, settings.revision, report)
    folder = source.path
    converted_now = False
    dtype_name = str(dtype).replace("torch.", "")
    with report_progress(report):
        if source.kind == "gguf":
            folder, converted_now = gguf_cache.convert_gguf(source.path, report)
        tokenizer, notices = _tokenizer(folder, report)
        pread = device == "cpu" and quant is None and converts_dtype(Path(folder), dtype_name)
        model = _weights(folder, kwargs, settings, device, pread=pread)
    model.eval()
    if fast_path:
        from vicuna_tui.engine.transformers import fastpath

        if fastpath.applies(model, device, dtype_name, settings.quantization):
            fastpath.optimize(model)
    _check_placement(model, settings, device)
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=source,
        device=device
        if device != "cuda" or settings.num_gpus == 1
        else f"cuda×{settings.num_gpus}",
        dtype=dtype_name,
        quantization=settings.quantization,
        context_length=context_length(model.config, tokenizer),
        stop_token_ids=stop_ids(model, tokenizer),
        notices=tuple(notices),
        converted_now=converted_now,
    )


def _placement(settings: LoadSettings, device: str, dtype: Any, torch: Any) -> dict[str, Any]:
    """``from_pretrained``'s arguments for where and how the weights go."""
    placement, max_memory = device_map(settings, device, torch)
    kwargs: dict[str, Any] = {"dtype": dtype, "device_map": placement, "low_cpu_mem_usage": True}
    if max_memory is not None:
        kwargs["max_memory"] = max_memory
    quant = quantization_config(settings, device, dtype)
    if quant is not None:
        kwargs["quantization_config"] = quant
    return kwargs


def _tokenizer(folder: Path, report: Progress) -> tuple[Any, list[str]]:
    report("loading tokenizer", 0, 1)
    try:
        tokenizer, notices = load_tokenizer(folder)
    except VicunaError:
        raise
    except Exception as exc:
        raise ModelNotFoundError(
            f"cannot load the tokenizer from {folder} ({type(exc).__name__}: {exc})",
            "check that the folder holds tokenizer files (tokenizer.json or "
            "tokenizer.model with tokenizer_config.json)",
        ) from exc
    report("loading tokenizer", 1, 1)
    return tokenizer, notices


def _weights(
    folder: Path, kwargs: dict[str, Any], settings: LoadSettings, device: str, *, pread: bool
) -> Any:
    """The model's weights, with every way that can fail said in our words."""
    from transformers import AutoModelForCausalLM

    try:
        with read_without_mmap(pread):
            return AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except VicunaError:
        raise
    except Exception as exc:
        if is_oom(exc):
            raise oom_error(settings, device, "loading the weights") from exc
        text = str(exc)
        if "offload" in text.lower() or "dispatched on the CPU" in text:
            raise OutOfMemoryError(
                f"the model does not fit on {settings.num_gpus} GPU(s)"
                + (f" with {settings.max_gpu_memory} each" if settings.max_gpu_memory else ""),
                "raise --max-gpu-memory, add GPUs with --num-gpus, use --load-8bit / "
                "--load-4bit, or allow --cpu-offloading",
            ) from exc
        raise ModelNotFoundError(
            f"cannot load the model from {folder} ({type(exc).__name__}: {text[:300]})",
            "check that it is a causal language model that transformers supports",
        ) from exc


def _check_placement(model: Any, settings: LoadSettings, device: str) -> None:
    """Refuse a model that accelerate spread onto the CPU or disk unasked."""
    placed = set(map(str, (getattr(model, "hf_device_map", None) or {}).values()))
    if device == "cuda" and placed & {"cpu", "disk"} and not settings.cpu_offloading:
        raise OutOfMemoryError(
            "the model does not fit on the GPU(s): some layers were placed on "
            + "/".join(sorted(placed & {"cpu", "disk"})),
            "raise --max-gpu-memory, use --num-gpus, --load-8bit, or allow --cpu-offloading",
        )
