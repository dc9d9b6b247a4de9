"""apply-delta / make-delta on tiny random LLaMAs."""

from __future__ import annotations

import errno
import json
import shutil
import threading
from pathlib import Path

import pytest
import torch
from helpers import run_cli, tiny_llama

from vicuna_tui.engine.events import ChatRequest, ReplyDone
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.engine.transformers.backend import LocalBackend
from vicuna_tui.weights import delta as delta_mod
from vicuna_tui.weights.delta import DeltaError, apply_delta, make_delta


def state(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    return {k: v.clone() for k, v in model.state_dict().items()}


def finetune(
    base: Path, out: Path, *, safe: bool = True, shard: str | None = None, extra_rows: int = 0
) -> Path:
    """A fine-tune of ``base``: the same weights plus small changes (as Vicuna is of LLaMA)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    torch.manual_seed(123)
    if extra_rows:
        model.resize_token_embeddings(model.config.vocab_size + extra_rows)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 1e-3)
    out.mkdir(parents=True)
    if safe:
        if shard:
            model.save_pretrained(str(out), max_shard_size=shard)
        else:
            model.save_pretrained(str(out))
    else:
        from helpers import _save_bin

        _save_bin(model, out, shard)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(base / name, out / name)
    return out


@pytest.mark.parametrize(
    ("base_safe", "base_shard", "target_safe", "low"),
    [
        (True, None, True, False),
        (True, "60KB", False, True),
        (False, None, True, True),
        (False, "60KB", False, False),
    ],
    ids=[
        "safetensors",
        "sharded-safetensors+bin-low-mem",
        "bin+safetensors-low-mem",
        "sharded-bin",
    ],
)
def test_round_trip_is_bit_exact_in_float32(
    tmp_path: Path, base_safe: bool, base_shard: str | None, target_safe: bool, low: bool
) -> None:
    base = tiny_llama(tmp_path / "base", safe=base_safe, shard=base_shard)
    target = finetune(base, tmp_path / "target", safe=target_safe, shard="60KB")
    make_delta(
        base, target, tmp_path / "delta", dtype="float32", low_memory=low, max_shard_bytes=100_000
    )
    out = apply_delta(
        base,
        tmp_path / "delta",
        tmp_path / "out",
        dtype="float32",
        low_memory=low,
        max_shard_bytes=100_000,
    )
    files = sorted(p.name for p in out.iterdir())
    assert "model.safetensors.index.json" in files  # shards plus their index
    assert "tokenizer.json" in files and "config.json" in files
    assert "generation_config.json" in files
    expected, got = state(target), state(out)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_float16_is_within_float16_rounding(tmp_path: Path) -> None:
    base = tiny_llama(tmp_path / "base")
    target = finetune(base, tmp_path / "target")
    make_delta(base, target, tmp_path / "delta")  # float16, the default
    out = apply_delta(base, tmp_path / "delta", tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "float16"
    expected, got = state(target), state(out)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=2**-10, atol=1e-5)


def test_result_loads_in_the_engine_and_generates(tmp_path: Path) -> None:
    base = tiny_llama(tmp_path / "base")
    target = finetune(base, tmp_path / "target")
    make_delta(base, target, tmp_path / "delta")
    out = apply_delta(base, tmp_path / "delta", tmp_path / "vicuna-out")
    backend = LocalBackend(LoadSettings(model_path=str(out), device="cpu"))
    backend.load()
    request = ChatRequest(
        turns=(("user", "hello world"),),
        template="vicuna_v1.1",
        generation=GenerationSettings(temperature=0.0, max_new_tokens=4),
    )
    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone) and done.stats.new_tokens == 4


def test_vicuna_v0_vocabulary(tmp_path: Path) -> None:
    base = tiny_llama(tmp_path / "base")
    target = finetune(base, tmp_path / "target", extra_rows=1)  # 300 -> 301, a [PAD] row
    with pytest.raises(DeltaError, match="Vicuna v0") as info:
        make_delta(base, target, tmp_path / "delta", dtype="float32")
    assert "--resize-vocab" in info.value.hint
    make_delta(base, target, tmp_path / "delta", dtype="float32", resize_vocab=True)
    with pytest.raises(DeltaError, match=r"the base has 300 rows but the delta has 301") as info:
        apply_delta(base, tmp_path / "delta", tmp_path / "out", dtype="float32")
    assert "--resize-vocab" in info.value.hint
    assert not (tmp_path / "out").exists()
    out = apply_delta(
        base, tmp_path / "delta", tmp_path / "out", dtype="float32", resize_vocab=True
    )
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 301
    expected, got = state(target), state(out)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_missing_paths(tmp_path: Path) -> None:
    base = tiny_llama(tmp_path / "base")
    with pytest.raises(Exception, match="no such folder for the delta"):
        apply_delta(base, tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match=r"holds no \.safetensors or \.bin weights"):
        apply_delta(tmp_path / "empty", base, tmp_path / "out")


def test_shape_mismatch_and_missing_tensor(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    base = tiny_llama(tmp_path / "base")
    other = tmp_path / "other"
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    LlamaForCausalLM(config).save_pretrained(str(other))
    with pytest.raises(
        DeltaError,
        match=r"weight: the base has shape "
        r"\[300, 64\] but the delta has \[300, 32\]",
    ):
        apply_delta(base, other, tmp_path / "out")
    smaller = tmp_path / "smaller"
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(str(smaller))
    with pytest.raises(DeltaError, match=r"the delta has no tensor model\.layers\.1\."):
        apply_delta(base, smaller, tmp_path / "out")


def test_existing_target_needs_force(tmp_path: Path) -> None:
    base = tiny_llama(tmp_path / "base")
    target = finetune(base, tmp_path / "target")
    make_delta(base, target, tmp_path / "delta")
    existing = tmp_path / "out"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    with pytest.raises(DeltaError, match="exists and is not empty") as info:
        apply_delta(base, tmp_path / "delta", existing)
    assert "--force" in info.value.hint
    assert (existing / "keep.txt").read_text() == "precious"
    apply_delta(base, tmp_path / "delta", existing, force=True)
    assert not (existing / "keep.txt").exists()
    assert (existing / "model.safetensors").exists()


@pytest.mark.parametrize("failure", ["interrupt", "disk-full"])
def test_an_interrupted_run_leaves_no_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    base = tiny_llama(tmp_path / "base", shard="60KB")
    target = finetune(base, tmp_path / "target")
    make_delta(base, target, tmp_path / "delta")
    calls = {"n": 0}

    def progress(p: delta_mod.DeltaProgress) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            if failure == "interrupt":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, "No space left on device")

    if failure == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            apply_delta(base, tmp_path / "delta", tmp_path / "out", progress=progress)
    else:
        with pytest.raises(DeltaError, match="the disk filled up"):
            apply_delta(base, tmp_path / "delta", tmp_path / "out", progress=progress)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_cli(tmp_path: Path) -> None:
    base = tiny_llama(tmp_path / "base")
    target = finetune(base, tmp_path / "target")
    made = run_cli(
        "make-delta",
        "--base",
        str(base),
        "--target",
        str(target),
        "--delta",
        str(tmp_path / "delta"),
        "--dtype",
        "float32",
    )
    assert made.returncode == 0, made.stderr
    applied = run_cli(
        "apply-delta",
        "--base",
        str(base),
        "--delta",
        str(tmp_path / "delta"),
        "--target",
        str(tmp_path / "out"),
        "--dtype",
        "float32",
        "--low-cpu-mem",
    )
    assert applied.returncode == 0, applied.stderr
    assert "tensor" in applied.stderr  # the progress bar names tensors
    assert f"wrote {tmp_path / 'out'}" in applied.stderr
    again = run_cli(
        "apply-delta",
        "--base",
        str(base),
        "--delta",
        str(tmp_path / "delta"),
        "--target",
        str(tmp_path / "out"),
    )
    assert again.returncode == 2
    assert "exists and is not empty" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr


def test_torch_load_is_weights_only() -> None:
    import inspect

    from vicuna_tui.weights import checkpoint

    source = inspect.getsource(checkpoint)
    assert source.count("torch.load(") == source.count("weights_only=True")
