"""Faster single-token decode on CPU, with the same results.

Decoding multiplies one row of activations by every weight matrix, so its speed is the
speed of reading the weights.  Measured on a 2-core EPYC with MKL (BENCHMARKS.md):

* a "tall" ``nn.Linear`` (more outputs than inputs: gate/up projections, lm_head) runs
  about twice as fast as ``x @ Wt`` with W stored transposed and contiguous;
* small matrices are read below streaming speed, so q/k/v and gate/up are fused into
  one matrix each (one product, split into views).

Together: SmolLM2-135M decodes 25.4 instead of 18.0 tokens/s on one thread.  And the
KV cache grows in place (``growing_cache``) instead of being concatenated anew every
token: +0.7% at 128 new tokens, +3.3% at 800 (measured side by side, same text).  For a
plain LLaMA, one token goes through ``DecodeStep``: the same tensor operations as
transformers' modules in the same order, without their Python around them (8% less time
a token), used only where a check at load finds its logits bitwise equal to the model's
own forward.  Only the
layout and grouping change, not the arithmetic: a product can sum in another order
inside BLAS, so greedy output may differ from ``model.generate`` only where two logits
tie to within float32 rounding (none did across the test prompts).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

# A transformers model: its submodules (layers, norms, rotary embedding) are found by
# attribute at run time, which torch's types cannot follow.
Model = Any

log = logging.getLogger(__name__)

FUSIONS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class _Group:
    """Several linears that read the same input, computed as one product."""

    def __init__(self, linears: list[nn.Linear]) -> None:
        self.weight_t = torch.nn.Parameter(
            torch.cat([lin.weight.detach().t() for lin in linears], dim=1).contiguous(),
            requires_grad=False,
        )
        biases = [lin.bias for lin in linears]
        self.bias = (
            torch.cat([b.detach() for b in biases]) if all(b is not None for b in biases) else None
        )
        self.last_input: Tensor | None = None
        self.last_output: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        # The attention and MLP blocks call each part with the very same tensor.
        if x is not self.last_input:
            out = x @ self.weight_t
            if self.bias is not None:
                out = out + self.bias
            self.last_input, self.last_output = x, out
            return out
        assert self.last_output is not None
        return self.last_output

    def release(self) -> None:
        self.last_input = self.last_output = None


class FusedPart(torch.nn.Module):
    """One of a group's linears: a slice of the group's product."""

    def __init__(self, group: _Group, start: int, end: int, owner: bool) -> None:
        super().__init__()
        self.group = group
        self.start, self.end = start, end
        self.in_features = group.weight_t.shape[0]
        self.out_features = end - start
        if owner:  # so the fused weight shows up in parameters() and moves with .to()
            self.weight_t = group.weight_t

    def forward(self, x: Tensor) -> Tensor:
        return self.group(x)[..., self.start : self.end]


class TransposedLinear(torch.nn.Module):
    """``nn.Linear`` with its weight stored transposed: y = x @ Wt + b."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_t = torch.nn.Parameter(
            linear.weight.detach().t().contiguous(), requires_grad=False
        )
        self.bias = linear.bias

    def forward(self, x: Tensor) -> Tensor:
        out = x @ self.weight_t
        return out if self.bias is None else out + self.bias


def applies(model: Model, device: str, dtype: str, quantization: str | None) -> bool:
    return device == "cpu" and dtype == "float32" and quantization is None


def optimize(model: Model) -> dict[str, int]:
    """Fuse q/k/v and gate/up, transpose the other tall linears.  Returns counts."""
    groups: list[_Group] = []
    counts = {"fused": 0, "transposed": 0}
    for module in list(model.modules()):
        for names in FUSIONS:
            found = [getattr(module, name, None) for name in names]
            parts = [p for p in found if type(p) is torch.nn.Linear]
            if len(parts) != len(names):
                continue
            if len({p.in_features for p in parts}) != 1:
                continue
            group = _Group(parts)
            groups.append(group)
            offset = 0
            for index, (name, part) in enumerate(zip(names, parts, strict=True)):
                setattr(
                    module,
                    name,
                    FusedPart(group, offset, offset + part.out_features, owner=index == 0),
                )
                offset += part.out_features
            counts["fused"] += 1
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear and child.out_features > child.in_features:
                setattr(module, name, TransposedLinear(child))
                counts["transposed"] += 1
    model._vicuna_fast_groups = groups
    model._vicuna_step = decode_step(model)
    return counts


