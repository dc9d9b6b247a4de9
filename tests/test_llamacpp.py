"""The llama.cpp backend on the real SmolLM2 GGUF (xllamacpp, CPU), loaded once per session."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from pathlib import Path

import pytest
from helpers import ask, run_cli

from vicuna_tui.engine import gguf_file, templates
from vicuna_tui.engine.backends import engine_for
from vicuna_tui.engine.events import (
    ChatRequest,
    PrefillProgress,
    ReplyDelta,
    ReplyDone,
    ReplyStarted,
)
from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.errors import GenerationError
from vicuna_tui.store import Store

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=40)
# "What is the capital of France?" is a near tie for this 4-bit model under llama.cpp
# ("L" -1.85 against "The" -2.01): it answers "L'Étoile...".  This phrasing is not.
QUESTION = "Which city is the capital of France?"


pytestmark = pytest.mark.real_model


def test_it_answers_paris_streamed_with_stats(llama: LlamaCppBackend) -> None:
    info = llama.info
    assert info.engine == "llamacpp" and info.quantization == "Q4_1"
    assert info.context_length == 4096  # the trained 8192, capped by default
    assert info.template == "tokenizer"  # the GGUF's own chat template
    done, deltas, _ = ask(llama, ((("user", QUESTION)),))
    assert "Paris" in done.text
    assert done.finish_reason == "stop"
    assert "".join(deltas).rstrip() == done.text
    assert len(deltas) > 3
    stats = done.stats
    assert stats.prompt_tokens > 10 and stats.new_tokens >= len(deltas)
    assert stats.time_to_first_token is not None and stats.tokens_per_second


def test_greedy_is_repeatable_and_seeds_reproduce(llama: LlamaCppBackend) -> None:
    first, _, _ = ask(llama, (("user", "Name three rivers."),))
    llama.reset_cache()
    again, _, _ = ask(llama, (("user", "Name three rivers."),))
    assert first.text == again.text and first.stats.seed is None

    gen = GenerationSettings(temperature=1.0, top_p=0.95, max_new_tokens=30, seed=1234)
    turns = (("user", "Write one sentence about the sea."),)
    a, _, _ = ask(llama, turns, gen)
    llama.reset_cache()
    b, _, _ = ask(llama, turns, gen)
    assert a.text == b.text and a.stats.seed == 1234
    other, _, _ = ask(llama, turns, dataclasses.replace(gen, seed=99))
    assert other.text != a.text

    unseeded = dataclasses.replace(gen, seed=None)
    drawn, _, _ = ask(llama, turns, unseeded)
    assert drawn.stats.seed is not None
    replayed, _, _ = ask(llama, turns, dataclasses.replace(gen, seed=drawn.stats.seed))
    assert replayed.text == drawn.text


def test_cancel_stops_within_one_token(llama: LlamaCppBackend) -> None:
    gen = GenerationSettings(temperature=0.0, max_new_tokens=200)
    done, deltas, _ = ask(
        llama, (("user", "Tell me a long story about a dragon."),), gen, cancel_after=3
    )
    assert done.finish_reason == "cancelled"
    assert done.text == "".join(deltas).rstrip()
    assert len(deltas) == 3
    assert done.stats.new_tokens <= 4


def test_cancel_during_a_long_prefill(llama: LlamaCppBackend) -> None:
    """A prompt several chunks long stops at the next chunk, before any token."""
    chunk = llama.prefill_chunk
    assert chunk == 256  # a small model on a CPU
    long = " ".join(f"word{i}" for i in range(chunk))  # about 4 chunks
    cancel = threading.Event()
    events = []
    calls = []
    original = llama._server.handle_completions

    class Spy:
        def handle_completions(self, body, *callback):  # type: ignore[no-untyped-def]
            calls.append(len(body["prompt"]))
            cancel.set()  # the user presses Esc during the first chunk
            return original(body, *callback)

    server, llama._server = llama._server, Spy()
    try:
        request = ChatRequest(turns=(("user", long),), generation=GREEDY)
        events = list(llama.generate(request, cancel))
    finally:
        llama._server = server
    done = events[-1]
    assert isinstance(done, ReplyDone) and done.finish_reason == "cancelled"
    assert done.text == "" and calls == [chunk]  # one chunk, then stopped


def test_a_long_prefill_says_how_far_it_got(llama: LlamaCppBackend) -> None:
    default, chunk = llama.prefill_chunk, 64  # small chunks: a short prompt is enough
    long = " ".join(f"word{i}" for i in range(chunk))  # about 4 chunks
    request = ChatRequest(turns=(("user", long),), generation=GREEDY)
    llama.prefill_chunk = chunk
    try:
        events = list(llama.generate(request, threading.Event()))
        again = list(llama.generate(request, threading.Event()))  # cached: nothing to read
    finally:
        llama.prefill_chunk = default
    started = next(e for e in events if isinstance(e, ReplyStarted))
    progress = [e for e in events if isinstance(e, PrefillProgress)]
    total = started.prompt_tokens
    assert total > 3 * chunk
    done = [p.done for p in progress]
    assert len(done) >= 3 and {p.total for p in progress} == {total}
    assert done[0] == started.cached_tokens + chunk  # the part cached before, then chunks
    assert all(b - a == chunk for a, b in itertools.pairwise(done))
    assert total - chunk <= done[-1] < total  # the last chunk is the reply's own request
    first_delta = next(i for i, e in enumerate(events) if isinstance(e, ReplyDelta))
    assert events.index(progress[-1]) < first_delta  # all of it before the reply
    assert isinstance(events[-1], ReplyDone)
    assert not any(isinstance(e, PrefillProgress) for e in again)


def test_multi_turn_reuses_the_prompt_cache(llama: LlamaCppBackend) -> None:
    first, _, _ = ask(llama, (("user", QUESTION),))
    assert first.stats.cached_tokens == 0
    turns = (("user", QUESTION), ("assistant", first.text), ("user", "And of Italy?"))
    second, _, started = ask(llama, turns)
    assert "Rome" in second.text
    assert second.stats.cached_tokens >= started.cached_tokens > 20
    # an edit of the first message: only the shared prefix is reused
    edited = (("user", "Which city is the capital of Germany?"),)
    third, _, _ = ask(llama, edited)
    assert third.text and third.finish_reason == "stop"
    assert 0 < third.stats.cached_tokens < started.cached_tokens


def test_stop_string_split_across_tokens(llama: LlamaCppBackend) -> None:
    gen = dataclasses.replace(GREEDY, stop=("of Fr",))  # " of" + " France"
    done, deltas, _ = ask(llama, (("user", QUESTION),), gen)
    assert done.finish_reason == "stop"
    assert done.text == "The capital"
    assert "of" not in "".join(deltas)  # the partial stop was held back, never shown


def test_a_long_history_drops_the_oldest_turns(smollm_gguf: Path) -> None:
    small = LlamaCppBackend(LoadSettings(model_path=str(smollm_gguf), context=256))
    small.load()
    try:
        assert small.info.context_length == 256
        filler = "tell me more " * 12
        turns: tuple[tuple[str, str], ...] = ()
        for i in range(6):
            turns += (("user", f"{filler} {i}"), ("assistant", f"answer {i} " * 6))
        turns += (("user", QUESTION),)
        gen = GenerationSettings(temperature=0.0, max_new_tokens=24)
        done, _, started = ask(small, turns, gen)
        assert started.dropped_turns > 0 and done.stats.dropped_turns == started.dropped_turns
        assert started.prompt_tokens + 24 <= 256
        preview = small.preview(ChatRequest(turns=turns, generation=gen))
        assert "answer 0" not in preview.text and QUESTION in preview.text
    finally:
        small.unload()


def test_prompts_are_byte_identical_to_the_transformers_path(
    llama: LlamaCppBackend, backend: object
) -> None:
    turns = (("user", "Hi there"), ("assistant", "Hello! How can I help?"), ("user", "A poem?"))
    names = [templates.AUTO, templates.TOKENIZER_TEMPLATE, *templates.TEMPLATES]
    for name in names:
        for system in (None, "Be brief."):
            request = ChatRequest(turns=turns, template=name, system_message=system)
            ours = llama.prepare(request)
            theirs = backend.prepare(request)  # type: ignore[attr-defined]
            assert ours.text == theirs.text, name
            # and llama.cpp's tokenizer reads it as transformers' does
            assert ours.ids == theirs.ids, name


def test_gguf_tables_match_the_gguf_package() -> None:
    gguf = pytest.importorskip("gguf")
    for kind, size in gguf_file.TENSOR_TYPE_SIZES.items():
        assert gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(kind)] == size
    for kind, name in gguf_file.FILE_TYPES.items():
        assert gguf.LlamaFileType(kind).name.split("_", 1)[1] == name


def test_metadata_of_the_demo_gguf(smollm_gguf: Path) -> None:
    info = gguf_file.read(smollm_gguf)
    assert (info.architecture, info.context_length, info.file_type) == ("llama", 8192, "Q4_1")
    assert info.token("eos") == "<|im_end|>" and len(info.tokens) == 49152
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert info.tensor_bytes <= info.file_size


def test_backend_choice(smollm_gguf: Path, smollm_dir: Path) -> None:
    assert engine_for(LoadSettings()) == "llamacpp"  # the default model
    assert engine_for(LoadSettings(model_path=str(smollm_gguf))) == "llamacpp"
    assert engine_for(LoadSettings(model_path=str(smollm_dir))) == "transformers"
    forced = LoadSettings(model_path=str(smollm_gguf), backend="transformers")
    assert engine_for(forced) == "transformers"
    assert engine_for(LoadSettings(model_path="a/b", gguf_file="b.Q4_K_M.gguf")) == "llamacpp"


# -- the command line ------------------------------------------------------------------


def test_one_shot_on_a_gguf_never_imports_torch(smollm_gguf: Path, home: Path) -> None:
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['vicuna-tui', '--model-path', sys.argv[1], '--temperature', '0', "
        "'--max-new-tokens', '12', '-p', sys.argv[2]]\n"
        "try:\n"
        "    runpy.run_module('vicuna_tui', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules)\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
    )
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", probe, str(smollm_gguf), QUESTION],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Paris" in result.stdout, result.stderr
    assert "HEAVY=\n" in result.stderr, result.stderr
    # nothing of llama.cpp's log reaches the terminal
    for noise in ("llama_", "slot ", "srv ", "load_tensors", "print_info"):
        assert noise not in result.stderr and noise not in result.stdout


def test_greedy_replay_on_llamacpp_is_exact(smollm_gguf: Path, home: Path) -> None:
    made = run_cli(
        "--model-path",
        str(smollm_gguf),
        "--temperature",
        "0",
        "--max-new-tokens",
        "30",
        "--style",
        "simple",
        input=f"{QUESTION}\nAnd of Italy?\n",
    )
    assert made.returncode == 0, made.stderr
    with Store() as store:
        original = store.get(store.resolve("last"))
    assert original.load.get("backend") in ("auto", "llamacpp")
    reply = original.messages[1]
    assert (reply.backend, reply.model, reply.template) == (
        "llamacpp",
        "SmolLM2-135M-Instruct.Q4_1",
        "tokenizer",
    )
    assert reply.settings is not None and reply.settings["temperature"] == 0.0
    assert original.messages[0].backend is None  # the user's own words
    replayed = run_cli("replay", original.id[:8], "--style", "simple")
    assert replayed.returncode == 0, replayed.stderr
    assert "2 of 2 replies identical" in replayed.stdout


@pytest.mark.parametrize("damage", ["truncated", "random", "empty", "header-only"])
def test_a_bad_gguf_gets_a_clear_message(
    damage: str, smollm_gguf: Path, tmp_path: Path, home: Path
) -> None:
    data = smollm_gguf.read_bytes()
    bad = tmp_path / "broken.gguf"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) - 2_000_000])
    elif damage == "random":
        bad.write_bytes(bytes((i * 7919 + 13) % 256 for i in range(200_000)))
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        bad.write_bytes(data[:100_000])
    result = run_cli("--model-path", str(bad), "-p", "hi")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert str(bad) in result.stderr
    expected = "not a GGUF file" if damage in ("random", "empty") else "is cut short"
    assert expected in result.stderr
    assert "hint:" in result.stderr


def test_hub_gguf_from_a_prepared_cache(smollm_gguf: Path, tmp_path: Path, home: Path) -> None:
    """--model-path OWNER/REPO --gguf-file NAME finds the file in the Hugging Face cache
    (offline here), and without --gguf-file lists the repo's GGUFs."""
    cache = tmp_path / "hf"
    repo = cache / "models--TheBloke--SmolLM2-GGUF"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in ("smol.Q4_1.gguf", "smol.Q8_0.gguf"):
        (snapshot / name).symlink_to(smollm_gguf)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    result = run_cli(
        "--model-path",
        "TheBloke/SmolLM2-GGUF",
        "--gguf-file",
        "smol.Q4_1.gguf",
        "--temperature",
        "0",
        "--max-new-tokens",
        "16",
        "--json",
        "-p",
        QUESTION,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in json.loads(result.stdout.splitlines()[-1])["text"]
    assert "TheBloke/SmolLM2-GGUF" in result.stderr

    listing = run_cli("--model-path", "TheBloke/SmolLM2-GGUF", "-p", "hi", env=env)
    assert listing.returncode == 2 and "Traceback" not in listing.stderr
    assert "smol.Q4_1.gguf" in listing.stderr and "smol.Q8_0.gguf" in listing.stderr
    assert "--gguf-file" in listing.stderr


def test_quantization_flags_on_a_gguf_say_what_happens(smollm_gguf: Path, home: Path) -> None:
    result = run_cli(
        "--model-path", str(smollm_gguf), "--load-8bit", "--max-new-tokens", "2", "-p", "hi"
    )
    assert result.returncode == 0, result.stderr
    assert "file's own quantization (Q4_1)" in result.stderr
    memory = run_cli("--model-path", str(smollm_gguf), "--max-gpu-memory", "4GiB", "-p", "hi")
    assert memory.returncode == 2 and "--gpu-layers" in memory.stderr
    cpu_layers = run_cli("--model-path", str(smollm_gguf), "--gpu-layers", "4", "-p", "hi")
    assert cpu_layers.returncode == 2 and "sees no GPU" in cpu_layers.stderr


def craft_gguf(path: Path, architecture: str, elements: int) -> None:
    """A minimal GGUF v3: a few metadata keys and one F32 tensor of ``elements``
    (the file is made sparse to its full length, so a huge one takes no disk)."""
    import struct

    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    kvs = [
        (string("general.architecture") + struct.pack("<I", 8) + string(architecture)),
        (string(f"{architecture}.block_count") + struct.pack("<I", 4) + struct.pack("<I", 1)),
        (string(f"{architecture}.context_length") + struct.pack("<I", 4) + struct.pack("<I", 512)),
    ]
    tensor = string("token_embd.weight") + struct.pack("<I", 1) + struct.pack("<Q", elements)
    tensor += struct.pack("<I", 0) + struct.pack("<Q", 0)  # F32 at offset 0
    header = b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", 1, len(kvs))
    data = header + b"".join(kvs) + tensor
    data += b"\0" * ((-len(data)) % 32)
    with path.open("wb") as handle:
        handle.write(data)
        handle.truncate(len(data) + elements * 4)


def test_a_model_bigger_than_memory_is_refused(tmp_path: Path, home: Path) -> None:
    import psutil

    huge = tmp_path / "huge.gguf"
    elements = (psutil.virtual_memory().total * 2) // 4  # twice this machine's memory
    craft_gguf(huge, "llama", elements)
    result = run_cli("--model-path", str(huge), "-p", "hi")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "huge.gguf needs about" in result.stderr and "GiB is free" in result.stderr
    assert "smaller quantization" in result.stderr


def test_an_unknown_architecture_is_named(tmp_path: Path, home: Path) -> None:
    odd = tmp_path / "odd.gguf"
    craft_gguf(odd, "nosucharch", 1024)
    result = run_cli("--model-path", str(odd), "-p", "hi")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "'nosucharch' model, an architecture this llama.cpp does not know" in result.stderr


def test_switching_back_to_the_branch_left_finds_it_cached(llama: LlamaCppBackend) -> None:
    """Two KV caches: an early edit goes to the second, so the branch it leaves stays
    cached, and its next turn reuses the whole prompt before it."""
    from vicuna_tui.session import ChatSession

    assert len(llama._slots) == 2  # a CPU with memory to spare keeps two
    session = ChatSession(None, generation=dataclasses.replace(GREEDY, max_new_tokens=12))
    session.set_model(llama.info)

    def turn(request: ChatRequest) -> ReplyDone:
        done = list(llama.generate(request, threading.Event()))[-1]
        assert isinstance(done, ReplyDone)
        session.record_reply(done.text, done.finish_reason, done.stats)
        return done

    for n in range(4):
        last = turn(session.add_user(f"Tell me one short fact about the number {n + 1}."))
    edit = session.edit_at(2, "Tell me one short fact about the number 22.")
    assert edit is not None
    turn(edit)
    assert session.switch_branch(2, -1)  # back to the first branch
    after = turn(session.add_user("And about the number 5?"))
    # all the prompt before it (and the reply the slot wrote), as for a normal turn
    assert after.stats.cached_tokens >= last.stats.prompt_tokens


def test_a_second_kv_cache_only_when_it_is_small(smollm_gguf: Path) -> None:
    from vicuna_tui.engine.llamacpp.fit import branch_slots, kv_cache_bytes

    info = gguf_file.read(smollm_gguf)
    assert kv_cache_bytes(info, 4096) < 100 * 2**20  # SmolLM2: 94 MiB
    assert branch_slots(info, 4096, gpu_layers=0) == 2
    assert branch_slots(info, 4096 * 8, gpu_layers=0) == 1  # 750 MiB: over the cap
    assert branch_slots(info, 4096, gpu_layers=31) == 1  # the GPU's memory is the model's


def test_the_in_process_server_serves_nothing_we_do_not_use(llama: LlamaCppBackend) -> None:
    """Its loopback listener: no web page, no slots, no other origin, the key required."""
    import urllib.error
    import urllib.request

    base = llama._server.listening_address
    seen = {}
    for path in ("/", "/slots", "/props", "/v1/models"):
        request = urllib.request.Request(base + path, headers={"Origin": "http://evil.example"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                seen[path] = (response.status, response.headers.get("Access-Control-Allow-Origin"))
        except urllib.error.HTTPError as exc:
            seen[path] = (exc.code, exc.headers.get("Access-Control-Allow-Origin"))
    assert all(status in (401, 404) for status, _ in seen.values()), seen
    assert all(origin != "http://evil.example" for _, origin in seen.values()), seen


def test_a_damaged_gguf_is_refused_at_load(smollm_gguf: Path, tmp_path: Path, home: Path) -> None:
    """GGUFs whose header is whole but whose numbers are not: garbage tensor data, and a
    norm of NaNs.  Their replies were empty (greedy) or noise (sampled) with exit 0; the
    load now asks for one token's probability and refuses a file that has none."""
    import random
    import shutil

    import gguf
    import numpy as np

    garbage = tmp_path / "garbage.gguf"
    shutil.copyfile(smollm_gguf, garbage)
    offset = gguf.GGUFReader(smollm_gguf).data_offset
    with garbage.open("r+b") as handle:
        handle.seek(offset)
        handle.write(random.Random(1).randbytes(garbage.stat().st_size - offset))
    nan = tmp_path / "nan-norm.gguf"
    shutil.copyfile(smollm_gguf, nan)
    reader = gguf.GGUFReader(nan, "r+")
    norm = next(t for t in reader.tensors if t.name == "output_norm.weight")
    norm.data[:] = np.nan
    reader.data.flush()
    del reader
    for damaged in (garbage, nan):
        for temperature in ("0", "0.8"):
            result = run_cli(
                "--model-path", str(damaged), "-p", "What is 2+2?",
                "--temperature", temperature, "--max-new-tokens", "8",
            )  # fmt: skip
            assert "Traceback" not in result.stderr and not result.stdout.strip()
            assert result.returncode == 2, result.stderr
            assert f"{damaged.name} is damaged: the model's output is not a number" in (
                result.stderr
            )
            assert "download the file again" in result.stderr
    # The same file whole answers: the check costs one token and refuses nothing good.
    fine = run_cli("--model-path", str(smollm_gguf), "-p", "What is 2+2?", "--max-new-tokens", "4")
    assert fine.returncode == 0 and fine.stdout.strip()


def test_the_first_logits_of_a_reply_are_checked_on_the_transformers_path() -> None:
    import torch

    from vicuna_tui.engine.transformers.backend import FirstLogits

    check = FirstLogits("broken-model")
    with pytest.raises(GenerationError) as caught:
        check(torch.tensor([[0.1, float("nan"), 0.3]]))
    assert "broken-model's output is not a number" in caught.value.message
    assert "--dtype float32" in caught.value.hint
    again = FirstLogits("fine-model")
    again(torch.tensor([[0.1, 0.2]]))
    again(torch.tensor([[float("inf")]]))  # checked once a reply: the first token only


def test_a_reply_ended_before_any_text_is_said_to_have_stopped() -> None:
    from vicuna_tui.engine.events import FINISH_STOP
    from vicuna_tui.engine.prompting import nothing_said

    notice = nothing_said("  \n", FINISH_STOP)
    assert notice is not None and "the model stopped at once" in notice.text
    assert "--conv-template" in notice.text
    assert nothing_said("Paris.", FINISH_STOP) is None
    assert nothing_said("", "length") is None and nothing_said("", "cancelled") is None
