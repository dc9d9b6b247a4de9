"""Loading a tokenizer, with fixes for legacy LLaMA and Vicuna conversions, and what
a loaded model says about its context and its stop tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_LEGACY_LLAMA_CLASSES = ("LLaMATokenizer", "LLaMATokenizerFast")


_LLAMA_SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


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


def stop_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    ids: list[int] = []
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.append(value)
        elif isinstance(value, (list, tuple)):
            ids.extend(v for v in value if isinstance(v, int))
    return tuple(dict.fromkeys(ids))
