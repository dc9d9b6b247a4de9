"""Fitting a GGUF model to this machine: free memory, GPU devices, prefill chunks, and
what to say when llama.cpp cannot load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vicuna_tui.engine import gguf_file
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.errors import (
    DeviceError,
    ModelNotFoundError,
    OutOfMemoryError,
    SettingsError,
    VicunaError,
)

DEFAULT_CONTEXT_CAP = 4096  # a full 32k KV cache costs gigabytes; --context raises it
PREFILL_CHUNK = 512  # tokens per prefill request on a GPU: the longest wait for a cancel


def prefill_chunk(info: gguf_file.GGUFInfo, gpu_layers: int) -> int:
    """Tokens per prefill request: about a second or two of CPU prefill on a laptop
    (a 7B Q4 model prefills some 20-40 tokens/s on a few cores)."""
    if gpu_layers:
        return PREFILL_CHUNK
    if info.tensor_bytes < 2**30:
        return 256  # about 1.3 s here for SmolLM2; 6-8% less prefill than unchunked
    return 128 if info.tensor_bytes < 4 * 2**30 else 64


def devices(xllamacpp: Any) -> list[dict[str, Any]]:
    try:
        return list(xllamacpp.get_device_info())
    except Exception:  # noqa: BLE001 - a build without device queries: no GPU to offer
        return []


# Bytes per cached K or V element: f16, and ggml's blocks of 32 (a scale and the values).
KV_ELEMENT_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


def kv_cache_bytes(info: gguf_file.GGUFInfo, context: int, kv_type: str = "f16") -> int:
    """The KV cache of a ``context``-token context (K and V in ``kv_type``)."""
    meta, arch = info.metadata, info.architecture
    blocks = info.block_count or 0
    heads = meta.get(f"{arch}.attention.head_count") or 1
    kv_heads = meta.get(f"{arch}.attention.head_count_kv") or heads
    width = meta.get(f"{arch}.embedding_length") or 0
    head_dim = meta.get(f"{arch}.attention.key_length") or (width // max(1, int(heads)))
    elements = context * blocks * int(kv_heads) * int(head_dim) * 2
    return int(elements * KV_ELEMENT_BYTES.get(kv_type, 2.0))


# llama.cpp sets aside the KV state of a prompt when another takes its slot, and answers
# it again from there (switching chats, bench questions with a shared system prompt).
PROMPT_CACHE_CONTEXTS = 4  # room for this many full contexts: a few chats
PROMPT_CACHE_SHARE = 0.25  # and at most this share of the memory free after the model
PROMPT_CACHE_MAX_MIB = 8192  # llama.cpp's own default, the most we choose


def prompt_cache_mib(
    info: gguf_file.GGUFInfo, context: int, kv_type: str, gpu_layers: int, fixed: int | None
) -> int:
    """MiB of RAM for prompts set aside: ``fixed`` (--prompt-cache-mib), or a few full
    contexts, at most a quarter of the memory that stays free once the model is in."""
    if fixed is not None:
        return fixed
    import psutil

    free = psutil.virtual_memory().available - model_bytes(info, context, kv_type, gpu_layers)
    room = max(0, free) * PROMPT_CACHE_SHARE
    want = PROMPT_CACHE_CONTEXTS * kv_cache_bytes(info, context, kv_type)
    return int(min(want, room, PROMPT_CACHE_MAX_MIB * 2**20) // 2**20)


def model_bytes(info: gguf_file.GGUFInfo, context: int, kv_type: str, gpu_layers: int) -> int:
    """RAM the model needs: its weights and KV cache, less the share on a GPU."""
    need = info.tensor_bytes + kv_cache_bytes(info, context, kv_type)
    return int(need * _on_cpu(info, gpu_layers))


def _on_cpu(info: gguf_file.GGUFInfo, gpu_layers: int) -> float:
    return 1.0 - min(1.0, gpu_layers / max(1, (info.block_count or 0) + 1))


BRANCH_SLOTS = 2  # KV caches kept: the branch shown and the one left last
BRANCH_CACHE_SHARE = 0.1  # of the memory free, the most the second cache may take
BRANCH_CACHE_MAX = 512 * 2**20  # and at most this: a 7B model without GQA keeps one


def branch_slots(
    info: gguf_file.GGUFInfo, context: int, gpu_layers: int, kv_type: str = "f16"
) -> int:
    """How many KV caches to keep, so that switching back to the branch left last
    finds it cached: two on a CPU when the second is small (at most BRANCH_CACHE_MAX,
    and a tenth of the memory free), else one; a GPU's memory is left to the model."""
    import psutil

    if gpu_layers > 0:
        return 1
    room = min(psutil.virtual_memory().available * BRANCH_CACHE_SHARE, BRANCH_CACHE_MAX)
    return BRANCH_SLOTS if kv_cache_bytes(info, context, kv_type) <= room else 1


