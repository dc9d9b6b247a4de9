"""Where a transformers model runs: the device and dtype, how its
layers are spread over GPUs, 8/4-bit quantization, and what to say when it does not
fit."""

from __future__ import annotations

from typing import Any

from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.errors import DeviceError, OutOfMemoryError, QuantizationError, SettingsError


def available_devices(torch: Any) -> list[str]:
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def pick_device(requested: str, torch: Any) -> str:
    found = available_devices(torch)
    if requested == "auto":
        return found[0]
    if requested not in found:
        extra = ""
        if requested == "cuda" and getattr(torch.version, "cuda", None) is None:
            extra = " (this torch build has no CUDA support)"
        raise DeviceError(
            f"--device {requested} was asked for but is not available here{extra}",
            f"available: {', '.join(found)}; use --device {found[0]} or --device auto",
        )
    return requested


def resolve_dtype(name: str, device: str, torch: Any) -> Any:
    if name == "auto":
        return torch.float16 if device in ("cuda", "mps") else torch.float32
    dtype = getattr(torch, name)
    if dtype is torch.bfloat16 and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise SettingsError("this GPU does not support bfloat16", "use --dtype float16")
    return dtype


def quantization_config(settings: LoadSettings, device: str, dtype: Any) -> Any:
    if not settings.quantization:
        return None
    flag = f"--load-{settings.quantization}"
    if device == "mps":
        raise QuantizationError(
            f"{flag} is not available on mps (bitsandbytes has no mps support)",
            "drop the flag, or use --device cpu",
        )
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except Exception as exc:  # ImportError, or a broken native library
        raise QuantizationError(
            f"{flag} needs bitsandbytes, which cannot be used here ({type(exc).__name__}: {exc})",
            "pip install bitsandbytes, or drop the flag",
        ) from exc
    if settings.load_8bit:
        return BitsAndBytesConfig(
            load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=settings.cpu_offloading
        )
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4"
    )


def device_map(
    settings: LoadSettings, device: str, torch: Any
) -> tuple[str | dict[str, int | str], dict[int | str, int | str] | None]:
    if device != "cuda":
        if settings.cpu_offloading:
            raise SettingsError(
                "--cpu-offloading needs a CUDA device", "drop --cpu-offloading on cpu and mps"
            )
        if settings.num_gpus > 1 or settings.max_gpu_memory:
            raise SettingsError(
                f"--num-gpus and --max-gpu-memory need a CUDA device (got {device})",
                "drop them, or use --device cuda",
            )
        return {"": device}, None
    visible = torch.cuda.device_count()
    if settings.num_gpus > visible:
        raise DeviceError(
            f"--num-gpus {settings.num_gpus} but only {visible} GPU(s) are visible",
            f"use --num-gpus {visible} or fewer (check --gpus / CUDA_VISIBLE_DEVICES)",
        )
    if settings.num_gpus == 1 and not settings.max_gpu_memory and not settings.cpu_offloading:
        return {"": 0}, None  # straight onto the GPU, never staged in system RAM
    max_memory: dict[int | str, int | str] = {}
    for index in range(settings.num_gpus):
        if settings.max_gpu_memory:
            max_memory[index] = settings.max_gpu_memory.replace(" ", "")
        else:
            free, _total = torch.cuda.mem_get_info(index)
            max_memory[index] = int(free * 0.9)
    if settings.cpu_offloading:
        import psutil

        max_memory["cpu"] = int(psutil.virtual_memory().available * 0.8)
    return "auto", max_memory


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


def oom_error(settings: LoadSettings, device: str, while_doing: str) -> OutOfMemoryError:
    hints = []
    if not settings.quantization:
        hints.append("--load-8bit (or --load-4bit)")
    if device == "cuda":
        hints.append("--num-gpus N to spread it over more GPUs")
        if not settings.cpu_offloading:
            hints.append("--cpu-offloading")
    else:
        hints.append("a smaller model")
    return OutOfMemoryError(
        f"out of memory while {while_doing} on {device}", "try " + ", ".join(hints)
    )
