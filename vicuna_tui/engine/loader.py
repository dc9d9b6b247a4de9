"""Loading a model and tokenizer with torch and transformers.

Imported only when a model is loaded, so that --help, the sessions commands and the
TUI's first frame never pay for importing torch.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vicuna_tui.engine import sources
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.engine.sources import ModelSource, Progress
from vicuna_tui.errors import (
    DeviceError,
    ModelNotFoundError,
    OutOfMemoryError,
    QuantizationError,
    SettingsError,
    VicunaError,
)

_LEGACY_LLAMA_CLASSES = ("LLaMATokenizer", "LLaMATokenizerFast")
_LLAMA_SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


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


def quiet_libraries() -> None:
    """bitsandbytes logs a line per matmul on CPU; transformers warns about sampling flags."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="bitsandbytes")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads() -> int:
    """One core left free: with every core busy, one other process cuts decode 3×."""
    return max(1, cpu_cores() - 1)


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


class _ProgressBar:
    """Stands in for the tqdm bars transformers opens, and reports to our callback."""

    _STAGES: ClassVar[dict[str, str]] = {
        "Loading weights": "loading weights",
        "Converting and de-quantizing GGUF tensors...": "converting GGUF (once)",
    }

    def __init__(
        self,
        report: Progress,
        iterable: Any = None,
        desc: str | None = None,
        total: int | None = None,
        **_: Any,
    ) -> None:
        self._report = report
        self.iterable = iterable
        self.desc = self._STAGES.get(desc or "", (desc or "loading").lower())
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total = total or 0
        self.n = 0
        self._report(self.desc, 0, self.total)

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            yield item
            self.update(1)

    def update(self, n: float = 1) -> None:
        self.n += int(n)
        self._report(self.desc, self.n, self.total)

    def close(self) -> None:
        pass

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:  # set_description, set_postfix, refresh, ...
        return lambda *args, **kwargs: None


@contextmanager
def _report_progress(report: Progress) -> Iterator[None]:
    from transformers.utils import logging as tlog

    set_hook = getattr(tlog, "set_tqdm_hook", None)
    if set_hook is None:  # older transformers: stage-level progress only
        yield
        return
    previous = set_hook(lambda factory, args, kwargs: _ProgressBar(report, *args, **kwargs))
    # GGUF parsing uses tqdm.auto directly, which would write over a full-screen UI.
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        setattr(  # noqa: B010 - the module does not export the name it uses
            gguf_utils, "tqdm", lambda *args, **kwargs: _ProgressBar(report, *args, **kwargs)
        )
    try:
        yield
    finally:
        set_hook(previous)
        if gguf_tqdm is not None:
            setattr(gguf_utils, "tqdm", gguf_tqdm)  # noqa: B010


_SAFETENSORS_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}


def stored_dtypes(folder: Path) -> set[str]:
    """The dtypes of the tensors in ``folder``'s safetensors files, from their headers."""
    found: set[str] = set()
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with open(file, "rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(size))
        except (OSError, ValueError):
            continue
        found.update(
            entry["dtype"]
            for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict) and "dtype" in entry
        )
    return found


def converts_dtype(folder: Path, dtype_name: str) -> bool:
    """Whether loading ``folder`` as ``dtype_name`` converts (copies) its tensors."""
    stored = stored_dtypes(folder)
    return bool(stored) and stored != {_SAFETENSORS_DTYPES.get(dtype_name, "")}


