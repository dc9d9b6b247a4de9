"""The remote backend against an in-test OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import queue
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli
from openai_stub import Stub, _handler, serve
from tui_helpers import run_test

from vicuna_tui.engine.events import (
    ChatRequest,
    EngineEvent,
    LoadProgress,
    ModelReady,
    ReplyDelta,
    ReplyDone,
    ReplyFailed,
)
from vicuna_tui.engine.remote.backend import RemoteBackend
from vicuna_tui.engine.remote.wire import public_url, server_message, sse_data
from vicuna_tui.engine.settings import GenerationSettings, RemoteSettings
from vicuna_tui.engine.worker import EngineThread
from vicuna_tui.errors import ModelChoiceError, RemoteError
from vicuna_tui.store import Store

GEN = GenerationSettings(temperature=0.3, top_p=0.9, max_new_tokens=50, seed=7, stop=("###",))


def request(text: str = "hi", **kwargs: Any) -> ChatRequest:
    return ChatRequest(
        turns=(("user", text),), generation=GEN, system_message="Be brief.", **kwargs
    )


def run(backend: RemoteBackend, req: ChatRequest | None = None) -> tuple[list[str], ReplyDone]:
    deltas: list[str] = []
    done = None
    for event in backend.generate(req or request(), threading.Event()):
        if isinstance(event, ReplyDelta):
            deltas.append(event.text)
        elif isinstance(event, ReplyDone):
            done = event
    assert done is not None
    return deltas, done


# --- parsing ------------------------------------------------------------------------------


def test_sse_parsing() -> None:
    lines = [
        ": ping",
        "",
        "event: message",
        'data: {"a": 1}',
        "",
        "data: line one",
        "data: line two",
        "",
        "data:no-space",
        "",
        "data: [DONE]",
    ]
    assert list(sse_data(iter(lines))) == ['{"a": 1}', "line one\nline two", "no-space", "[DONE]"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"error": {"message": "bad things"}}', "bad things"),
        (
            '{"object": "error", "message": "Only smollm2 allowed now", "code": 40301}',
            "Only smollm2 allowed now",
        ),
        ('{"detail": "Not Found"}', "Not Found"),
        ('{"error": "plain"}', "plain"),
        ("Internal Server Error", "Internal Server Error"),
    ],
)
def test_server_messages(body: str, message: str) -> None:
    assert server_message(body, 500) == message


def test_public_url_drops_credentials() -> None:
    assert public_url("https://user:pw@host:8000/v1/") == "https://host:8000/v1"
    assert public_url("http://host/v1") == "http://host/v1"


# --- behaviour ----------------------------------------------------------------------------


def test_streamed_reply_with_request_mapping_and_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", "sk-test-123")
    with serve() as (url, stub):
        backend = RemoteBackend(RemoteSettings(url, api_key_env="TEST_KEY"))
        info = backend.load()
        assert (info.name, info.backend, info.endpoint) == ("stub-model", "remote", url)
        deltas, done = run(backend)
    assert deltas == ["Hello", " from", " the", " server", "."]
    assert done.text == "Hello from the server." and done.finish_reason == "stop"
    assert done.stats.prompt_tokens == 12 and done.stats.new_tokens == 5
    assert done.stats.time_to_first_token is not None
    body = stub.requests[0]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert (
        body["temperature"],
        body["top_p"],
        body["max_tokens"],
        body["seed"],
        body["stop"],
        body["stream"],
    ) == (0.3, 0.9, 50, 7, ["###"], True)
    assert stub.headers[-1]["Authorization"] == "Bearer sk-test-123"


def test_model_selection() -> None:
    with serve() as (url, stub):
        stub.models = ["a", "b"]
        with pytest.raises(ModelChoiceError, match="serves 2 models: a, b") as info:
            RemoteBackend(RemoteSettings(url)).load()
        assert info.value.models == ["a", "b"]
        assert "--model" in info.value.hint
        with pytest.raises(RemoteError, match="has no model 'c'") as wrong:
            RemoteBackend(RemoteSettings(url, model="c")).load()
        assert "models on the server: a, b" in wrong.value.hint
        assert RemoteBackend(RemoteSettings(url, model="b")).load().name == "b"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_server_down_at_start() -> None:
    backend = RemoteBackend(RemoteSettings(f"http://127.0.0.1:{free_port()}/v1"))
    with pytest.raises(RemoteError, match="cannot connect to") as info:
        backend.load()
    assert "is the server running" in info.value.hint


@pytest.mark.parametrize(
    ("mode", "message", "hint"),
    [
        ("error500", "answered HTTP 500: CUDA out of memory on worker 2", "server's log"),
        ("unauthorized", "refused the request (HTTP 401): Incorrect API key", "$OPENAI_API_KEY"),
    ],
)
def test_http_errors_show_the_servers_message(mode: str, message: str, hint: str) -> None:
    with serve() as (url, stub):
        backend = RemoteBackend(RemoteSettings(url))
        backend.load()
        stub.mode = mode
        with pytest.raises(RemoteError, match=re.escape(message)) as info:
            run(backend)
    assert hint in info.value.hint


def test_a_server_that_echoes_the_api_key_never_gets_it_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("TEST_KEY", secret)
    with serve() as (url, stub):
        backend = RemoteBackend(RemoteSettings(url, api_key_env="TEST_KEY"))
        backend.load()
        stub.mode = "echo-key"
        with pytest.raises(RemoteError) as info:
            run(backend)
    shown = f"{info.value.message} {info.value.hint}"
    assert "Incorrect API key provided: [API key]" in shown
    assert secret not in shown


def engine_events(
    backend: RemoteBackend, req: ChatRequest, cancel_after: int | None = None
) -> list[EngineEvent]:
    events: queue.Queue[EngineEvent] = queue.Queue()
    engine = EngineThread(events.put).start()
    engine.load(backend)
    first = events.get(timeout=30)
    while isinstance(first, LoadProgress):
        first = events.get(timeout=30)
    assert isinstance(first, ModelReady), first
    engine.generate(req)
    seen: list[EngineEvent] = []
    deltas = 0
    while True:
        event = events.get(timeout=60)
        seen.append(event)
        if isinstance(event, ReplyDelta):
            deltas += 1
            if cancel_after is not None and deltas == cancel_after:
                engine.cancel()
        if isinstance(event, (ReplyDone, ReplyFailed)):
            break
    engine.shutdown()
    return seen


def test_connection_drop_keeps_the_partial_reply() -> None:
    with serve() as (url, stub):
        stub.mode = "drop"
        events = engine_events(RemoteBackend(RemoteSettings(url)), request())
    failed = events[-1]
    assert isinstance(failed, ReplyFailed)
    assert failed.partial_text == "Hello from"
    assert "dropped" in failed.error.message


def test_error_event_mid_stream() -> None:
    with serve() as (url, stub):
        stub.mode = "error-chunk"
        events = engine_events(RemoteBackend(RemoteSettings(url)), request())
    failed = events[-1]
    assert isinstance(failed, ReplyFailed)
    assert "worker crashed" in failed.error.message and failed.partial_text == "Hello from"


def test_timeout_is_configurable() -> None:
    with serve() as (url, stub):
        backend = RemoteBackend(RemoteSettings(url, request_timeout=1.0))
        backend.load()
        stub.mode = "hang"
        with pytest.raises(RemoteError, match=r"did not answer within 1 s") as info:
            run(backend)
    assert "--request-timeout" in info.value.hint


def test_cancel_closes_the_stream_at_once() -> None:
    with serve() as (url, stub):
        stub.reply = [f"w{i} " for i in range(100)]
        stub.delay = 0.05
        events = engine_events(RemoteBackend(RemoteSettings(url)), request(), cancel_after=2)
        done = events[-1]
        assert isinstance(done, ReplyDone)
        assert done.finish_reason == "cancelled"
        assert done.text.startswith("w0 w1")
        # The server notices the closed connection at its next write and stops.
        deadline = time.monotonic() + 30
        while not stub.client_gone.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stub.client_gone.is_set()
        assert stub.chunks_sent < 100


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Stub()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


def test_bad_tls(tls_server: str) -> None:
    with pytest.raises(RemoteError, match="TLS certificate") as info:
        RemoteBackend(RemoteSettings(tls_server)).load()
    assert "--insecure" in info.value.hint
    backend = RemoteBackend(RemoteSettings(tls_server, verify_tls=False))
    assert backend.load().name == "stub-model"
    _, done = run(backend)
    assert done.text == "Hello from the server."


def test_cli_chat_never_shows_or_stores_the_api_key(home: Path) -> None:
    secret = "sk-live-DO-NOT-LEAK-42"
    with serve() as (url, stub):
        result = run_cli(
            "--endpoint", url, "--debug", "--stats", input="hello\n", env={"OPENAI_API_KEY": secret}
        )
        assert result.returncode == 0, result.stderr
        assert "Hello from the server." in result.stdout
        assert stub.headers[-1]["Authorization"] == f"Bearer {secret}"
        listing = run_cli("sessions", "list", "--json")
        export = run_cli("sessions", "export", "last", "--format", "json")
    for output in (result.stdout, result.stderr, listing.stdout, export.stdout):
        assert secret not in output
    for file in home.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file
    with Store() as store:
        conv = store.get(store.resolve("last"))
    assert (conv.backend, conv.endpoint, conv.model_name) == ("remote", url, "stub-model")


def test_cli_several_models_in_simple_mode_lists_them(home: Path) -> None:
    with serve() as (url, stub):
        stub.models = ["vicuna-7b", "vicuna-13b"]
        result = run_cli("--endpoint", url, "-p", "hi")
    assert result.returncode == 2
    assert "serves 2 models: vicuna-7b, vicuna-13b" in result.stderr
    assert "--model" in result.stderr


def test_replay_against_a_remote_server(home: Path) -> None:
    with serve() as (url, _stub):
        first = run_cli("--endpoint", url, input="one\ntwo\n")
        assert first.returncode == 0, first.stderr
        replayed = run_cli("replay", "last", "--style", "simple", "--new-conversation")
    assert replayed.returncode == 0, replayed.stderr
    assert "2 of 2 replies identical" in replayed.stdout
    with Store() as store:
        conv = store.get(store.resolve("last"))
    assert conv.replay_of is not None and conv.endpoint == url


# --- the TUI with a server ----------------------------------------------------------------


async def test_tui_on_a_server_disables_local_settings_and_saves_the_endpoint(home: Path) -> None:
    from helpers import ScriptedBackend
    from tui_helpers import make_app, ready, reply_done, send

    with serve() as (url, _stub):
        app = make_app(lambda load: ScriptedBackend(), remote=RemoteSettings(url))
        async with run_test(app, size=(120, 50)) as pilot:
            screen = await ready(pilot)
            assert screen.session.model_info is not None
            assert screen.session.model_info.backend == "remote"
            await pilot.press("f3")
            for selector in ("#set-device", "#set-dtype", "#set-quant", "#set-num_gpus"):
                assert screen.query_one(selector).disabled, selector
            assert not screen.query_one("#set-endpoint").disabled
            await send(pilot, "hello server")
            await reply_done(pilot)
            assert screen.transcript.views[-1].text == "Hello from the server."
    with Store() as store:
        conv = store.get(store.resolve("last"))
    assert (conv.backend, conv.endpoint, conv.model_name) == ("remote", url, "stub-model")


async def test_tui_asks_which_model_when_the_server_has_several(home: Path) -> None:
    from helpers import ScriptedBackend
    from tui_helpers import make_app, showing, wait_for

    from vicuna_tui.tui.screens.dialogs import PickScreen

    with serve() as (url, stub):
        stub.models = ["alpha", "beta"]
        app = make_app(lambda load: ScriptedBackend(), remote=RemoteSettings(url))
        async with run_test(app, size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: showing(app, PickScreen))
            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: app.chat.model_ready)
            assert app.chat.session.model_info.name == "beta"  # type: ignore[union-attr]


async def test_tui_switches_from_local_to_a_server_keeping_the_chat(home: Path) -> None:
    from helpers import ScriptedBackend
    from textual.widgets import Input, RadioButton
    from tui_helpers import make_app, ready, reply_done, send, wait_for

    with serve() as (url, stub):
        app = make_app(lambda load: ScriptedBackend([["local answer"]]))
        async with run_test(app, size=(120, 50)) as pilot:
            screen = await ready(pilot)
            await send(pilot, "first")
            await reply_done(pilot)
            await pilot.press("f3")
            screen.query_one("#backend-remote", RadioButton).value = True
            await pilot.pause()
            screen.query_one("#set-endpoint", Input).value = url
            await pilot.pause()
            assert not screen.query_one("#reload").disabled
            await pilot.click("#reload")
            await wait_for(
                pilot,
                lambda: (
                    screen.model_ready
                    and screen.session.model_info is not None
                    and screen.session.model_info.backend == "remote"
                ),
            )
            await send(pilot, "second")
            await reply_done(pilot)
            assert [v.text for v in screen.transcript.views] == [
                "first",
                "local answer",
                "second",
                "Hello from the server.",
            ]
            assert stub.requests[-1]["messages"][:2] == [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "local answer"},
            ]
    with Store() as store:
        conv = store.get(store.resolve("last"))
    assert (conv.backend, conv.endpoint) == ("remote", url)
