"""The local backend's KV cache between turns: keep the longest shared prefix, so a new
turn prefills only its new tokens; with --compile, a preallocated (static) cache that
is rewound instead of rebuilt; on a CPU, a spare cache for the branch left last when a
full context of it is small."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vicuna_tui.engine.prompting import common_prefix

STATIC_CAP = 8192  # the longest static cache --compile preallocates


class KVCache:
    """The cache object transformers fills (``value``) and the token ids it holds."""

    def __init__(self, *, reuse: bool = True) -> None:
        self.reuse = reuse
        self.value: Any = None
        self.ids: list[int] = []
        self.static_len = 0  # > 0: a preallocated (static) cache of this many tokens

    def reset(self) -> None:
        if self.static_len and self.value is not None:
            self.ids = []  # the static cache is kept; positions restart at 0
            return
        self.value = None
        self.ids = []

    def make_static(self, context_length: int) -> int:
        """From now on a static cache; returns its length (the context it allows)."""
        self.static_len = min(context_length, STATIC_CAP)
        self.value = None
        self.ids = []
        return self.static_len

    def unload(self) -> None:
        self.static_len = 0
        self.reset()

    def reuse_prefix(self, ids: list[int], new_static: Callable[[int], Any]) -> int:
        """Keep the cached KV of the longest prefix shared with ``ids``; returns how many
        tokens that is (never all of them: the last one is fed to get its logits)."""
        if self.static_len:
            if self.value is None:
                self.value = new_static(self.static_len)
            keep = min(common_prefix(self.ids, ids), len(ids) - 1)
            keep = max(keep, 0) if self.reuse else 0
            keep = self._rewind_static(keep)
            del self.ids[keep:]
            return keep
        if not self.reuse or self.value is None or not hasattr(self.value, "crop"):
            self.reset()
            return 0
        keep = min(common_prefix(self.ids, ids), len(ids) - 1)
        if keep <= 0:
            self.reset()
            return 0
        if keep < len(self.ids):
            try:
                # A negative count removes that many tokens, in every transformers version.
                self.value.crop(keep - len(self.ids))
            except (RuntimeError, ValueError):  # e.g. a sliding window that cannot roll back
                self.reset()
                return 0
            del self.ids[keep:]
        return keep

    def _rewind_static(self, keep: int) -> int:
        """Make the static cache continue at position ``keep``.

        Keys past ``keep`` stay in memory but are overwritten before use, and the
        causal mask hides the rest.  transformers 5 counts the filled length per layer
        (``cumulative_length``); older versions write where ``cache_position`` says.
        """
        import torch

        with torch.inference_mode():  # the cache's tensors were made in inference mode
            return self._rewind_layers(keep)

    def _rewind_layers(self, keep: int) -> int:
        import torch

        for layer in getattr(self.value, "layers", ()):
            if type(layer).__name__ != "StaticLayer" and keep:
                # A sliding-window layer cannot rewind: start this reply from scratch.
                return self._rewind_layers(0)
            if not getattr(layer, "is_initialized", False):
                continue
            length = getattr(layer, "cumulative_length", None)
            if isinstance(length, torch.Tensor):
                length.fill_(keep)  # in place: a compiled graph holds its address
            elif length is not None:
                layer.cumulative_length = keep
        return keep


SPARE_CACHE_MAX = 512 * 2**20  # a second KV cache of a full context, at most


def spare_cache_fits(loaded: Any, model: Any) -> bool:
    """A second KV cache only on a CPU, and only when a full context of it is small."""
    if str(loaded.device) != "cpu":
        return False
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    heads = getattr(config, "num_attention_heads", None)
    width = getattr(config, "hidden_size", None)
    if not (isinstance(layers, int) and isinstance(heads, int) and isinstance(width, int)):
        return False
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or width // heads
    element = 2 if loaded.dtype in ("float16", "bfloat16") else 4
    size = layers * kv_heads * head_dim * loaded.context_length * 2 * element
    return bool(size <= SPARE_CACHE_MAX)