@contextmanager
def _read_without_mmap(enabled: bool) -> Iterator[None]:
    """Read safetensors with pread instead of a memory map while loading.

    When every tensor is converted (say float32 on disk, bfloat16 wanted), a memory map
    keeps each page of the file resident until the load ends, on top of the converted
    copies: the load then peaked at 2.2x the final RSS.  Read with pread, only the tensor
    being converted is held twice.  (transformers itself reads with pread on Windows and
    MPS; this asks the same of safetensors on a CPU here.)"""
    if not enabled:
        yield
        return
    import transformers.modeling_utils as modeling_utils

    original = getattr(modeling_utils, "safe_open", None)
    if original is None:
        yield
        return

    def safe_open(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("device", "cpu") == "cpu":
            try:
                return original(*args, **{**kwargs, "backend": "pread"})
            except TypeError:  # a safetensors without the pread backend
                pass
        return original(*args, **kwargs)

    setattr(modeling_utils, "safe_open", safe_open)  # noqa: B010 (a class, for mypy)
    try:
        yield
    finally:
        setattr(modeling_utils, "safe_open", original)  # noqa: B010


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def load_tokenizer(folder: Path) -> tuple[Any, list[str]]:
    """The tokenizer, with fixes for legacy LLaMA/Vicuna conversions."""
    from transformers import AutoTokenizer

    notices: list[str] = []
    config = _read_json(folder / "tokenizer_config.json")
    special = _read_json(folder / "special_tokens_map.json")
    overrides: dict[str, str] = {}
    for key, default in _LLAMA_SPECIALS.items():
        for source in (config, special):
            value = source.get(key)
            text = value.get("content") if isinstance(value, dict) else value
            if key in source and (text is None or text == ""):
                overrides[key] = default
    if overrides:
        notices.append(
            "this checkpoint has empty special tokens; using LLaMA's "
            + ", ".join(f"{k.split('_')[0]}={v}" for k, v in sorted(overrides.items()))
            + " so replies stop"
        )
    kwargs: dict[str, Any] = dict(overrides)
    if config.get("tokenizer_class") in _LEGACY_LLAMA_CLASSES:
        import transformers

        # transformers 4 has LlamaTokenizerFast; 5 merged it into LlamaTokenizer.
        llama_class = getattr(transformers, "LlamaTokenizerFast", transformers.LlamaTokenizer)
        notices.append("legacy tokenizer class LLaMATokenizer: loading it as LlamaTokenizer")
        return llama_class.from_pretrained(str(folder), **kwargs), notices
    return AutoTokenizer.from_pretrained(str(folder), **kwargs), notices


def context_length(config: Any, tokenizer: Any) -> int:
    scaling = getattr(config, "rope_scaling", None) or {}
    factor = scaling.get("factor", 1) if isinstance(scaling, dict) else 1
    for key in (
        "max_position_embeddings",
        "max_sequence_length",
        "seq_length",
        "n_positions",
        "max_seq_len",
    ):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return int(value * (factor if isinstance(factor, (int, float)) else 1))
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return 2048


def _stop_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    ids: list[int] = []
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.append(value)
        elif isinstance(value, (list, tuple)):
            ids.extend(v for v in value if isinstance(v, int))
    return tuple(dict.fromkeys(ids))


def _quantization_config(settings: LoadSettings, device: str, dtype: Any) -> Any:
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


def _device_map(
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


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


def _oom_error(settings: LoadSettings, device: str, while_doing: str) -> OutOfMemoryError:
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
        torch.set_num_threads(settings.threads or default_threads())
    elif settings.threads:
        torch.set_num_threads(settings.threads)
    device_map, max_memory = _device_map(settings, device, torch)
    quant = _quantization_config(settings, device, dtype)

    source = sources.resolve(settings.model_path, settings.revision, report)
    folder = source.path
    converted_now = False
    with _report_progress(report):
        if source.kind == "gguf":
            folder, converted_now = sources.convert_gguf(source.path, report)
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
        kwargs: dict[str, Any] = {
            "dtype": dtype,
            "device_map": device_map,
            "low_cpu_mem_usage": True,
        }
        if max_memory is not None:
            kwargs["max_memory"] = max_memory
        if quant is not None:
            kwargs["quantization_config"] = quant
        from transformers import AutoModelForCausalLM

        dtype_name = str(dtype).replace("torch.", "")
        pread = device == "cpu" and quant is None and converts_dtype(Path(folder), dtype_name)
        try:
            with _read_without_mmap(pread):
                model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        except VicunaError:
            raise
        except Exception as exc:
            if _is_oom(exc):
                raise _oom_error(settings, device, "loading the weights") from exc
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
            ) from None
    model.eval()
    if fast_path:
        from vicuna_tui.engine import fastpath

        if fastpath.applies(model, device, dtype_name, settings.quantization):
            fastpath.optimize(model)
    placement = set(map(str, (getattr(model, "hf_device_map", None) or {}).values()))
    if device == "cuda" and placement & {"cpu", "disk"} and not settings.cpu_offloading:
        raise OutOfMemoryError(
            "the model does not fit on the GPU(s): some layers were placed on "
            + "/".join(sorted(placement & {"cpu", "disk"})),
            "raise --max-gpu-memory, use --num-gpus, --load-8bit, or allow --cpu-offloading",
        )
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
        stop_token_ids=_stop_ids(model, tokenizer),
        notices=tuple(notices),
        converted_now=converted_now,
    )
