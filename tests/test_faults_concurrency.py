"""Several vicuna-tui processes at once: a first-run conversion is done once while the
others wait for it, a lock left by a killed process is taken over, and processes
chatting on one database lose no message.  Real processes, real model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import REPO

from vicuna_tui import filelock
from vicuna_tui.store import Store

pytestmark = pytest.mark.real_model


def spawn(*args: str, stdin: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vicuna_tui", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
    )


def test_three_first_runs_at_once_convert_the_gguf_once(home: Path, tmp_path: Path) -> None:
    """The transformers path converts a GGUF into a cache on first use; before the
    lock, one launch in three read the half-written cache ("cannot load the tokenizer").
    (A two-layer random Llama with the demo's vocabulary: the same conversion, in a
    fraction of the time.)"""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import random_gguf
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    tiny = random_gguf.write(random_gguf.SHAPES["tiny"], tmp_path / "tiny.Q4_0.gguf")
    args = ("--model-path", str(tiny), "--backend", "transformers")
    launches = [
        spawn(*args, "-p", "Say hi", "--max-new-tokens", "2", "--no-save") for _ in range(3)
    ]
    results = [(p, *p.communicate(timeout=400)) for p in launches]
    for process, _out, err in results:
        assert process.returncode == 0, err[-2000:]
        assert "Traceback" not in err  # (random weights: the reply itself is noise)
    converted = [err for _, _, err in results if "converted to safetensors now" in err]
    reused = [err for _, _, err in results if "cached safetensors conversion" in err]
    assert len(converted) == 1 and len(reused) == 2
    folders = list((home / "cache" / "gguf-converted").glob("*/conversion.json"))
    assert len(folders) == 1
    assert not list((home / "cache" / "gguf-converted").glob(".converting-*"))


HOLDER = """
import sys, time
from pathlib import Path
from vicuna_tui import filelock
with filelock.held(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def hold(path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_waits_and_a_killed_holders_lock_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / ".x.lock"
    holder = hold(path)
    waited = threading.Event()
    acquired = threading.Event()

    def second() -> None:
        with filelock.held(path, waiting=waited.set):
            acquired.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert waited.wait(60)  # it says it is waiting...
    assert not acquired.is_set()  # ...and does wait
    holder.send_signal(signal.SIGKILL)  # killed: no chance to let go
    holder.wait()
    thread.join(60)
    assert acquired.is_set()

    # A lock file left behind by a dead holder is no obstacle either.
    assert path.exists()
    again = threading.Event()
    with filelock.held(path, waiting=again.set):
        pass
    assert not again.is_set()


def test_processes_chatting_on_one_database_lose_no_message(home: Path, smollm_gguf: Path) -> None:
    processes, turns = 3, 4
    prompts = "".join(f"Name a colour, number {i}.\n" for i in range(turns))
    chats = [
        spawn("--model-path", str(smollm_gguf), "--style", "simple", "--max-new-tokens", "4")
        for _ in range(processes)
    ]
    for chat in chats:
        assert chat.stdin is not None
        chat.stdin.write(prompts)
        chat.stdin.close()
    for chat in chats:
        out = chat.stdout.read() if chat.stdout else ""
        err = chat.stderr.read() if chat.stderr else ""
        assert chat.wait(300) == 0, err[-2000:]
        assert out and "Traceback" not in err
    with Store() as store:
        conversations = store.listing.conversations()
        assert len(conversations) == processes
        for conv in conversations:
            messages = store.get(conv.id).messages
            assert [m.position for m in messages] == list(range(2 * turns))
            assert [m.role for m in messages] == ["user", "assistant"] * turns
        total = store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert total == processes * turns * 2
