"""Start-up times: --help, launch to the TUI's first frame, launch to the first token.

    python benchmarks/startup.py [--runs 5]

Each is a fresh process, timed from spawn.  The first frame is read off a pseudo-terminal
(the moment the input box's placeholder is drawn); the first token is the first byte of
the reply on stdout in one-shot mode (-p).  Median (min–max) of --runs after a warm-up.
Beside it, taken turn about in the same run, the floor: a Textual app of one Input.
Bytecode is compiled first, as pip does on install (PYTHONDONTWRITEBYTECODE is dropped).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

from _common import ROOT, fmt, smollm_folder, table, write_section


def spawn_time_to(
    marker: bytes, args: list[str], env: dict[str, str], *, tty: bool, timeout: float = 120
) -> float:
    start = time.perf_counter()
    if tty:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        proc = subprocess.Popen(
            [sys.executable, "-m", "vicuna_tui", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        os.close(slave)
        reader = master
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vicuna_tui", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        reader = proc.stdout.fileno()
    seen = b""
    elapsed = None
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([reader], [], [], 0.01)
            if ready:
                try:
                    chunk = os.read(reader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
                if marker in seen:
                    elapsed = time.perf_counter() - start
                    break
    finally:
        proc.kill()
        proc.wait()
        if tty:
            os.close(master)
    if elapsed is None:
        raise SystemExit(f"never saw {marker!r}: {seen[-400:]!r}")
    return elapsed


def measure(runs: int, fn: object) -> list[float]:
    fn()  # type: ignore[operator]
    return [fn() for _ in range(runs)]  # type: ignore[operator]


BARE_APP = """
from textual.app import App
from textual.widgets import Input
class Bare(App):
    def compose(self):
        yield Input(placeholder="Message the model")
Bare().run()
"""


def spawn_code_time_to(marker: bytes, code: str, env: dict[str, str]) -> float:
    """spawn_time_to for ``python -c code`` (the floor: a bare Textual app)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    seen = b""
    try:
        while time.perf_counter() - start < 60:
            if select.select([master], [], [], 0.01)[0]:
                seen += os.read(master, 65536)
                if marker in seen:
                    return time.perf_counter() - start
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    raise SystemExit(f"never saw {marker!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    import tempfile

    folder = str(smollm_folder())
    home = tempfile.mkdtemp(prefix="startup-bench-")
    env = {**os.environ, "VICUNA_TUI_HOME": home, "TERM": "xterm-256color", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "vicuna_tui")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    rows = []

    def help_time() -> float:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "vicuna_tui", "--help"],
            capture_output=True,
            env=env,
            cwd=ROOT,
            check=True,
        )
        return time.perf_counter() - start

    helps = measure(opts.runs, help_time)
    rows.append(["vicuna-tui --help", fmt(helps, 2, " s")])
    frames: list[float] = []
    default_frames: list[float] = []
    floor: list[float] = []
    for index in range(opts.runs + 1):  # turn about; the first round warms up
        got = (
            spawn_time_to(b"essage the model", ["--model-path", folder], env, tty=True),
            spawn_time_to(b"essage the model", [], env, tty=True),
            spawn_code_time_to(b"essage the model", BARE_APP, env),
        )
        if index:
            frames.append(got[0])
            default_frames.append(got[1])
            floor.append(got[2])
    rows.append(["launch → TUI first frame (model still loading)", fmt(frames, 2, " s")])
    rows.append(["launch → TUI first frame, default model (GGUF)", fmt(default_frames, 2, " s")])
    rows.append(["the floor: a Textual app of one Input", fmt(floor, 2, " s")])
    first_tokens = measure(
        opts.runs,
        lambda: spawn_time_to(
            b"The",
            [
                "--model-path",
                folder,
                "--temperature",
                "0",
                "--no-save",
                "-p",
                "What is the capital of France?",
            ],
            env,
            tty=False,
        ),
    )
    rows.append(["launch → first token (-p, converted SmolLM2 folder)", fmt(first_tokens, 2, " s")])
    import_cost = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; t = time.perf_counter(); import torch, "
            "transformers; from transformers.models.llama import modeling_llama; "
            "print(time.perf_counter() - t)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    body = (
        "Fresh processes on this machine, bytecode compiled as pip does. Target: the first "
        "frame within 0.5 s. The floor row is what Textual itself costs here (importing it "
        "and drawing one Input), taken turn about with the TUI rows. The first frame is "
        "the chat: its transcript, input and status bar, with the chat list's and the "
        "footer's places kept; their widgets are mounted just after it. The first "
        "frame does not wait for torch (tests/test_startup.py checks that no torch or "
        "transformers module is imported by then); the first token does, and importing "
        f"torch and transformers' LLaMA code alone takes {float(import_cost.stdout):.2f} s "
        "here.\n\n" + table(["measure", "seconds"], rows)
    )
    print(body)
    write_section("startup", "Start-up", body)


if __name__ == "__main__":
    main()
