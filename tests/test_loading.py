"""Loading paths on a tiny random LLaMA: formats, quantization, legacy weights, errors."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import tiny_llama

from vicuna_tui.engine.events import ChatRequest, ReplyDone
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.engine.transformers import devices, hf_patches, loader
from vicuna_tui.engine.transformers.backend import LocalBackend
from vicuna_tui.errors import (
    DeviceError,
    ModelNotFoundError,
    OfflineError,
    OutOfMemoryError,
    SettingsError,
)


def generate(backend: LocalBackend, template: str = "vicuna_v1.1") -> ReplyDone:
    request = ChatRequest(
        turns=(("user", "hello world"),),
        template=template,
        generation=GenerationSettings(temperature=0.0, max_new_tokens=5),
    )
    events = list(backend.generate(request, threading.Event()))
    done = events[-1]
    assert isinstance(done, ReplyDone)
    return done


def load(folder: Path, **kwargs: Any) -> LocalBackend:
    backend = LocalBackend(LoadSettings(model_path=str(folder), device="cpu", **kwargs))
    backend.load()
    return backend


@pytest.mark.parametrize(
    ("shard", "safe"),
    [(None, True), ("60KB", True), (None, False), ("60KB", False)],
    ids=["safetensors", "sharded-safetensors", "bin", "sharded-bin"],
)
def test_weight_formats_load_and_generate(tmp_path: Path, shard: str | None, safe: bool) -> None:
    folder = tiny_llama(tmp_path / "m", shard=shard, safe=safe)
    files = sorted(p.name for p in folder.iterdir())
    if shard and safe:
        assert "model.safetensors.index.json" in files
    if not safe:
        assert any(name.endswith(".bin") for name in files)
    backend = load(folder)
    done = generate(backend)
    assert done.stats.new_tokens == 5
    assert backend.info.parameters > 50_000


def test_all_formats_give_the_same_weights(tmp_path: Path) -> None:
    import torch

    a = load(tiny_llama(tmp_path / "a", shard="60KB", safe=True))
    b = load(tiny_llama(tmp_path / "b", shard=None, safe=False))
    for (name, x), (_, y) in zip(
        a._loaded.model.state_dict().items(), b._loaded.model.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name


def test_a_converting_load_reads_with_pread_and_keeps_every_weight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float32 on disk, bfloat16 wanted: the files are read with pread, not mapped, so
    the load does not hold the whole file in memory besides the converted copy."""
    import torch
    import transformers.modeling_utils as modeling_utils

    folder = tiny_llama(tmp_path / "m", shard="60KB")
    assert hf_patches.stored_dtypes(folder) == {"F32"}
    assert hf_patches.converts_dtype(folder, "bfloat16")
    assert not hf_patches.converts_dtype(folder, "float32")
    assert not hf_patches.converts_dtype(tmp_path, "bfloat16")  # no safetensors: nothing to say

    backends: list[object] = []
    original = getattr(modeling_utils, "safe_open")  # noqa: B009 - not exported

    def recording(*args: Any, **kwargs: Any) -> Any:
        backends.append(kwargs.get("backend"))
        return original(*args, **kwargs)

    monkeypatch.setattr(modeling_utils, "safe_open", recording)
    converted = load(folder, dtype="bfloat16")
    shards = len(list(folder.glob("*.safetensors")))
    assert shards > 1 and backends == ["pread"] * shards
    assert getattr(modeling_utils, "safe_open") is recording  # noqa: B009  # put back after the load

    backends.clear()
    settings = LoadSettings(model_path=str(folder), device="cpu")
    plain = loader.load(settings, fast_path=False).model  # float32 as stored: mapped
    assert backends == ["mmap"] * shards
    assert generate(converted).stats.new_tokens == 5
    for (name, x), (_, y) in zip(
        converted._loaded.model.state_dict().items(), plain.state_dict().items(), strict=True
    ):
        assert x.dtype == torch.bfloat16, name
        assert torch.equal(x, y.to(torch.bfloat16)), name


@pytest.mark.parametrize("bits", ["8bit", "4bit"])
def test_bitsandbytes_on_cpu(tmp_path: Path, bits: str) -> None:
    folder = tiny_llama(tmp_path / "m")
    backend = load(folder, **{f"load_{bits}": True})
    assert backend.info.quantization == bits
    layer = backend._loaded.model.model.layers[0].self_attn.q_proj
    assert type(layer).__name__ == ("Linear8bitLt" if bits == "8bit" else "Linear4bit")
    assert generate(backend).stats.new_tokens == 5


