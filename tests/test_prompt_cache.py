"""The prompt cache's bound reaches llama.cpp, and what we say it holds is what
llama.cpp's own accounting says (its "cache state" log line), on the real GGUF."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vicuna_tui.engine import gguf_file
from vicuna_tui.engine.llamacpp.fit import check_memory, kv_cache_bytes, prompt_cache_mib
from vicuna_tui.engine.llamacpp.prompt_cache import HostPromptCache
from vicuna_tui.errors import OutOfMemoryError

# Runs in its own process so that llama.cpp's log (stderr) can be read: many distinct
# questions through one backend, printing after each what we say the cache holds.
SCRIPT = r"""
import json, sys, threading
from vicuna_tui.engine.llamacpp import backend as llamacpp
from vicuna_tui.engine.events import ChatRequest, ReplyDone
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings

original = llamacpp.server_params
def loud(*args, **kwargs):
    params = original(*args, **kwargs)
    params.verbosity = 4  # llama.cpp's prompt cache says what it holds at this level
    return params
llamacpp.server_params = loud

mib = None if sys.argv[2] == "auto" else int(sys.argv[2])
backend = llamacpp.LlamaCppBackend(
    LoadSettings(model_path=sys.argv[1], device="cpu", threads=1, prompt_cache_mib=mib),
    native_log=True,
)
info = backend.load()
print(json.dumps({"bound": info.prompt_cache_mib}), flush=True)
for i in range(int(sys.argv[3])):
    question = f"Question {i}: " + f"tell me everything about the number {i}. " * 8
    request = ChatRequest(
        turns=(("user", question),), generation=GenerationSettings(temperature=0, max_new_tokens=2)
    )
    for event in backend.generate(request, threading.Event()):
        if isinstance(event, ReplyDone):
            print(json.dumps({"held": event.stats.prompt_cache_bytes}), flush=True)
            sys.stderr.write("REPLY DONE\n")
            sys.stderr.flush()
