"""Faster single-token decode on CPU, with the same results.

Decoding multiplies one row of activations by every weight matrix, so its speed is the
speed of reading the weights.  Measured on a 2-core EPYC with MKL (BENCHMARKS.md):

* a "tall" ``nn.Linear`` (more outputs than inputs: gate/up projections, lm_head) runs
  about twice as fast as ``x @ Wt`` with W stored transposed and contiguous;
* small matrices are read below streaming speed, so q/k/v and gate/up are fused into
  one matrix each (one product, split into views).

Together: SmolLM2-135M decodes 25.4 instead of 18.0 tokens/s on one thread.  Only the
layout and grouping change, not the arithmetic: a product can sum in another order
inside BLAS, so greedy output may differ from ``model.generate`` only where two logits
tie to within float32 rounding (none did across the test prompts).
"""

from __future__ import annotations

from typing import Any

import torch

FUSIONS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class _Group:
    """Several linears that read the same input, computed as one product."""

    def __init__(self, linears: list[Any]) -> None:
        self.weight_t = torch.nn.Parameter(
            torch.cat([lin.weight.detach().t() for lin in linears], dim=1).contiguous(),
            requires_grad=False,
        )
        biases = [lin.bias for lin in linears]
        self.bias = (
            torch.cat([b.detach() for b in biases]) if all(b is not None for b in biases) else None
        )
        self.last_input: Any = None
        self.last_output: Any = None

    def __call__(self, x: Any) -> Any:
        # The attention and MLP blocks call each part with the very same tensor.
        if x is not self.last_input:
            out = x @ self.weight_t
            if self.bias is not None:
                out = out + self.bias
            self.last_input, self.last_output = x, out
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

    def forward(self, x: Any) -> Any:
        return self.group(x)[..., self.start : self.end]


class TransposedLinear(torch.nn.Module):
    """``nn.Linear`` with its weight stored transposed: y = x @ Wt + b."""

    def __init__(self, linear: Any) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_t = torch.nn.Parameter(
            linear.weight.detach().t().contiguous(), requires_grad=False
        )
        self.bias = linear.bias

    def forward(self, x: Any) -> Any:
        out = x @ self.weight_t
        return out if self.bias is None else out + self.bias


def applies(model: Any, device: str, dtype: str, quantization: str | None) -> bool:
    return device == "cpu" and dtype == "float32" and quantization is None


def optimize(model: Any) -> dict[str, int]:
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
    return counts


def release(model: Any) -> None:
    """Drop the activations the fused groups keep between their parts."""
    for group in getattr(model, "_vicuna_fast_groups", ()):
        group.release()