def test_bitsandbytes_does_not_log_per_matmul(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = load(tiny_llama(tmp_path / "m"), load_8bit=True)
    with caplog.at_level("DEBUG"):
        generate(backend)
    assert not [r for r in caplog.records if r.name.startswith("bitsandbytes")]


def test_legacy_llama_tokenizer_class(tmp_path: Path) -> None:
    folder = tiny_llama(tmp_path / "m", legacy_class=True)
    assert (
        json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"]
        == "LLaMATokenizer"
    )
    backend = load(folder)
    assert any("LLaMATokenizer" in n for n in backend.info.notices)
    assert generate(backend).stats.new_tokens == 5


def test_empty_special_tokens_get_llamas(tmp_path: Path) -> None:
    folder = tiny_llama(tmp_path / "m", empty_specials=True)
    backend = load(folder)
    tokenizer = backend._loaded.tokenizer
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<s>", "</s>")
    assert tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("</s>")
    assert tokenizer.eos_token_id in backend._loaded.stop_token_ids
    assert any("empty special tokens" in n for n in backend.info.notices)


def test_vicuna_v0_vocabulary_gets_the_v0_template(tmp_path: Path) -> None:
    folder = tiny_llama(tmp_path / "vicuna-7b", vocab_size=32001, context=4096)
    backend = load(folder)
    assert backend.info.template == "one_shot"
    assert any("32001" in n for n in backend.info.notices)
    assert generate(backend, template="auto").finish_reason in ("stop", "length")


def test_device_map_and_max_memory_settings() -> None:
    class FakeCuda:
        @staticmethod
        def device_count() -> int:
            return 2

        @staticmethod
        def mem_get_info(index: int) -> tuple[int, int]:
            return (10 * 2**30, 16 * 2**30)

    fake_torch = type("T", (), {"cuda": FakeCuda})
    single = LoadSettings(device="cuda")
    assert devices.device_map(single, "cuda", fake_torch) == ({"": 0}, None)
    capped = LoadSettings(device="cuda", num_gpus=2, max_gpu_memory="13GiB")
    assert devices.device_map(capped, "cuda", fake_torch) == ("auto", {0: "13GiB", 1: "13GiB"})
    one_capped = LoadSettings(device="cuda", max_gpu_memory="6 GiB")
    assert devices.device_map(one_capped, "cuda", fake_torch) == ("auto", {0: "6GiB"})
    with pytest.raises(DeviceError, match="--num-gpus 3 but only 2 GPU"):
        devices.device_map(LoadSettings(device="cuda", num_gpus=3), "cuda", fake_torch)


# --- bad input -------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no such file or folder"):
        loader.load(LoadSettings(model_path=str(tmp_path / "nope"), device="cpu"))


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelNotFoundError, match=r"has no config\.json") as info:
        loader.load(LoadSettings(model_path=str(tmp_path), device="cpu"))
    assert ".gguf" in info.value.hint


def test_config_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="no weights"):
        loader.load(LoadSettings(model_path=str(tmp_path), device="cpu"))


def test_hub_id_while_offline() -> None:
    with pytest.raises(OfflineError, match="Hub is offline") as info:
        loader.load(LoadSettings(model_path="someone/some-model-that-is-not-cached"))
    assert "HF_HUB_OFFLINE" in info.value.message


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_unavailable_device_says_what_is_available(device: str) -> None:
    with pytest.raises(DeviceError, match=f"--device {device} was asked for") as info:
        loader.load(LoadSettings(device=device))
    assert "available: cpu" in info.value.hint


def test_num_gpus_without_cuda() -> None:
    with pytest.raises(SettingsError, match="need a CUDA device"):
        loader.load(LoadSettings(device="cpu", num_gpus=2))


def test_8bit_and_4bit_together() -> None:
    with pytest.raises(SettingsError, match="cannot be used together"):
        loader.load(LoadSettings(load_8bit=True, load_4bit=True))


def test_quantization_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(Exception, match="needs bitsandbytes") as info:
        loader.load(
            LoadSettings(model_path=str(tiny_llama(tmp_path / "m")), device="cpu", load_8bit=True)
        )
    assert "pip install bitsandbytes" in info.value.hint  # type: ignore[attr-defined]


def test_out_of_memory_while_loading(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch
    import transformers

    folder = tiny_llama(tmp_path / "m")

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    with pytest.raises(OutOfMemoryError, match="out of memory while loading") as info:
        loader.load(LoadSettings(model_path=str(folder), device="cpu"))
    assert "--load-8bit" in info.value.hint