def check_memory(
    info: gguf_file.GGUFInfo,
    context: int,
    gpu_layers: int,
    kv_type: str = "f16",
    prompt_cache: int = 0,
    free: int | None = None,
    extra: int = 0,
) -> None:
    """Refuse a model that cannot fit in the memory this machine has free: its weights
    and KV cache (less what goes to a GPU), the prompt cache (``prompt_cache`` MiB) and
    ``extra`` bytes (a draft model's weights and KV cache)."""
    if free is None:
        import psutil

        free = int(psutil.virtual_memory().available)
    kv_bytes = kv_cache_bytes(info, context, kv_type)
    on_cpu = _on_cpu(info, gpu_layers)
    need = model_bytes(info, context, kv_type, gpu_layers) + prompt_cache * 2**20 + extra
    if need > free:
        parts = [
            f"{size(info.tensor_bytes * on_cpu)} of weights",
            f"{size(kv_bytes * on_cpu)} of {kv_type} KV cache for a {context}-token context",
        ]
        if extra:
            parts.append(f"{size(extra)} for the draft model")
        if prompt_cache:
            parts.append(f"{size(prompt_cache * 2**20)} of prompt cache")
        fixes = ["a smaller --context"]
        if kv_type == "f16":
            fixes.append("--kv-type q8_0 (half the KV cache)")
        if prompt_cache:
            fixes.append("a smaller --prompt-cache-mib (0 = off)")
        fixes += ["a smaller quantization (e.g. Q4_K_M)", "layers on a GPU with --gpu-layers"]
        raise OutOfMemoryError(
            f"{info.path.name} needs about {size(need)} of memory "
            f"({', '.join(parts)}); {size(free)} is free",
            "try " + ", ".join(fixes),
        )


def size(count: float) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def load_error(path: Path, info: gguf_file.GGUFInfo) -> VicunaError:
    known = gguf_file.known_architectures()
    if known is not None and not known(info.architecture):
        return ModelNotFoundError(
            f"{path} is a {info.architecture!r} model, an architecture this llama.cpp "
            "does not know",
            "update xllamacpp (`pip install -U xllamacpp`), or use --backend transformers",
        )
    return ModelNotFoundError(
        f"llama.cpp could not load {path}",
        "run with --debug to see llama.cpp's reasons (or read engine.log in the TUI); "
        "the file may be damaged or made for a newer llama.cpp",
    )


def notices(settings: LoadSettings, info: gguf_file.GGUFInfo) -> list[str]:
    """What the transformers-only flags given do not do for a GGUF."""
    notes: list[str] = []
    quant = info.file_type or "its own"
    if settings.quantization:
        notes.append(
            f"--load-{settings.quantization} does not apply to a GGUF: the file's own "
            f"quantization ({quant}) is used"
        )
    if settings.dtype != "auto":
        notes.append(f"--dtype {settings.dtype} does not apply to a GGUF ({quant} weights)")
    if settings.compile:
        notes.append("--compile is for the transformers backend; llama.cpp ignores it")
    if settings.cpu_offloading:
        notes.append("--cpu-offloading: with llama.cpp, --gpu-layers N sets what runs where")
    return notes


