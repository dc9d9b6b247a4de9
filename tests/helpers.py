"""Shared test helpers: the CLI in a subprocess, a scripted backend, a byte-level fake
tokenizer and model, and a tiny random LLaMA saved in several formats."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vicuna_tui.engine.events import (
    FINISH_CANCELLED,
    FINISH_STOP,
    ChatRequest,
    EngineEvent,
    ModelInfo,
    PromptPreview,
    ReplyDelta,
    ReplyDone,
    ReplyStarted,
    ReplyStats,
)
from vicuna_tui.engine.settings import GenerationSettings

REPO = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``vicuna-tui`` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "vicuna_tui", *args],
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
    )


def ask(
    backend: Any,
    turns: tuple[tuple[str, str], ...],
    gen: GenerationSettings | None = None,
    cancel_after: int | None = None,
) -> tuple[ReplyDone, list[str], ReplyStarted]:
    """One reply from a real backend: (done, the deltas, started); greedy and 40 tokens
    by default; ``cancel_after`` sets the cancel event after that many deltas."""
    gen = gen or GenerationSettings(temperature=0.0, max_new_tokens=40)
    cancel = threading.Event()
    deltas: list[str] = []
    done = started = None
    for event in backend.generate(ChatRequest(turns=turns, generation=gen), cancel):
        if isinstance(event, ReplyStarted):
            started = event
        elif isinstance(event, ReplyDelta):
            deltas.append(event.text)
            if cancel_after is not None and len(deltas) >= cancel_after:
                cancel.set()
        elif isinstance(event, ReplyDone):
            done = event
    assert done is not None and started is not None
    return done, deltas, started


class ScriptedBackend:
    """A backend that replies with scripted text deltas, for exact UI states.

    ``gate``: when set, generation waits on it after ``pause_after`` deltas, so a test can
    look at the screen mid-stream.
    """

    kind = "local"

    def __init__(
        self,
        replies: Sequence[Sequence[str]] | None = None,
        *,
        pause_after: int | None = None,
        load_error: Exception | None = None,
        name: str = "scripted-model",
        drafts: bool = False,
    ) -> None:
        self.replies = [list(r) for r in (replies or [["Hello", " there", "."]])]
        # speculating: delta i says 2i drafted and i kept; the reply 1.5× a baseline
        self.drafts = drafts
        self.pause_after = pause_after
        self.gate = threading.Event()
        self.paused = threading.Event()
        self.load_error = load_error
        self.requests: list[ChatRequest] = []
        self.name = name
        self.is_loaded = False
        self.info = ModelInfo(
            name=name,
            path=f"/models/{name}",
            source="a test script",
            device="cpu",
            dtype="float32",
            context_length=4096,
            template="vicuna_v1.1",
        )

    @property
    def loaded(self) -> ModelInfo | None:
        return self.info if self.is_loaded else None

    def check(self) -> None:
        pass

    def load(self, progress: Any = None) -> ModelInfo:
        if progress is not None:
            for done in range(4):
                progress("loading weights", done, 3)
        if self.load_error is not None:
            raise self.load_error
        self.is_loaded = True
        return self.info

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[EngineEvent]:
        self.requests.append(request)
        script = self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]
        yield ReplyStarted(request.request_id, 10, 0, 0, request.generation.max_new_tokens, 1)
        parts: list[str] = []
        finish = FINISH_STOP
        for index, delta in enumerate(script):
            if self.pause_after is not None and index == self.pause_after:
                self.paused.set()
                while not self.gate.wait(0.01):
                    if cancel.is_set():
                        break
            if cancel.is_set():
                finish = FINISH_CANCELLED
                break
            parts.append(delta)
            counts = (2 * index + 2, index + 1) if self.drafts else (None, None)
            yield ReplyDelta(request.request_id, delta, *counts)
        stats = ReplyStats(
            prompt_tokens=10,
            new_tokens=len(parts),
            time_to_first_token=0.05,
            tokens_per_second=20.0,
            seed=1,
        )
        if self.drafts:
            stats = dataclasses.replace(
                stats,
                speculation="ngram",
                drafted=2 * len(parts),
                accepted=len(parts),
                baseline_rate=40 / 3,
            )
        yield ReplyDone(request.request_id, "".join(parts), finish, stats)

    def preview(self, request: ChatRequest) -> PromptPreview:
        text = "\n".join(f"{role}: {content}" for role, content in request.turns)
        return PromptPreview(request.request_id, text, len(text.split()), 0)

    def abort(self) -> None:
        pass

    def memory_in_use(self) -> int | None:
        return None

    def cancel(self) -> None:
        pass

    def unload(self) -> None:
        self.is_loaded = False


# --- a byte-level fake tokenizer and a scripted fake model --------------------------------

PAD, BOS, EOS = 0, 1, 2
OFFSET = 3  # token id = byte value + 3


class ByteTokenizer:
    """Every byte is a token, so one character can span several tokens (UTF-8)."""

    chat_template = None
    eos_token_id = EOS
    bos_token_id = BOS
    pad_token_id = PAD
    eos_token = "</s>"

    def __init__(self) -> None:
        self.decode_lengths: list[int] = []

    def encode(self, text: str) -> list[int]:
        return [b + OFFSET for b in text.encode("utf-8")]

    def __call__(self, text: str, add_special_tokens: bool = True) -> Any:
        ids = ([BOS] if add_special_tokens else []) + self.encode(text)
        return type("Encoding", (), {"input_ids": ids})()

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        self.decode_lengths.append(len(ids))
        data = bytes(i - OFFSET for i in ids if i >= OFFSET)
        return data.decode("utf-8", errors="replace")


class FakeCache:
    """Counts cached tokens; ``crop(-n)`` removes n, as transformers' caches do."""

    def __init__(self) -> None:
        self.length = 0

    def crop(self, count: int) -> None:
        self.length = self.length + count if count < 0 else count


