"""What a ``.gguf`` file says about itself, read without torch, numpy or llama.cpp.

The llama.cpp backend needs a few facts before it loads a model: that the file is a
complete GGUF (llama.cpp itself only says "failed to load"), its architecture, trained
context, quantization type, chat template and special tokens.  This reads the header
and metadata, and checks that every tensor's data lies inside the file.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vicuna_tui.errors import ModelNotFoundError

MAGIC = b"GGUF"
_HINT_NOT_GGUF = (
    "pass a .gguf model file (as llama.cpp and ollama use), or a Hugging Face model folder"
)
_HINT_REDOWNLOAD = "download the file again (it may be cut short), or pick another .gguf"

# ggml tensor types: (elements per block, bytes per block).  Checked against the gguf
# package's own table in the tests.
TENSOR_TYPE_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    9: (32, 40),  # Q8_1
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    16: (256, 66),  # IQ2_XXS
    17: (256, 74),  # IQ2_XS
    18: (256, 98),  # IQ3_XXS
    19: (256, 50),  # IQ1_S
    20: (32, 18),  # IQ4_NL
    21: (256, 110),  # IQ3_S
    22: (256, 82),  # IQ2_S
    23: (256, 136),  # IQ4_XS
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    29: (256, 56),  # IQ1_M
    30: (1, 2),  # BF16
    34: (256, 54),  # TQ1_0
    35: (256, 66),  # TQ2_0
    39: (32, 17),  # MXFP4
}

# general.file_type: what the file as a whole is quantized to (llama.cpp's names).
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}

# metadata value types
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY = range(10)
_UINT64, _INT64, _FLOAT64 = 10, 11, 12
_SCALARS: dict[int, str] = {
    _UINT8: "<B",
    _INT8: "<b",
    _UINT16: "<H",
    _INT16: "<h",
    _UINT32: "<I",
    _INT32: "<i",
    _FLOAT32: "<f",
    _BOOL: "<?",
    _UINT64: "<Q",
    _INT64: "<q",
    _FLOAT64: "<d",
}
# Arrays kept whole (the vocabulary, for the names of special tokens); others skipped.
_KEEP_ARRAYS = ("tokenizer.ggml.tokens",)
_MAX_COUNT = 1 << 32


class BadGGUF(ModelNotFoundError):
    """The file is not a complete, readable GGUF."""


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensor_count: int
    tensor_bytes: int
    file_size: int
    tokens: Vocabulary = field(default_factory=lambda: Vocabulary(), repr=False)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str | None:
        value = self.metadata.get("general.name")
        return str(value) if value else None

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if isinstance(value, int) and value > 0 else None

    @property
    def block_count(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.block_count")
        return int(value) if isinstance(value, int) else None

    @property
    def file_type(self) -> str | None:
        value = self.metadata.get("general.file_type")
        if isinstance(value, int):
            return FILE_TYPES.get(value, f"type {value}")
        return None

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) and value.strip() else None

    def token(self, key: str) -> str | None:
        """The text of a special token named in the metadata (e.g. ``bos``)."""
        index = self.metadata.get(f"tokenizer.ggml.{key}_token_id")
        if isinstance(index, int) and 0 <= index < len(self.tokens):
            return self.tokens[index]
        return None

    @property
    def add_bos(self) -> bool:
        value = self.metadata.get("tokenizer.ggml.add_bos_token")
        if isinstance(value, bool):
            return value
        # llama.cpp's default: sentencepiece vocabularies add BOS, BPE ones do not.
        return self.metadata.get("tokenizer.ggml.model") == "llama"


class _Reader:
    """Reads the header from a memory map: no copies, strings decoded only when kept."""

    def __init__(self, data: Any, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0
        self.size = len(data)

    def need(self, count: int) -> int:
        start = self.pos
        if count < 0 or start + count > self.size:
            raise BadGGUF(f"{self.path} is cut short: it ends inside its header", _HINT_REDOWNLOAD)
        self.pos = start + count
        return start

    def unpack(self, fmt: str) -> Any:
        return struct.unpack_from(fmt, self.data, self.need(struct.calcsize(fmt)))[0]

    def count(self) -> int:
        value = int(self.unpack("<Q"))
        if value >= _MAX_COUNT:
            raise BadGGUF(f"{self.path} has a damaged header", _HINT_REDOWNLOAD)
        return value

    def raw_string(self) -> tuple[int, int]:
        length = self.count()
        return self.need(length), length

    def strings(self, length: int, keep: bool) -> list[tuple[int, int]] | int:
        """An array of strings: their (start, length) spans when kept, else its length."""
        data, pos, size = self.data, self.pos, self.size
        unpack = struct.Struct("<Q").unpack_from
        spans: list[tuple[int, int]] = []
        for _ in range(length):
            if pos + 8 > size:
                pos = size + 1
                break
            count = unpack(data, pos)[0]
            if keep:
                spans.append((pos + 8, count))
            pos += 8 + count
        self.need(pos - self.pos)
        return spans if keep else length

    def string(self) -> str:
        start, length = self.raw_string()
        return bytes(self.data[start : start + length]).decode("utf-8", errors="replace")

    def value(self, kind: int, keep: bool) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item = int(self.unpack("<I"))
            length = self.count()
            if item == _STRING:
                return self.strings(length, keep)
            if item != _STRING and length <= 64:
                return [self.value(item, False) for _ in range(length)]
            if item in _SCALARS:
                self.need(struct.calcsize(_SCALARS[item]) * length)
            else:
                for _ in range(length):
                    self.value(item, False)
            return length
        raise BadGGUF(f"{self.path} has a damaged header (value type {kind})", _HINT_REDOWNLOAD)


def read(path: Path) -> GGUFInfo:
    """The file's metadata, or BadGGUF naming what is wrong with it."""
    import mmap

    try:
        size = path.stat().st_size
        if size < 24:
            raise BadGGUF(f"{path} is not a GGUF file (it is {size} bytes)", _HINT_NOT_GGUF)
        with path.open("rb") as handle:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                return _read(_Reader(data, path), path, size)
            finally:
                data.close()
    except OSError as exc:
        raise ModelNotFoundError(
            f"cannot read {path}: {exc.strerror or exc}", "check the path and its permissions"
        ) from None


