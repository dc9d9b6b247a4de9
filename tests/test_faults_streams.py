"""Standard streams that are closed (``<&-``, ``>&-``, ``2>&-``) or full (``>/dev/full``):
a clear message and exit code, never a traceback, and a chat's reply still saved.  The
real CLI in a subprocess, with the streams set up by a shell as a user's would be."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from vicuna_tui.store import Store


def shell(redirect: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``vicuna-tui ARGS REDIRECT`` run by sh; stderr captured unless ``redirect`` closes
    it, stdout captured unless it closes or replaces it."""
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", sys.executable, "-m", "vicuna_tui", *args],
        input=input,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        cwd=REPO,
        timeout=240,
    )


def calm(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]


def seed() -> str:
    with Store() as store:
        conv = store.create_conversation(title="Llamas", model_name="SmolLM2")
        return conv.id


@pytest.mark.parametrize("command", [["sessions", "list"], ["config", "show"]])
def test_a_closed_stdout_is_named_before_any_work(home: Path, command: list[str]) -> None:
    seed()
    result = shell(">&-", *command)
    calm(result)
    assert result.returncode == 2
    assert "the standard output is closed" in result.stderr and ">/dev/null" in result.stderr


def test_a_full_stdout_is_named_with_the_fix(home: Path) -> None:
    seed()
    result = shell(">/dev/full", "sessions", "list")
    calm(result)
    assert result.returncode == 1
    assert "could not write to the standard output: No space left on device" in result.stderr
    assert "free some space" in result.stderr


def test_a_closed_stderr_or_stdin_does_not_stop_a_command(home: Path) -> None:
    seed()
    listed = shell("2>&-", "sessions", "list")
    assert listed.returncode == 0 and "Llamas" in listed.stdout
    listed = shell("<&-", "sessions", "list")
    assert listed.returncode == 0 and "Llamas" in listed.stdout


@pytest.mark.real_model
def test_a_chat_with_closed_or_full_streams(home: Path, smollm_gguf: Path) -> None:
    flags = ["--model-path", str(smollm_gguf), "--temperature", "0", "--max-new-tokens", "8"]
    # stdin closed: -p needs no input and answers; a chat with no input ends calmly.
    answered = shell("<&-", "-p", "What is the capital of France?", *flags)
    calm(answered)
    assert answered.returncode == 0 and answered.stdout.strip()
    ended = shell("<&-", "--style", "simple", *flags)
    calm(ended)
    assert ended.returncode == 0
    # stdout closed: refused before the model loads, nothing half-saved.
    with Store() as store:
        before = store.listing.count()
    refused = shell(">&-", "-p", "hello", *flags)
    calm(refused)
    assert refused.returncode == 2 and "the standard output is closed" in refused.stderr
    assert "loading" not in refused.stderr
    with Store() as store:
        assert store.listing.count() == before
    # stdout full: the reply stops at the first write that fails (nobody can read it) and
    # what came so far is saved; the message says why.
    full = shell(">/dev/full", "-p", "What is the capital of France?", *flags)
    calm(full)
    assert full.returncode == 1 and "No space left on device" in full.stderr
    with Store() as store:
        saved = store.get(store.resolve("last"))
    assert [m.role for m in saved.messages] == ["user", "assistant"]
    reply = saved.messages[-1]
    assert reply.content and answered.stdout.startswith(reply.content)  # greedy: the same
    assert reply.finish_reason == "cancelled"


def test_an_unexpected_failure_is_one_line_and_a_log_entry(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vicuna_tui import cli, locations

    def broken(args: list[str]) -> int:
        raise KeyError("a bug of ours")

    monkeypatch.setattr(cli, "_dispatch", broken)
    assert cli.main(["sessions", "list"]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: unexpected failure: KeyError: 'a bug of ours'" in err
    log = locations.log_dir() / "errors.log"
    assert str(log) in err and "--debug shows it here" in err
    assert "Traceback" in log.read_text() and "a bug of ours" in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert cli.main(["sessions", "list", "--debug"]) == cli.EXIT_BUG
    assert "Traceback" in capsys.readouterr().err  # --debug shows it
