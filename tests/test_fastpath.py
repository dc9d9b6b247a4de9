"""The CPU decode fast path computes what the plain model computes."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import tiny_llama

from vicuna_tui.engine.transformers import fastpath


def test_fused_and_transposed_layers_give_the_same_logits(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    folder = tiny_llama(tmp_path / "m", tokenizer=False)
    plain = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    fast = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    params = sum(p.numel() for p in plain.parameters())
    counts = fastpath.optimize(fast)
    assert counts == {"fused": 4, "transposed": 1}  # q/k/v and gate/up in 2 layers; lm_head
    assert sum(p.numel() for p in fast.parameters()) == params
    assert type(fast.lm_head).__name__ == "TransposedLinear"
    torch.manual_seed(0)
    ids = torch.randint(0, 300, (1, 17))
    with torch.inference_mode():
        a = plain(ids, use_cache=True)
        b = fast(ids, use_cache=True)
        torch.testing.assert_close(b.logits, a.logits, rtol=1e-5, atol=1e-5)
        step = torch.tensor([[7]])
        key = fastpath.cache_argument(plain)
        a2 = plain(step, **{key: fastpath.output_cache(a)}, use_cache=True)
        b2 = fast(step, **{key: fastpath.output_cache(b)}, use_cache=True)
        torch.testing.assert_close(b2.logits, a2.logits, rtol=1e-5, atol=1e-5)
    fastpath.release(fast)
    assert all(g.last_input is None for g in fast._vicuna_fast_groups)


def test_fast_path_is_only_for_plain_float32_on_cpu() -> None:
    assert fastpath.applies(None, "cpu", "float32", None)
    assert not fastpath.applies(None, "cuda", "float16", None)
    assert not fastpath.applies(None, "cpu", "bfloat16", None)
    assert not fastpath.applies(None, "cpu", "float32", "8bit")


def test_the_growing_kv_layer_holds_what_torch_cat_would() -> None:
    """Row by row past its spare room, a prefill chunk, a crop, then more rows."""
    from transformers.cache_utils import DynamicLayer

    from vicuna_tui.engine.transformers.fastpath import _growing_layer_class

    torch.manual_seed(0)
    growing, plain = _growing_layer_class()(), DynamicLayer()
    chunks = [7, *([1] * 300), 40, *([1] * 5)]
    for step, rows in enumerate(chunks):
        if step == 302:
            growing.crop(-30)
            plain.crop(-30)
        k, v = torch.randn(1, 3, rows, 8), torch.randn(1, 3, rows, 8)
        got_k, got_v = growing.update(k, v)
        want_k, want_v = plain.update(k, v)
        assert torch.equal(got_k, want_k) and torch.equal(got_v, want_v), step
        assert growing.get_seq_length() == plain.get_seq_length()
    assert growing.get_seq_length() == 7 + 300 + 40 + 5 - 30
    growing.reset()
    k = torch.randn(1, 3, 2, 8)
    assert torch.equal(growing.update(k, k)[0], k)  # starts over after a reset


def test_the_decode_step_gives_bitwise_the_logits_of_the_model(tmp_path: Path) -> None:
    """Grouped KV heads (4 query, 2 KV), 40 tokens one at a time, against the model's
    own forward on a cache of the same kind."""
    from transformers import AutoModelForCausalLM

    folder = tiny_llama(tmp_path / "m", tokenizer=False)
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    fastpath.optimize(model)
    step = model._vicuna_step
    assert isinstance(step, fastpath.DecodeStep)
    theirs, ours = fastpath.growing_cache(model), fastpath.growing_cache(model)
    torch.manual_seed(0)
    prompt = torch.randint(0, 300, (1, 9))
    with torch.inference_mode():
        key = fastpath.cache_argument(model)
        model(prompt, **{key: theirs}, use_cache=True)
        model(prompt, **{key: ours}, use_cache=True)
        token = torch.tensor([[5]])
        for _ in range(40):
            want = model(token, **{key: theirs}, use_cache=True).logits[:, -1]
            got = step(token, ours)[:, -1]
            assert torch.equal(got, want)
            token = torch.randint(0, 300, (1, 1))  # not only the likeliest path
    assert ours.get_seq_length() == theirs.get_seq_length() == 49


def test_the_decode_step_is_only_for_a_plain_llama_with_sdpa(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    folder = tiny_llama(tmp_path / "m", tokenizer=False)
    eager = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager")
    fastpath.optimize(eager.eval())
    assert eager._vicuna_step is None  # its attention is not SDPA's arithmetic
    unfused = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    assert fastpath.decode_step(unfused) is None  # only on top of the fused layout