backend.unload()
"""

STATE = re.compile(r"cache state: (\d+) prompts, ([\d.]+) MiB \(limits: ([\d.]+) MiB")


def run(gguf: Path, mib: str, questions: int) -> tuple[int, list[int], list[tuple[int, float]]]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(gguf), mib, str(questions)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    bound = lines[0]["bound"]
    held = [line["held"] for line in lines[1:]]
    # llama.cpp's own accounting as it stood when each reply ended
    states: list[tuple[int, float]] = []
    last = (0, 0.0)
    for line in result.stderr.splitlines():
        found = STATE.search(line)
        if found:
            assert float(found.group(3)) == bound  # our bound is the one llama.cpp keeps
            last = (int(found.group(1)), float(found.group(2)))
        # llama.cpp's threads write to the same stderr: our mark may share a line
        if "REPLY DONE" in line:
            states.append(last)
    return bound, held, states


def test_the_prompt_cache_stays_under_its_bound_and_we_say_what_it_holds(
    smollm_gguf: Path,
) -> None:
    bound, held, states = run(smollm_gguf, "8", 10)
    assert bound == 8
    assert len(states) == 10
    # Each question's state is about 2 MiB: the bound of 8 MiB holds three of them.
    assert max(mib for _, mib in states) <= 8
    assert states[-1][0] >= 2  # it did keep prompts, up to the bound
    for (_, mib), ours in zip(states, held, strict=True):
        assert ours is not None
        assert abs(ours / 2**20 - mib) <= 0.05 * mib + 0.1, (states, held)


def test_the_prompt_cache_off_keeps_nothing(smollm_gguf: Path) -> None:
    bound, held, states = run(smollm_gguf, "0", 3)
    assert bound == 0 and held == [0, 0, 0]
    assert all(prompts == 0 for prompts, _ in states)


def test_the_default_bound_is_a_few_contexts_within_a_quarter_of_free_memory(
    smollm_gguf: Path,
) -> None:
    info = gguf_file.read(smollm_gguf)
    one_context = kv_cache_bytes(info, 4096)
    chosen = prompt_cache_mib(info, 4096, "f16", 0, None)
    assert chosen == 4 * one_context // 2**20  # this machine has room for four
    assert prompt_cache_mib(info, 4096, "f16", 0, 0) == 0
    assert prompt_cache_mib(info, 4096, "q8_0", 0, None) < chosen  # half the bytes a token


def test_host_cache_rules() -> None:
    cache = HostPromptCache(limit_bytes=100, bytes_per_token=10)
    a, b, c = [1] * 4, [2] * 4, [3] * 4
    cache.before_request([], a)  # an empty slot: nothing set aside
    assert cache.held == 0
    cache.before_request(a, [*a, 9])  # a continuation keeps the slot
    assert cache.held == 0
    cache.before_request([*a, 9], b)  # another prompt: the slot is set aside
    assert (cache.prompts, cache.held) == (1, 50)
    cache.before_request(b, [*a, 9, 9])  # back to a: taken out of the cache, b set aside
    assert (cache.prompts, cache.held) == (1, 40)
    cache.before_request([*a, 9, 9], c)  # a (6 tokens) set aside: 100, at the bound
    cache.before_request(c, [5] * 4)  # c set aside: the oldest (b) makes room
    assert cache.held <= 100 and cache.prompts == 2
    cache.before_request([7] * 11, [8])  # larger than the bound: not kept
    assert cache.held <= 100


def test_the_fit_check_counts_kv_type_and_prompt_cache(smollm_gguf: Path) -> None:
    info = gguf_file.read(smollm_gguf)
    weights, kv = info.tensor_bytes, kv_cache_bytes(info, 4096)
    free = weights + kv + 10 * 2**20
    check_memory(info, 4096, 0, "f16", 0, free=free)  # fits
    with pytest.raises(OutOfMemoryError) as refused:
        check_memory(info, 4096, 0, "f16", 32, free=free)
    message = refused.value.message + " " + refused.value.hint
    assert "32 MiB of prompt cache" in message and "90 MiB of f16 KV cache" in message
    assert "--prompt-cache-mib" in message and "--kv-type q8_0" in message
    check_memory(info, 4096, 0, "q8_0", 32, free=free)  # a q8_0 KV cache makes room


class _FakeGpuBuild:
    """What a CUDA build of xllamacpp reports: its devices and their free memory."""

    class ggml_backend_dev_type:
        GGML_BACKEND_DEVICE_TYPE_CPU = 0
        GGML_BACKEND_DEVICE_TYPE_GPU = 1
        GGML_BACKEND_DEVICE_TYPE_IGPU = 2

    def __init__(self, free: int) -> None:
        self.free = free

    def get_device_info(self) -> list[dict[str, object]]:
        return [
            {"name": "CPU", "type": 0, "memory_free": 2**40},
            {"name": "CUDA0", "type": 1, "memory_free": self.free},
        ]


def test_the_gpu_fit_check_counts_layers_against_the_gpus_free_memory(
    smollm_gguf: Path,
) -> None:
    from vicuna_tui.engine.llamacpp.fit import placement
    from vicuna_tui.engine.settings import LoadSettings

    info = gguf_file.read(smollm_gguf)
    blocks = (info.block_count or 0) + 1
    per_layer = (info.tensor_bytes + kv_cache_bytes(info, 4096)) / blocks
    half = _FakeGpuBuild(int(per_layer * blocks / 2))  # about half the model fits
    roomy = _FakeGpuBuild(2**40)

    notes: list[str] = []
    auto = LoadSettings(model_path=str(smollm_gguf))
    assert placement(auto, roomy, info, 4096, notes) == (blocks, "cuda0") and not notes
    # Chosen by us: as many layers as fit, the rest on the CPU, and a note says so.
    layers, device = placement(auto, half, info, 4096, notes)
    assert 0 < layers < blocks and device == "cuda0"
    assert layers == int(per_layer * blocks / 2 * 0.9 // per_layer)
    assert f"{layers} of {blocks} layers fit" in notes[0] and "--gpu-layers N" in notes[0]
    # Chosen by the user and too many: refused with the numbers and the count that fits.
    with pytest.raises(OutOfMemoryError) as refused:
        placement(
            LoadSettings(model_path=str(smollm_gguf), gpu_layers=blocks), half, info, 4096, []
        )
    message = refused.value.message + " " + refused.value.hint
    assert f"--gpu-layers {blocks}" in message and "of f16 KV cache" in message
    assert f"try --gpu-layers {layers}" in message and "CUDA0 has" in message
    # A count that fits is kept as asked; nothing fits: the CPU, and the label says so.
    fits = LoadSettings(model_path=str(smollm_gguf), gpu_layers=layers)
    assert placement(fits, half, info, 4096, []) == (layers, "cuda0")
    assert placement(auto, _FakeGpuBuild(1), info, 4096, []) == (0, "cpu")


@pytest.mark.real_model
def test_coming_back_to_a_chat_is_read_from_the_prompt_cache(smollm_gguf: Path) -> None:
    """Three long chats in turn through one backend (two slots): coming back to the
    first takes its state back from llama.cpp's prompt cache, whole.  The first chunk
    of a long prompt used to start where the slot's own tokens ended, and llama.cpp
    then kept only that chunk's share of what it took back."""
    import threading

    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.settings import GenerationSettings, LoadSettings

    backend = LlamaCppBackend(LoadSettings(model_path=str(smollm_gguf), device="cpu"))
    backend.load()
    assert backend.prefill_chunk < 600  # the prompts below are read in chunks

    def ask(turns: list[tuple[str, str]]) -> ReplyDone:
        request = ChatRequest(
            turns=tuple(turns), generation=GenerationSettings(temperature=0, max_new_tokens=4)
        )
        done = [e for e in backend.generate(request, threading.Event()) if isinstance(e, ReplyDone)]
        turns.append(("assistant", done[0].text))
        return done[0]

    try:
        chats = [
            [("user", f"Chat {c}: " + f"remember the number {c} and the colour blue. " * 60)]
            for c in range(3)
        ]
        first = [ask(chat).stats.prompt_tokens for chat in chats]
        assert min(first) > 2 * backend.prefill_chunk
        chats[0].append(("user", "Which number was it?"))
        back = ask(chats[0]).stats
        assert back.cached_tokens >= first[0] - 2, (back.cached_tokens, first[0])
    finally:
        backend.unload()
