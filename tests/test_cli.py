"""The command line as a user runs it: subprocesses, pipes, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, run_cli

from vicuna_tui.commands.flags import add_generation_flags, add_model_flags
from vicuna_tui.store import Store

ESC = "\x1b"


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.real_model
def test_simple_style_through_a_pipe(smollm_gguf: Path, home: Path) -> None:
    result = run_cli(
        "--model-path",
        str(smollm_gguf),
        "--temperature",
        "0",
        "--style",
        "simple",
        input="Which city is the capital of France?\n\nWhich city is the capital of Germany?\n",
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 2, result.stdout  # one reply per non-empty input line
    assert "Paris" in lines[0]
    assert "Berlin" in lines[1]
    assert ESC not in result.stdout
    assert "model: " in result.stderr  # diagnostics on stderr
    assert "[stats]" in result.stderr
    with Store() as store:
        conv = store.get(store.resolve("last"))
    assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"]


@pytest.mark.real_model
def test_one_shot_from_stdin_with_the_gguf(smollm_gguf: Path, smollm_dir: Path) -> None:
    # The conversion cache from the smollm_dir fixture: this load must reuse it.
    env = {"VICUNA_TUI_HOME": str(REPO / ".cache" / "test-home")}
    result = run_cli(
        "--model-path",
        str(smollm_gguf),
        "--backend",
        "transformers",  # the conversion path (llama.cpp runs the file as it is)
        "--temperature",
        "0",
        "-p",
        "-",
        input="What is the capital of France?",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert result.stdout.count("\n") == 1  # only the reply
    assert "cached safetensors conversion" in result.stderr
    assert "converting GGUF" not in result.stderr


@pytest.mark.real_model
def test_json_reply_with_stats(smollm_gguf: Path, home: Path) -> None:
    result = run_cli(
        "--model-path",
        str(smollm_gguf),
        "--temperature",
        "0",
        "--json",
        "-p",
        "Which city is the capital of France?",
        "--no-save",
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert "Paris" in record["text"]
    assert record["finish_reason"] == "stop"
    assert record["stats"]["new_tokens"] > 3
    assert record["stats"]["tokens_per_second"] > 0
    assert record["conversation_id"] is None  # --no-save


@pytest.mark.real_model
@pytest.mark.parametrize("model", ["smollm_dir", "smollm_gguf"])  # transformers, llama.cpp
def test_ctrl_c_stops_a_reply_and_keeps_it(
    model: str, home: Path, request: pytest.FixtureRequest
) -> None:
    # llama.cpp installs its own SIGINT handler at load; ours must be back in place.
    path = request.getfixturevalue(model)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vicuna_tui",
            "--model-path",
            str(path),
            "--temperature",
            "0",
            "--max-new-tokens",
            "400",
            "--style",
            "simple",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
        # As in a terminal: a suite started in the background (`make test &`) inherits an
        # ignored SIGINT, and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write("Write a long story about a dragon who learns to cook.\n")
    proc.stdin.flush()
    first = proc.stdout.read(20)  # wait for the reply to start streaming
    assert first
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "cancelled" in err  # the stats line names the finish reason
    with Store() as store:
        conv = store.get(store.resolve("last"))
    reply = conv.messages[-1]
    assert reply.finish_reason == "cancelled"
    assert reply.content and (first + out).startswith(reply.content[:20])
    assert reply.new_tokens is not None and reply.new_tokens < 400


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-path", "/nonexistent/model"], "no such file or folder: /nonexistent/model"),
        (["--load-8bit", "--load-4bit"], "cannot be used together"),
        (["--device", "cuda"], "--device cuda was asked for but is not available"),
        (["--temperature", "9"], "--temperature = '9' is out of range"),
        (["--num-gpus", "0"], "--num-gpus = '0' is out of range"),
        (["--conv-template", "nope"], "unknown template 'nope'"),
        (["--model-path", "someone/not-cached-model"], "Hub is offline"),
    ],
)
def test_bad_input_gets_a_message_and_exit_code_2(
    args: list[str], message: str, home: Path
) -> None:
    result = run_cli(*args, "-p", "hi")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "hint:" in result.stderr
    no_traceback(result)
    assert result.stdout == ""


def test_help_lists_the_flags() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in (
        "--model-path",
        "--num-gpus",
        "--max-gpu-memory",
        "--load-8bit",
        "--style",
        "--conv-template",
        "--temperature",
        "--seed",
        "--resume",
        "sessions",
    ):
        assert flag in result.stdout


def test_every_setting_flag_is_made_from_its_declaration() -> None:
    """Each model, server, prompt and sampling setting that may be a flag is one, under
    its declared spellings, with the default in its help read from the settings class;
    a secret never is (command lines are visible to every user of the machine)."""
    import argparse

    from vicuna_tui.config import REMOTE_FIELDS
    from vicuna_tui.engine.settings import (
        CHAT_FIELDS,
        GENERATION_FIELDS,
        LOAD_FIELDS,
        GenerationSettings,
    )

    parser = argparse.ArgumentParser()
    add_model_flags(parser)
    add_generation_flags(parser)
    by_dest = {a.dest: a for a in parser._actions}
    specs = {**LOAD_FIELDS, **REMOTE_FIELDS, **CHAT_FIELDS, **GENERATION_FIELDS}
    for name, spec in specs.items():
        if spec.secret:
            assert name not in by_dest, name
            continue
        assert by_dest[name].option_strings[0] == spec.flag, name
    assert "api_key" not in by_dest and not any(
        "--api-key" in a.option_strings for a in parser._actions
    )
    assert by_dest["template"].option_strings == ["--conv-template", "--template"]
    assert by_dest["remote_model"].option_strings == ["--model"]
    default = GenerationSettings().temperature
    assert f"(default {default})" in (by_dest["temperature"].help or "")
    assert "(default 600)" in (by_dest["request_timeout"].help or "")
    assert "vicuna_v1.1" in (by_dest["template"].help or "")
    args = parser.parse_args(["--insecure", "--model", "m", "--system-message", "be brief"])
    assert (args.verify_tls, args.remote_model, args.system_message) == (False, "m", "be brief")
    assert parser.parse_args([]).verify_tls is None  # absent: config.toml decides


def test_library_warnings_go_to_the_log_not_the_terminal(home: Path) -> None:
    code = (
        "import warnings\n"
        "from vicuna_tui.warnlog import send_warnings_to_log\n"
        "send_warnings_to_log()\n"
        "warnings.warn('past_key_values is deprecated', FutureWarning)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # shown as usual
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=True
    )
    assert result.stderr == ""
    log = home / "log" / "engine.log"
    assert "FutureWarning: past_key_values is deprecated" in log.read_text()
    assert log.stat().st_mode & 0o777 == 0o600


@pytest.mark.real_model
def test_the_readmes_first_example_answers_right(smollm_gguf: Path, home: Path) -> None:
    """The pipe example a new user copies from the README, on the default model (the
    packaged GGUF), exactly as written there."""
    readme = (Path(REPO) / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if "| vicuna-tui" in ln and "-p -" in ln)
    command = line.split("#")[0].strip()
    question = command.split('"')[1]
    flags = command.split("| vicuna-tui", 1)[1].split()
    result = run_cli(*flags, input=question + "\n")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout, (command, result.stdout)
    assert len(result.stdout) < 400  # an answer, not a loop to the token limit
