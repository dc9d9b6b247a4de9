"""Files a user points us at that would cost without bound: a FIFO (a read that never
returns), a device that never ends (/dev/zero), a file larger than what we read whole,
text that is not UTF-8.  Every reader refuses them at once, naming the file; the real
CLI in a subprocess, with a timeout that a hang would hit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import run_cli

from vicuna_tui import bounded


def calm(result: subprocess.CompletedProcess[str]) -> str:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text[-2000:]
    return text


@pytest.fixture
def hostile(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "questions.fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:  # sparse: costs no disk
        handle.truncate(bounded.DATASET_LIMIT + 1)
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(b'{"prompt": "hello"}\n{"prompt": "caf\xe9"}\n')
    return {"fifo": fifo, "zero": Path("/dev/zero"), "huge": huge, "latin": latin}


def test_every_reader_refuses_what_it_cannot_bound(
    hostile: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    words = {
        "fifo": "is not a regular file",
        "zero": "is not a regular file",
        "huge": "is read whole, up to 1,024 MiB",
        "latin": "latin1.jsonl:2 is not UTF-8 text",
    }
    for name, path in hostile.items():
        commands = [
            ["sessions", "import", str(path)],
            ["replay", str(path), "--model-path", "/nonexistent.gguf"],
            ["bench", str(path), "--model-id", "m", "-o", str(tmp_path / "a.jsonl")],
            ["judge", "show", str(path)],
        ]
        for command in commands:
            result = run_cli(*command, timeout=60)  # a FIFO read would block: the timeout
            text = calm(result)
            assert result.returncode != 0, (command, text)
            expected = words[name]
            if name == "huge" and command[0] != "sessions":
                expected = "is read whole, up to 256 MiB"  # the JSONL readers' bound
            assert expected in text, (command, text)
            assert str(path) in text, (command, text)


@pytest.mark.real_model
def test_load_in_a_chat_refuses_a_fifo_and_the_chat_goes_on(
    hostile: dict[str, Path], home: Path, smollm_gguf: Path
) -> None:
    script = f"!!load {hostile['fifo']}\n!!load /dev/zero\nHello\n"
    result = run_cli(
        "--style", "simple", "--model-path", str(smollm_gguf), "--max-new-tokens", "4",
        "--temperature", "0", input=script, timeout=120,
    )  # fmt: skip
    text = calm(result)
    assert result.returncode == 0, text
    assert text.count("is not a regular file") == 2
    assert "[stats]" in text  # the question after the refused loads was answered
