"""Time to first token as a chat grows: turns 1, 5, 10 and 20.

    python benchmarks/turns.py [--runs 5] [--turns 20] [--tokens 32]

The same scripted 20-turn chat (greedy, --conv-template zero_shot so both programs
send the same prompts, 32 new tokens a turn) through:

* the engine with its KV cache kept between turns, and with it cleared before every
  turn (what FastChat does): time to first token from the engine's stats;
* vicuna-tui --style simple and FastChat's CLI (python -m fastchat.serve.cli --style
  programmatic --device cpu, from .fastchat-venv) as subprocesses: the time from writing
  the prompt to the first reply text on stdout.  FastChat's programmatic output prints a
  word once the next one starts, which adds about one token to its figure.

Median (min–max) of --runs whole chats after a warm-up chat.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import ROOT, fmt, smollm_folder, table, write_section

PROMPTS = [f"Tell me one short fact about the number {n}." for n in range(1, 41)]
CHECK = (1, 5, 10, 20)


def engine_chat(backend: Any, turns: int, tokens: int, reuse: bool) -> list[float]:
    from vicuna_tui.engine.events import ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings
    from vicuna_tui.session import ChatSession

    backend.reset_cache()
    session = ChatSession(
        None,
        generation=GenerationSettings(temperature=0.0, max_new_tokens=tokens),
        template="zero_shot",
    )
    session.set_model(backend.info)
    ttfts = []
    for prompt in PROMPTS[:turns]:
        if not reuse:
            backend.reset_cache()
        done = list(backend.generate(session.add_user(prompt), threading.Event()))[-1]
        assert isinstance(done, ReplyDone)
        session.record_reply(done.text, done.finish_reason, done.stats)
        ttfts.append(done.stats.time_to_first_token or 0.0)
    return ttfts


class Reader:
    def __init__(self, stream: Any) -> None:
        self.fd = stream.fileno()
        self.buffer = b""

    def until(self, marker: bytes, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError(f"waiting for {marker!r}: {self.buffer[-300:]!r}")
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise EOFError(self.buffer[-500:])
                self.buffer += chunk
        now = time.perf_counter()
        self.buffer = self.buffer[self.buffer.index(marker) + len(marker) :]
        return now

    def text(self) -> float:
        """Wait for something other than whitespace; returns when it came."""
        while not self.buffer.strip():
            if select.select([self.fd], [], [], 0.5)[0]:
                self.buffer += os.read(self.fd, 65536)
        return time.perf_counter()


def ours_visible(folder: Path, turns: int, tokens: int, home: str) -> list[float]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vicuna_tui",
            "--model-path",
            str(folder),
            "--style",
            "simple",
            "--conv-template",
            "zero_shot",
            "--temperature",
            "0",
            "--max-new-tokens",
            str(tokens),
            "--no-save",
            "--stats",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "VICUNA_TUI_HOME": home, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdin and proc.stdout and proc.stderr
    out, err = Reader(proc.stdout), Reader(proc.stderr)
    err.until(b"context:")  # loaded
    ttfts = []
    for prompt in PROMPTS[:turns]:
        out.buffer = b""
        start = time.perf_counter()
        proc.stdin.write((prompt + "\n").encode())
        proc.stdin.flush()
        ttfts.append(out.text() - start)
        err.until(b"[stats]")
        # The reply's last bytes on stdout may come after its stats on stderr: take them
        # now, so that they are not taken for the next reply's first text.
        while select.select([out.fd], [], [], 0.2)[0]:
            if not os.read(out.fd, 65536):
                break
    proc.stdin.close()
    proc.wait(timeout=60)
    return ttfts


def fastchat_visible(folder: Path, turns: int, tokens: int) -> list[float]:
    from fastchat_env import ensure
    from test_fastchat import fastchat_model

    python = str(ensure())
    work = Path(tempfile.mkdtemp(prefix="fastchat-cli-"))
    model = fastchat_model(folder, work)
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "fastchat.serve.cli",
            "--model-path",
            str(model),
            "--device",
            "cpu",
            "--style",
            "programmatic",
            "--conv-template",
            "zero_shot",
            "--temperature",
            "0",
            "--max-new-tokens",
            str(tokens),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=work,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdin and proc.stdout
    out = Reader(proc.stdout)
    ttfts = []
    for prompt in PROMPTS[:turns]:
        start = time.perf_counter()
        proc.stdin.write((prompt + " __END_OF_A_MESSAGE_47582648__\n").encode())
        proc.stdin.flush()
        out.until(b"[!OP:Assistant]: ", timeout=600)
        ttfts.append(out.text() - start)
        out.until(b"\n", timeout=600)
    proc.kill()
    proc.wait()
    return ttfts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--no-fastchat", action="store_true")
    opts = parser.parse_args()
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.transformers.backend import LocalBackend

    folder = smollm_folder()
    home = tempfile.mkdtemp(prefix="turns-bench-")
    os.environ["VICUNA_TUI_HOME"] = home
    backend = LocalBackend(LoadSettings(model_path=str(folder), device="cpu"))
    backend.load()
    systems: dict[str, Any] = {
        "engine, KV cache kept (default)": lambda: engine_chat(
            backend, opts.turns, opts.tokens, True
        ),
        "engine, cache cleared every turn": lambda: engine_chat(
            backend, opts.turns, opts.tokens, False
        ),
        "vicuna-tui --style simple (seen on stdout)": lambda: ours_visible(
            folder, opts.turns, opts.tokens, home
        ),
    }
    if not opts.no_fastchat:
        systems["FastChat CLI 0.2.36 (seen on stdout)"] = lambda: fastchat_visible(
            folder, opts.turns, opts.tokens
        )
    rows = []
    checks = [t for t in CHECK if t <= opts.turns]
    for name, run in systems.items():
        run()  # warm-up
        chats = [run() for _ in range(opts.runs)]
        cells = [fmt([chat[t - 1] for chat in chats], 2, " s") for t in checks]
        growth = statistics.median(chat[checks[-1] - 1] / chat[0] for chat in chats)
        rows.append([name, *cells, f"{growth:.2f}"])
        print(rows[-1], flush=True)
    body = (
        f"SmolLM2-135M-Instruct on this CPU; a {opts.turns}-turn scripted chat, "
        f"{opts.tokens} new tokens a turn, greedy, template zero_shot; median (min–max) of "
        f"{opts.runs} chats after a warm-up. Targets: our turn {checks[-1]} ÷ turn 1 at most "
        "1.3, and lower than FastChat's at every turn.\n\n"
        + table(["system", *[f"turn {t}" for t in checks], f"turn {checks[-1]} ÷ turn 1"], rows)
    )
    print(body)
    write_section("turns", "Time to first token over a long chat", body)


if __name__ == "__main__":
    main()
