"""The remote backend against FastChat's own serving stack, on loopback.

controller + model_worker (SmolLM2, as safetensors) + openai_api_server, run from the
separate .fastchat-venv (fschat 0.2.36 needs transformers 4.46 and pydantic 1).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import run_cli

from vicuna_tui.engine.events import EngineEvent, ModelReady, ReplyDelta, ReplyDone, ReplyFailed
from vicuna_tui.engine.remote.backend import RemoteBackend
from vicuna_tui.engine.settings import GenerationSettings, RemoteSettings
from vicuna_tui.engine.worker import EngineThread
from vicuna_tui.session import ChatSession
from vicuna_tui.store import Store

pytestmark = [pytest.mark.real_model, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fastchat_model(source: Path, out: Path) -> Path:
    """A copy of the converted SmolLM2 that transformers 4.46 reads (weights linked)."""
    for item in source.iterdir():
        if item.name not in ("config.json", "tokenizer_config.json"):
            (out / item.name).symlink_to(item)
    tokenizer = json.loads((source / "tokenizer_config.json").read_text())
    tokenizer["tokenizer_class"] = "GPT2TokenizerFast"  # transformers 5 wrote TokenizersBackend
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    config = json.loads((source / "config.json").read_text())
    rope = config.pop("rope_parameters", None) or {}
    config["rope_theta"] = rope.get("rope_theta", 10000.0)  # transformers 4 reads it here
    config["rope_scaling"] = None
    config["torch_dtype"] = config.get("dtype", "float32")
    (out / "config.json").write_text(json.dumps(config, indent=1))
    return out


@pytest.fixture(scope="module")
def fastchat(smollm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from fastchat_env import ensure

    python = str(ensure())
    work = tmp_path_factory.mktemp("fastchat")
    model = fastchat_model(smollm_dir, work)
    controller, worker, api = free_port(), free_port(), free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("VIRTUAL_ENV", None)
    commands = [
        ["fastchat.serve.controller", "--host", "127.0.0.1", "--port", str(controller)],
        [
            "fastchat.serve.model_worker",
            "--model-path",
            str(model),
            "--model-names",
            "smollm2",
            "--device",
            "cpu",
            "--host",
            "127.0.0.1",
            "--port",
            str(worker),
            "--worker-address",
            f"http://127.0.0.1:{worker}",
            "--controller-address",
            f"http://127.0.0.1:{controller}",
        ],
        [
            "fastchat.serve.openai_api_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(api),
            "--controller-address",
            f"http://127.0.0.1:{controller}",
        ],
    ]
    procs = []
    for number, args in enumerate(commands):
        log = (work / f"server-{number}.log").open("w")
        procs.append(
            subprocess.Popen(
                [python, "-m", *args],
                stdout=log,
                stderr=log,
                env=env,
                cwd=work,
                start_new_session=True,
            )
        )
        if number == 0:
            time.sleep(1.0)
    url = f"http://127.0.0.1:{api}/v1"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
                    if "smollm2" in response.read().decode():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "\n".join((work / f"server-{n}.log").read_text()[-2000:] for n in range(3))
                pytest.fail(f"FastChat did not come up:\n{logs}")
            time.sleep(0.5)
        yield url
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_chat_through_fastchat_then_replay(fastchat: str, home: Path) -> None:
    result = run_cli(
        "--endpoint",
        fastchat,
        "--temperature",
        "0",
        "--max-new-tokens",
        "40",
        "--stats",
        input="What is the capital of France?\n",
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "model: smollm2 on remote" in result.stderr
    with Store() as store:
        conv = store.get(store.resolve("last"))
    assert (conv.backend, conv.endpoint, conv.model_name) == ("remote", fastchat, "smollm2")
    assert "Paris" in conv.messages[1].content

    replayed = run_cli("replay", conv.id[:8], "--style", "simple")
    assert replayed.returncode == 0, replayed.stderr
    assert "1 of 1 replies identical" in replayed.stdout
    with Store() as store:
        branched = store.get(store.resolve("last"))
    assert branched.id == conv.id and branched.endpoint == fastchat
    assert len(branched.tree) == 3  # the replayed reply beside the saved one
    assert branched.messages[1].uid != conv.messages[1].uid
    assert branched.messages[1].content == conv.messages[1].content


def test_streamed_and_cancelled_through_fastchat(fastchat: str, home: Path) -> None:
    events: queue.Queue[EngineEvent] = queue.Queue()
    engine = EngineThread(events.put).start()
    engine.load(RemoteBackend(RemoteSettings(fastchat, model="smollm2")))
    ready = events.get(timeout=60)
    while not isinstance(ready, ModelReady):
        ready = events.get(timeout=60)
    store = Store()
    session = ChatSession(
        store, generation=GenerationSettings(temperature=0.0, max_new_tokens=300), endpoint=fastchat
    )
    session.set_model(ready.info)
    request = session.add_user("Write a long story about a dragon who learns to cook.")
    engine.generate(request)
    deltas: list[str] = []
    while True:
        event = events.get(timeout=120)
        if isinstance(event, ReplyDelta):
            deltas.append(event.text)
            if len(deltas) == 3:
                engine.cancel()
        elif isinstance(event, (ReplyDone, ReplyFailed)):
            break
    engine.shutdown()
    assert isinstance(event, ReplyDone)
    assert event.finish_reason == "cancelled"
    assert len(deltas) >= 3 and event.text == "".join(deltas).strip()
    session.record_reply(event.text, event.finish_reason, event.stats)
    saved = store.get(session.conversation.id)  # type: ignore[union-attr]
    assert saved.messages[-1].finish_reason == "cancelled"
    assert saved.messages[-1].content == event.text
    store.close()