def release(model: Model) -> None:
    """Drop the activations the fused groups keep between their parts."""
    for group in getattr(model, "_vicuna_fast_groups", ()):
        group.release()


def _growing_layer_class() -> Any:
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """``DynamicLayer`` appends each token's keys and values with ``torch.cat``,
        copying the whole cache every token (per layer, twice): O(n) a token.  This layer
        keeps spare room and writes new rows in place; ``keys``/``values`` are views of
        the filled part, so attention reads exactly the same numbers.  When something else
        replaced ``keys`` (``crop`` on a regenerate or an edit, say), the next update
        copies what is left into fresh room, once."""

        def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
            super().lazy_initialization(key_states, value_states)
            self._room_k: Tensor | None = None
            self._room_v: Tensor | None = None
            self._view_k: Tensor | None = None
            self._filled = 0

        def update(
            self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any
        ) -> tuple[Tensor, Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self._filled + key_states.shape[-2]
            room_k, room_v = self._room_k, self._room_v
            if (
                room_k is None
                or room_v is None
                or self.keys is not self._view_k
                or (end > room_k.shape[-2])
            ):
                room_k, room_v = self._refill(key_states, value_states)
                end = self._filled + key_states.shape[-2]
            room_k[..., self._filled : end, :].copy_(key_states)
            room_v[..., self._filled : end, :].copy_(value_states)
            self._filled = end
            keys = self._view_k = room_k[..., :end, :]
            values = room_v[..., :end, :]
            self.keys, self.values = keys, values
            return keys, values

        def _refill(self, key_states: Tensor, value_states: Tensor) -> tuple[Tensor, Tensor]:
            """New room for what is cached plus the new rows, and a quarter more."""
            keys, values = self.keys, self.values
            filled = keys.shape[-2] if keys is not None and keys.dim() == 4 else 0
            need = filled + key_states.shape[-2]
            size = need + max(256, need // 4)
            room_k = key_states.new_empty((*key_states.shape[:-2], size, key_states.shape[-1]))
            room_v = value_states.new_empty(
                (*value_states.shape[:-2], size, value_states.shape[-1])
            )
            if filled:
                assert keys is not None and values is not None
                room_k[..., :filled, :].copy_(keys)
                room_v[..., :filled, :].copy_(values)
            self._room_k, self._room_v, self._filled = room_k, room_v, filled
            return room_k, room_v

    return GrowingLayer


_GROWING: Any = None


def growing_cache(model: Model) -> Any:
    """A ``DynamicCache`` for ``model`` whose full-attention layers grow in place, or
    None where transformers builds its caches differently (it then makes its own)."""
    global _GROWING
    try:
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        if _GROWING is None:
            _GROWING = _growing_layer_class()
        cache = DynamicCache(config=model.config)
        layers = getattr(cache, "layers", None)
        if not layers:
            return None
        for index, layer in enumerate(layers):
            if type(layer) is DynamicLayer:
                layers[index] = _GROWING()
        return cache
    except Exception:  # another transformers: its own cache is right, only slower
        log.debug("no in-place KV cache", exc_info=True)
        return None


class DecodeStep:
    """One new token through a fused LLaMA with a ``DynamicCache``: the operations of
    transformers' LLaMA modules (RMSNorm, rotary embedding, SDPA with grouped KV heads,
    SiLU MLP) in their order, called directly.  Per token this saves the modules' Python
    (keyword plumbing, mask building, output objects): about 3 of 42 ms on SmolLM2-135M."""

    def __init__(self, model: Model) -> None:
        inner = model.model
        self.embed = inner.embed_tokens
        self.rotary = inner.rotary_emb
        self.norm = inner.norm
        self.lm_head = model.lm_head
        self.layers = []
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            q, k = attn.q_proj, attn.k_proj
            heads = q.out_features // attn.head_dim
            kv_heads = k.out_features // attn.head_dim
            self.layers.append(
                (
                    layer.input_layernorm,
                    q.group,
                    heads,
                    kv_heads,
                    attn.head_dim,
                    attn.scaling,
                    attn.o_proj,
                    layer.post_attention_layernorm,
                    mlp.gate_proj.group,
                    mlp.gate_proj.out_features,
                    mlp.act_fn,
                    mlp.down_proj,
                )
            )

    @staticmethod
    def _rms(norm: Any, x: Tensor) -> Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        scaled: Tensor = norm.weight * (x * torch.rsqrt(variance + norm.variance_epsilon))
        return scaled

    @staticmethod
    def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    def __call__(self, token: Tensor, cache: Any) -> Tensor:
        """Logits [1, 1, vocab] for ``token`` ([1, 1] ids); appends to ``cache``."""
        sdpa = torch.nn.functional.scaled_dot_product_attention
        position = torch.tensor([[cache.get_seq_length()]], device=token.device)
        x = self.embed(token)
        cos, sin = self.rotary(x, position)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        for index, (
            norm1,
            qkv_group,
            heads,
            kv_heads,
            dim,
            scaling,
            o_proj,
            norm2,
            gate_up_group,
            inter,
            act,
            down,
        ) in enumerate(self.layers):
            qkv = qkv_group(self._rms(norm1, x))
            q_end, k_end = heads * dim, (heads + kv_heads) * dim
            q = qkv[..., :q_end].view(1, 1, heads, dim).transpose(1, 2)
            k = qkv[..., q_end:k_end].view(1, 1, kv_heads, dim).transpose(1, 2)
            v = qkv[..., k_end:].view(1, 1, kv_heads, dim).transpose(1, 2)
            keys, values = cache.layers[index].update(self._rotate(k, cos, sin), v)
            out = sdpa(
                self._rotate(q, cos, sin),
                keys,
                values,
                scale=scaling,
                enable_gqa=heads != kv_heads,
            )
            x = x + o_proj(out.transpose(1, 2).reshape(1, 1, -1))
            gate_up = gate_up_group(self._rms(norm2, x))
            x = x + down(act(gate_up[..., :inter]) * gate_up[..., inter:])
        logits: Tensor = self.lm_head(self._rms(self.norm, x))
        return logits


def decode_step(model: Model) -> DecodeStep | None:
    """A ``DecodeStep`` for ``model`` if it is a plain fused LLaMA whose own forward gives
    bitwise the same logits for a few tokens (checked here), else None."""
    try:
        if type(model).__name__ != "LlamaForCausalLM":
            return None
        if getattr(model.config, "_attn_implementation", None) != "sdpa":
            return None
        for layer in model.model.layers:
            if not isinstance(layer.self_attn.q_proj, FusedPart) or not isinstance(
                layer.mlp.gate_proj, FusedPart
            ):
                return None
        step = DecodeStep(model)
        theirs, ours = growing_cache(model), growing_cache(model)
        if theirs is None or ours is None:
            return None
        # Two tokens into both caches, then one token each way: four forwards, 0.2 s at
        # load for SmolLM2 on a CPU (the tests compare longer runs).
        prompt = torch.tensor([[1, 2]], device=model.device)
        token = torch.tensor([[3]], device=model.device)
        with torch.inference_mode():
            key = cache_argument(model)
            model(input_ids=prompt, **{key: theirs}, use_cache=True)
            model(input_ids=prompt, **{key: ours}, use_cache=True)
            want = model(input_ids=token, **{key: theirs}, use_cache=True).logits
            got = step(token, ours)
        return step if torch.equal(got[:, -1], want[:, -1]) else None
    except Exception:  # another transformers or model layout: the model's own forward
        log.debug("no fast decode step", exc_info=True)
        return None
    finally:
        release(model)


def cache_argument(model: Model) -> str:
    """The forward's name for the KV cache: ``cache`` from transformers 5.x (where
    ``past_key_values`` is deprecated), ``past_key_values`` before."""
    import inspect

    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def output_cache(output: Any) -> Any:
    """The KV cache a forward returned, under either name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
