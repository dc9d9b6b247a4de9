"""The real app in a real terminal (tmux): type a question, read the answer off the screen."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def tmux(socket: str, *args: str) -> str:
    result = subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30
    )
    return result.stdout


def app_env(home: Path, **extra: object) -> str:
    """The environment a tmux test's app runs in, as ``NAME=value`` words for ``env``."""
    values = {
        "VICUNA_TUI_HOME": home,
        "HF_HUB_OFFLINE": "1",
        "TERM": "xterm-256color",
        "PYTHONPATH": REPO,
        **extra,
    }
    return " ".join(f"{k}={v}" for k, v in values.items())


def screen_until(socket: str, text: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = tmux(socket, "capture-pane", "-p", "-t", "chat")
        if text in shown:
            return shown
        time.sleep(0.25)
    raise AssertionError(f"{text!r} never appeared on screen:\n{shown}")


def test_type_a_question_and_read_the_answer(smollm_gguf: Path, home: Path) -> None:
    """The default: SmolLM2's packaged GGUF on llama.cpp, in the model's own process."""
    socket = f"vicuna-test-{uuid.uuid4().hex[:8]}"
    env = app_env(home)
    command = (
        f"env -u COLUMNS -u LINES {env} {sys.executable} -m vicuna_tui --temperature 0; "
        "echo VICUNA_EXIT=$?; sleep 30"
    )
    tmux(socket, "new-session", "-d", "-s", "chat", "-x", "120", "-y", "36", command)
    try:
        screen_until(socket, "Message the model")  # the first frame, before the model
        shown = screen_until(socket, "RAM ")  # the status bar once the model is loaded
        assert "llama.cpp" in shown and "Q4_1" in shown
        assert "Type a message and press Enter" in shown  # the first screen says how
        assert model_processes(home), "the model is not in its own process"
        tmux(socket, "send-keys", "-t", "chat", "Which city is the capital of France?")
        tmux(socket, "send-keys", "-t", "chat", "Enter")
        shown = screen_until(socket, "Paris")
        assert "Which city is the capital of France?" in shown
        for noise in ("llama_", "slot ", "srv ", "load_tensors"):
            assert noise not in shown  # llama.cpp's log stays in engine.log
        screen_until(socket, "tok/s")  # the reply finished and its stats are shown
        tmux(socket, "send-keys", "-t", "chat", "C-q")
        screen_until(socket, "VICUNA_EXIT=0")
    finally:
        tmux(socket, "kill-server")
    assert os.path.exists(home / "data" / "conversations.db")
    log = home / "log" / "engine.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "srv" in log.read_text(errors="replace")  # llama.cpp's own log went here
    assert not model_processes(home), "quitting left the model's process running"


def model_processes(home: Path) -> list[int]:
    """The app's model process(es): ``python -m vicuna_tui.engine.process`` for ``home``."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "vicuna_tui.engine.process" not in (process.info["cmdline"] or []):
                continue
            if process.environ().get("VICUNA_TUI_HOME") == str(home):
                found.append(process.pid)
        except psutil.Error:
            pass
    return found


def test_an_arena_battle_on_both_local_backends(
    smollm_gguf: Path, smollm_dir: Path, home: Path
) -> None:
    """The same weights on llama.cpp and on transformers, each in its own process: one
    prompt, two live replies, a blind vote, the names after it, the battle saved."""
    socket = f"vicuna-arena-{uuid.uuid4().hex[:8]}"
    env = app_env(home)
    command = (
        f"env -u COLUMNS -u LINES {env} {sys.executable} -m vicuna_tui arena --temperature 0 "
        "--max-new-tokens 24 "
        f"--model-path {smollm_gguf} --model-path {smollm_dir}; echo VICUNA_EXIT=$?; sleep 30"
    )
    tmux(socket, "new-session", "-d", "-s", "chat", "-x", "160", "-y", "40", command)
    try:
        screen_until(socket, "Type a prompt below")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            shown = tmux(socket, "capture-pane", "-p", "-t", "chat")
            if shown.count(" ready ") + shown.count(" ready\n") >= 2:
                break
            time.sleep(0.25)
        assert len(model_processes(home)) == 2, "each side has its own model process"
        tmux(socket, "send-keys", "-t", "chat", "Which city is the capital of France?")
        tmux(socket, "send-keys", "-t", "chat", "Enter")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            shown = tmux(socket, "capture-pane", "-p", "-t", "chat")
            if shown.count("done") >= 2:
                break
            time.sleep(0.25)
        assert shown.count("Which city is the capital of France?") == 2, shown
        assert "Paris" in shown
        # blind: neither the names nor the speeds are on screen before the vote
        for telling in ("llama.cpp", "transformers", "tok/s", "SmolLM2"):
            assert telling not in shown, telling
        # "b", as a terminal sends it, votes in the empty input (Alt+B arrives as ESC b,
        # which is Ctrl+Left: it never voted)
        tmux(socket, "send-keys", "-t", "chat", "-H", "62")
        shown = screen_until(socket, "Model A ·")
        assert "llama.cpp Q4_1" in shown and "transformers float32" in shown
        # the notice is a line under the head, and no toast covers B's revealed name
        lines = shown.splitlines()
        titles = next(i for i, line in enumerate(lines) if "Model A ·" in line)
        assert "Model B · SmolLM2-135M-Instruct" in lines[titles], lines[titles]
        assert any("Voted: B is better." in line for line in lines[:titles])
        screen_until(socket, "tok/s")
        tmux(socket, "send-keys", "-t", "chat", "C-q")
        screen_until(socket, "VICUNA_EXIT=0")
    finally:
        tmux(socket, "kill-server")
    assert not model_processes(home), "quitting left a model's process running"
    from vicuna_tui.store import Store

    with Store() as store:
        [battle] = store.battles.all()
    assert battle.vote == "b" and battle.turns == 1
    names = sorted([battle.model_a, battle.model_b])
    assert names[0].startswith("SmolLM2-135M-Instruct") and names[0].endswith("(llama.cpp Q4_1)")
    assert names[1].startswith("SmolLM2-135M-Instruct")
    assert names[1].endswith("(transformers float32)")
    assert battle.settings["threads"] == [max(1, (os.cpu_count() or 2) // 2)] * 2


def test_ctrl_q_while_the_model_loads_ends_the_model_process(
    smollm_gguf: Path, home: Path, tmp_path: Path
) -> None:
    """A load that does not end (a stuck read or library call) cannot keep the model's
    process, and its memory, once the user quits: Ctrl+Q, as the terminal sends it."""
    from test_process import STUCK_LOAD

    stuck = tmp_path / "stuck"
    stuck.mkdir()
    (stuck / "sitecustomize.py").write_text(STUCK_LOAD)
    mark = tmp_path / "loading.pid"
    socket = f"vicuna-test-{uuid.uuid4().hex[:8]}"
    env = app_env(home, PYTHONPATH=f"{stuck}:{REPO}", VICUNA_STUCK_MARK=mark)
    command = (
        f"env -u COLUMNS -u LINES {env} {sys.executable} -m vicuna_tui "
        f"--model-path {smollm_gguf}; echo VICUNA_EXIT=$?; sleep 30"
    )
    tmux(socket, "new-session", "-d", "-s", "chat", "-x", "120", "-y", "36", command)
    try:
        screen_until(socket, "Message the model")
        deadline = time.monotonic() + 60
        while not (mark.exists() and mark.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = int(mark.read_text())
        assert model_processes(home) == [pid]
        tmux(socket, "send-keys", "-t", "chat", "-H", "11")  # Ctrl+Q: the byte 0x11
        screen_until(socket, "VICUNA_EXIT=0", timeout=30)
    finally:
        tmux(socket, "kill-server")
    deadline = time.monotonic() + 10
    while model_processes(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not model_processes(home), "quitting during the load left the model's process"
