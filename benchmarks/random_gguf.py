"""Random-weight Llama-shaped GGUFs for the benchmarks at scale: the demo model's
tokenizer, Q4_0 weights of random nibbles with a small scale.  The text they write is
noise; their speed, memory and load paths are those of a real model of that shape.

    python benchmarks/random_gguf.py 500m|1b|7b     # prints the path (made once, then cached)

Files are made on demand under .cache/bench-models/ and never committed.  The tests of
speculative decoding make a "tiny" one (two layers, a few MB) in a temporary folder
with ``write``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ROOT, smollm_gguf

CACHE = ROOT / ".cache" / "bench-models"
BLOCK = 32  # Q4_0: 32 weights in 18 bytes (an f16 scale, 16 bytes of nibbles)
BLOCK_BYTES = 18


@dataclass(frozen=True)
class Shape:
    name: str
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    context: int = 4096


SHAPES = {
    "500m": Shape("500m", layers=24, hidden=1024, ffn=2816, heads=16, kv_heads=16),  # Qwen-ish
    "1b": Shape("1b", layers=22, hidden=2048, ffn=5632, heads=32, kv_heads=4),  # TinyLlama
    "7b": Shape("7b", layers=32, hidden=4096, ffn=11008, heads=32, kv_heads=32),  # Llama-2
    "tiny": Shape("tiny", layers=2, hidden=64, ffn=128, heads=2, kv_heads=2),  # for tests
}


def path_for(name: str) -> Path:
    return CACHE / f"random-llama-{name}.Q4_0.gguf"


def make(name: str) -> Path:
    """The file for ``name`` (1b or 7b), made if it is not there yet."""
    path = path_for(name)
    if path.exists():
        return path
    shape = SHAPES[name]
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    _write(shape, partial)
    partial.rename(path)
    return path


def _tokenizer_fields() -> list[tuple[str, Any, Any]]:
    import gguf

    reader = gguf.GGUFReader(smollm_gguf())
    kept: list[tuple[str, Any, Any]] = []
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            kept.append((key, field.types, field.contents()))
    return kept


def write(shape: Shape, path: Path, *, renamed: dict[int, str] | None = None) -> Path:
    """A random-weight file of ``shape`` at ``path``; ``renamed`` changes some tokens
    of the demo model's vocabulary (index: new text), for a vocabulary that differs."""
    _write(shape, path, renamed or {})
    return path


def _write(shape: Shape, path: Path, renamed: dict[int, str] | None = None) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(f"random llama {shape.name}")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(shape.hidden // shape.heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    writer.add_quantization_version(2)
    vocab = 0
    for key, types, value in _tokenizer_fields():
        if types[0] == gguf.GGUFValueType.ARRAY:
            if key == "tokenizer.ggml.tokens":
                vocab = len(value)
                value = (
                    [renamed.get(i, token) for i, token in enumerate(value)] if renamed else value
                )
            writer.add_array(key, value)
        else:
            writer.add_key_value(key, value, types[0])
    writer.add_vocab_size(vocab)

    kv = shape.hidden // shape.heads * shape.kv_heads
    tensors: list[tuple[str, tuple[int, int] | int]] = [
        ("token_embd.weight", (vocab, shape.hidden))
    ]
    for i in range(shape.layers):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_norm.weight", shape.hidden),
            (b + "attn_q.weight", (shape.hidden, shape.hidden)),
            (b + "attn_k.weight", (kv, shape.hidden)),
            (b + "attn_v.weight", (kv, shape.hidden)),
            (b + "attn_output.weight", (shape.hidden, shape.hidden)),
            (b + "ffn_norm.weight", shape.hidden),
            (b + "ffn_gate.weight", (shape.ffn, shape.hidden)),
            (b + "ffn_up.weight", (shape.ffn, shape.hidden)),
            (b + "ffn_down.weight", (shape.hidden, shape.ffn)),
        ]
    tensors += [("output_norm.weight", shape.hidden), ("output.weight", (vocab, shape.hidden))]

    block = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
    for name, dims in tensors:
        if isinstance(dims, int):
            writer.add_tensor_info(name, (dims,), np.dtype(np.float32), dims * 4)
        else:
            rows, cols = dims
            nbytes = rows * cols // BLOCK * BLOCK_BYTES
            writer.add_tensor_info(
                name,
                (rows, cols // BLOCK * BLOCK_BYTES),
                np.dtype(np.uint8),
                nbytes,
                raw_dtype=gguf.GGMLQuantizationType.Q4_0,
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(0)
    for name, dims in tensors:
        if isinstance(dims, int):
            writer.write_tensor_data(np.ones(dims, dtype=np.float32))
            continue
        rows, cols = dims
        blocks = np.empty(rows * cols // BLOCK, dtype=block)
        # weights (q - 8) * d with d = 0.004: a standard deviation of about 0.02
        blocks["d"] = np.float16(0.004)
        blocks["qs"] = rng.integers(0, 256, size=(len(blocks), 16), dtype=np.uint8)
        writer.write_tensor_data(blocks.view(np.uint8).reshape(rows, -1))
        print(f"  {name}", file=sys.stderr, end="\r")
    writer.close()
    print(file=sys.stderr)


if __name__ == "__main__":
    print(make(sys.argv[1] if len(sys.argv) > 1 else "1b"))