def placement(
    settings: LoadSettings,
    xllamacpp: Any,
    info: gguf_file.GGUFInfo,
    context: int,
    notes: list[str],
) -> tuple[int, str]:
    """(layers on the GPU, device label) for the settings, this llama.cpp build and the
    memory its GPUs have free."""
    if settings.device == "cpu":
        if settings.gpu_layers:
            raise SettingsError(
                "--gpu-layers needs a GPU, and --device cpu was asked for",
                "drop --device cpu, or --gpu-layers",
            )
        return 0, "cpu"
    kinds = xllamacpp.ggml_backend_dev_type
    wanted = (kinds.GGML_BACKEND_DEVICE_TYPE_GPU, kinds.GGML_BACKEND_DEVICE_TYPE_IGPU)
    gpus = [d for d in devices(xllamacpp) if d.get("type") in wanted]
    if not gpus:
        if settings.device in ("cuda", "mps") or settings.gpu_layers:
            flag = (
                f"--device {settings.device}"
                if settings.device != "auto"
                else f"--gpu-layers {settings.gpu_layers}"
            )
            raise DeviceError(
                f"{flag} was asked for but is not available here: this llama.cpp build "
                "(xllamacpp) sees no GPU",
                "install xllamacpp's CUDA or Metal build (see its README), "
                "or run on the CPU (--device cpu)",
            )
        return 0, "cpu"
    if settings.num_gpus > len(gpus):
        raise DeviceError(
            f"--num-gpus {settings.num_gpus} was asked for; llama.cpp sees {len(gpus)}",
            f"use --num-gpus {len(gpus)} or fewer",
        )
    blocks = (info.block_count or 0) + 1  # the output layer counts as one
    layers = blocks if settings.gpu_layers is None else min(settings.gpu_layers, blocks)
    used = gpus[: settings.num_gpus] if settings.num_gpus > 1 else gpus[:1]
    layers = fit_gpu_layers(
        info, context, settings.kv_type, layers, used, settings.gpu_layers is not None, notes
    )
    name = str(gpus[0].get("name") or "gpu").lower()
    return layers, name if layers else "cpu"


GPU_SHARE = 0.9  # of a GPU's free memory, what the layers may take: the rest is for
# llama.cpp's compute buffers and the CUDA context


def fit_gpu_layers(
    info: gguf_file.GGUFInfo,
    context: int,
    kv_type: str,
    layers: int,
    gpus: list[dict[str, Any]],
    chosen: bool,
    notes: list[str],
) -> int:
    """The layers to offload, checked against the GPUs' free memory: weights and KV cache
    of each layer. Chosen by the user (--gpu-layers) and too many: refused, naming the
    number that fits. Chosen by us: as many as fit, the rest on the CPU, with a note."""
    free = sum(int(gpu.get("memory_free") or 0) for gpu in gpus)
    if not layers or free <= 0:  # a build that does not report free memory: let it try
        return layers
    blocks = (info.block_count or 0) + 1
    weights, kv = info.tensor_bytes / blocks, kv_cache_bytes(info, context, kv_type) / blocks
    fit = min(blocks, int(free * GPU_SHARE // max(1.0, weights + kv)))
    if layers <= fit:
        return layers
    where = f"{len(gpus)} GPUs" if len(gpus) > 1 else str(gpus[0].get("name") or "the GPU")
    if not chosen:
        notes.append(
            f"{fit} of {blocks} layers fit in the {size(free)} free on {where}; the rest "
            "run on the CPU (slower). --gpu-layers N chooses, a smaller --context or "
            "--kv-type q8_0 makes room"
        )
        return fit
    raise OutOfMemoryError(
        f"--gpu-layers {layers}: {info.path.name} needs about {size(layers * (weights + kv))} "
        f"on the GPU ({size(layers * weights)} of weights, {size(layers * kv)} of {kv_type} "
        f"KV cache for a {context}-token context); {where} has {size(free)} free",
        f"try --gpu-layers {fit}"
        + (" (the rest on the CPU)" if fit else " (the CPU only)")
        + ", a smaller --context"
        + (", --kv-type q8_0" if kv_type == "f16" else "")
        + " or a smaller quantization",
    )


def context_size(settings: LoadSettings, info: gguf_file.GGUFInfo, notes: list[str]) -> int:
    """The context to run with: --context, else the trained one up to the cap."""
    trained = info.context_length or 2048
    if settings.context and settings.context > trained:
        notes.append(
            f"--context {settings.context} is more than the {trained} tokens this model "
            "was trained on: replies past that point may degrade"
        )
    return settings.context or min(trained, DEFAULT_CONTEXT_CAP)