def _read(reader: _Reader, path: Path, size: int) -> GGUFInfo:
    if bytes(reader.data[:4]) != MAGIC:
        raise BadGGUF(f"{path} is not a GGUF file (it does not start with 'GGUF')", _HINT_NOT_GGUF)
    reader.pos = 4
    version = int(reader.unpack("<I"))
    if version not in (2, 3):
        raise BadGGUF(
            f"{path} is GGUF version {version}, which this build cannot read",
            "use a GGUF v3 file (re-convert it with a current llama.cpp)",
        )
    tensor_count = reader.count()
    kv_count = reader.count()
    metadata: dict[str, Any] = {}
    tokens = Vocabulary()
    for _ in range(kv_count):
        key = reader.string()
        kind = int(reader.unpack("<I"))
        value = reader.value(kind, key in _KEEP_ARRAYS)
        if key == "tokenizer.ggml.tokens" and isinstance(value, list):
            blob = bytes(reader.data[value[0][0] : value[-1][0] + value[-1][1]]) if value else b""
            tokens = Vocabulary(blob, value)
            value = len(value)
        metadata[key] = value
    extents: list[tuple[int, int]] = []
    for _ in range(tensor_count):
        reader.string()
        dims = int(reader.unpack("<I"))
        if dims > 8:
            raise BadGGUF(f"{path} has a damaged tensor table", _HINT_REDOWNLOAD)
        elements = 1
        for _ in range(dims):
            elements *= int(reader.unpack("<Q"))  # a dimension may pass 2**32
        kind = int(reader.unpack("<I"))
        offset = int(reader.unpack("<Q"))
        block, nbytes = TENSOR_TYPE_SIZES.get(kind, (1, 0))
        extents.append((offset, elements // block * nbytes))
    alignment = metadata.get("general.alignment", 32)
    alignment = alignment if isinstance(alignment, int) and alignment > 0 else 32
    start = reader.pos + (-reader.pos) % alignment
    end = max((offset + length for offset, length in extents), default=0)
    if start + end > size:
        have = size / 2**20
        need = (start + end) / 2**20
        raise BadGGUF(
            f"{path} is cut short: its tensors need {need:.1f} MiB, the file has {have:.1f} MiB",
            _HINT_REDOWNLOAD,
        )
    return GGUFInfo(
        path=path,
        version=version,
        metadata=metadata,
        tensor_count=tensor_count,
        tensor_bytes=sum(length for _, length in extents),
        file_size=size,
        tokens=tokens,
    )


class Vocabulary:
    """The vocabulary's strings, decoded one at a time when asked for."""

    def __init__(self, blob: bytes = b"", spans: Sequence[tuple[int, int]] = ()) -> None:
        base = spans[0][0] if spans else 0
        self._blob = blob
        self._spans = [(start - base, length) for start, length in spans]

    def __len__(self) -> int:
        return len(self._spans)

    def __getitem__(self, index: int) -> str:
        start, length = self._spans[index]
        return self._blob[start : start + length].decode("utf-8", errors="replace")


def known_architectures() -> Callable[[str], bool] | None:
    """A test for "does llama.cpp know this architecture", from the gguf package's list
    (llama.cpp's own), or None when that package is missing."""
    try:
        from gguf.constants import MODEL_ARCH_NAMES
    except ImportError:
        return None
    names = set(MODEL_ARCH_NAMES.values())
    return names.__contains__