def fake_loaded(script: Sequence[int], *, context: int = 4096, delay: float = 0.0) -> Any:
    """A ``LoadedModel`` whose model emits ``script`` token by token (then EOS)."""
    import time

    import torch

    from vicuna_tui.engine.sources import ModelSource
    from vicuna_tui.engine.transformers.loader import LoadedModel

    class ScriptedModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.config = type("Config", (), {"vocab_size": 259, "model_type": "fake"})()
            self.calls = 0
            self.fed: list[list[int]] = []

        def get_input_embeddings(self) -> Any:
            return self

        def forward(
            self,
            input_ids: Any,
            past_key_values: Any = None,
            use_cache: bool = True,
            logits_to_keep: int = 0,
        ) -> Any:
            if delay:
                time.sleep(delay)
            self.fed.append(input_ids[0].tolist())
            step = self.calls
            self.calls += 1
            token = script[step] if step < len(script) else EOS
            logits = torch.full((1, 1, 259), -1e9)
            logits[0, 0, token] = 0.0
            cache = past_key_values or FakeCache()
            cache.length += input_ids.shape[1]
            return type("Out", (), {"logits": logits, "past_key_values": cache})()

    model = ScriptedModel()
    return LoadedModel(
        model=model,
        tokenizer=ByteTokenizer(),
        source=ModelSource("folder", Path("/fake"), "fake", "a scripted fake model"),
        device="cpu",
        dtype="float32",
        quantization=None,
        context_length=context,
        stop_token_ids=(EOS,),
        notices=(),
    )


def script_text(text: str) -> list[int]:
    return [b + OFFSET for b in text.encode("utf-8")]


# --- a tiny random LLaMA -------------------------------------------------------------------


def build_tokenizer(
    folder: Path, *, legacy_class: bool = False, empty_specials: bool = False, vocab_size: int = 300
) -> None:
    """A small BPE tokenizer with LLaMA's <unk>, <s>, </s>, saved as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"])
    corpus = [
        "hello world the capital of france is paris",
        "a chat between a user and an assistant",
        "USER: ASSISTANT: ### Human: ### Assistant:",
    ]
    tok.train_from_iterator(corpus * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(str(folder))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    if legacy_class:
        config["tokenizer_class"] = "LLaMATokenizer"
    if empty_specials:
        for key in ("bos_token", "eos_token", "unk_token"):
            config[key] = ""
        (folder / "special_tokens_map.json").write_text(
            json.dumps({"bos_token": "", "eos_token": "", "unk_token": ""})
        )
    config_path.write_text(json.dumps(config))


def tiny_llama(
    folder: Path,
    *,
    vocab_size: int = 300,
    shard: str | None = None,
    safe: bool = True,
    seed: int = 0,
    tokenizer: bool = True,
    context: int = 256,
    **tokenizer_kwargs: Any,
) -> Path:
    """Save a 2-layer random LLaMA (about 100k parameters) to ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if shard:
        kwargs["max_shard_size"] = shard
    if safe:
        model.save_pretrained(str(folder), **kwargs)
    else:
        _save_bin(model, folder, shard)
    if tokenizer:
        build_tokenizer(folder, vocab_size=min(vocab_size, 300), **tokenizer_kwargs)
    return folder


def _save_bin(model: Any, folder: Path, shard: str | None) -> None:
    """Old-style pytorch_model.bin weights (optionally in two shards with an index)."""
    import torch

    model.config.save_pretrained(str(folder))
    model.generation_config.save_pretrained(str(folder))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}

    if not shard:
        torch.save(state, folder / "pytorch_model.bin")
        return
    names = sorted(state)
    half = len(names) // 2
    weight_map = {}
    for index, part in enumerate((names[:half], names[half:]), start=1):
        filename = f"pytorch_model-{index:05d}-of-00002.bin"
        torch.save({k: state[k] for k in part}, folder / filename)
        weight_map.update(dict.fromkeys(part, filename))
    (folder / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only for the block: a read-only bind mount when running as root
    (root ignores permission bits), chmod otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], check=False)
        if mounted.returncode != 0:
            import pytest

            pytest.skip("running as root without the right to bind-mount")
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    paths = [folder, *folder.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    for p in sorted(paths, key=lambda p: len(p.parts), reverse=True):
        p.chmod(0o500 if p.is_dir() else 0o400)
    try:
        yield
    finally:
        for p in sorted(paths, key=lambda p: len(p.parts)):
            p.chmod(modes[p])
