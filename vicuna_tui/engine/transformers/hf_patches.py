"""What we change in how transformers loads, for our users' sake: quiet libraries,
progress reported to our front ends instead of tqdm bars, and reads without mmap where
a dtype conversion would otherwise copy every page twice."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from vicuna_tui.engine.progress import Progress


def quiet_libraries() -> None:
    """bitsandbytes logs a line per matmul on CPU; transformers warns about sampling flags."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="bitsandbytes")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


class ProgressBar:
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

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:  # set_description, set_postfix, refresh, ...
        return lambda *args, **kwargs: None


@contextmanager
def report_progress(report: Progress) -> Iterator[None]:
    from transformers.utils import logging as tlog

    set_hook = getattr(tlog, "set_tqdm_hook", None)
    if set_hook is None:  # older transformers: stage-level progress only
        yield
        return
    previous = set_hook(lambda factory, args, kwargs: ProgressBar(report, *args, **kwargs))
    # GGUF parsing uses tqdm.auto directly, which would write over a full-screen UI.
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        setattr(  # noqa: B010 - the module does not export the name it uses
            gguf_utils, "tqdm", lambda *args, **kwargs: ProgressBar(report, *args, **kwargs)
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
def read_without_mmap(enabled: bool) -> Iterator[None]:
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
