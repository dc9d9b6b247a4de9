"""The model in a child process (the TUI's default): the same replies as in-process,
cancel within a token, errors with their hints, and a dead child explained."""

from __future__ import annotations

import os
import pickle
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import tiny_llama
from tui_helpers import run_test

from vicuna_tui.engine.events import ChatRequest, ReplyDelta, ReplyDone, ReplyStarted
from vicuna_tui.engine.process import ProcessBackend, log_path
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.errors import GenerationError, ModelChoiceError, PromptTooLongError, VicunaError


def ask(text: str, tokens: int = 40, request_id: int = 1) -> ChatRequest:
    return ChatRequest(
        turns=(("user", text),),
        generation=GenerationSettings(temperature=0.0, max_new_tokens=tokens),
        request_id=request_id,
    )


def reply(backend: Any, request: ChatRequest, cancel: threading.Event | None = None) -> list[Any]:
    return list(backend.generate(request, cancel or threading.Event()))


@pytest.fixture(scope="module")
def child(smollm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessBackend]:
    home = tmp_path_factory.mktemp("process-home")
    previous = os.environ.get("VICUNA_TUI_HOME")
    os.environ["VICUNA_TUI_HOME"] = str(home)
    backend = ProcessBackend(LoadSettings(model_path=str(smollm_dir), device="cpu"))
    try:
        stages: list[str] = []
        backend.load(lambda stage, done, total: stages.append(stage))
        assert stages, "load progress never came back from the child"
        yield backend
    finally:
        backend.unload()
        if previous is None:
            os.environ.pop("VICUNA_TUI_HOME", None)
        else:
            os.environ["VICUNA_TUI_HOME"] = previous


@pytest.mark.real_model
def test_the_child_answers_exactly_as_the_model_in_this_process(
    child: ProcessBackend, backend: Any
) -> None:
    assert child.pid is not None and child.pid != os.getpid()
    assert child.info.name == backend.info.name
    assert child.info.devices == ("cpu",)
    child.reset_cache()
    ours = reply(child, ask("What is the capital of France?"))
    theirs = reply(backend, ask("What is the capital of France?"))
    assert isinstance(ours[0], ReplyStarted) and isinstance(ours[-1], ReplyDone)
    assert "Paris" in ours[-1].text
    assert ours[-1].text == theirs[-1].text  # greedy: token for token the same
    assert "".join(e.text for e in ours if isinstance(e, ReplyDelta)).strip() == ours[-1].text
    preview = child.preview(ask("What is the capital of France?"))
    assert preview.tokens == backend.preview(ask("What is the capital of France?")).tokens
    assert "What is the capital of France?" in preview.text
    assert child.memory_in_use() is None  # not on a GPU


@pytest.mark.real_model
def test_cancel_reaches_the_child_within_a_token(child: ProcessBackend) -> None:
    child.reset_cache()
    seen = 0
    done = None
    poem = ask("Write a very long poem about the sea.", 300)
    for event in child.generate(poem, threading.Event()):
        if isinstance(event, ReplyDelta):
            seen += 1
            if seen == 3:
                child.cancel()
        if isinstance(event, ReplyDone):
            done = event
    assert done is not None and done.finish_reason == "cancelled"
    assert done.stats.new_tokens <= 3 + 2, done.stats

    queued = threading.Event()
    queued.set()  # cancelled while it waited in the queue
    events = reply(child, ask("Write a very long poem about the sea.", 300, 2), queued)
    assert events[-1].finish_reason == "cancelled" and events[-1].stats.new_tokens <= 1

    # the next reply is not cancelled by the old cancels
    events = reply(child, ask("What is the capital of France?", 40, 3))
    assert events[-1].finish_reason == "stop" and "Paris" in events[-1].text


@pytest.mark.real_model
def test_errors_come_back_with_their_hint(child: ProcessBackend) -> None:
    with pytest.raises(PromptTooLongError) as caught:
        reply(child, ask("word " * 9000))
    assert caught.value.hint  # the fix is named
    events = reply(child, ask("What is the capital of France?"))  # the child lives on
    assert "Paris" in events[-1].text


def shout(backend: Any, text: str) -> str:
    """Run in the child: write to every output a library might use."""
    print(text)
    print(text, file=sys.stderr)
    os.write(1, text.encode() + b"\n")
    return str(backend.info.name)


@pytest.mark.real_model
def test_library_output_goes_to_the_log_not_the_terminal(
    child: ProcessBackend, capfd: pytest.CaptureFixture[str]
) -> None:
    assert child.run(shout, "noise-from-the-model-process") == child.info.name
    out, err = capfd.readouterr()
    assert "noise-from-the-model-process" not in out + err
    log = log_path()
    assert log.read_text().count("noise-from-the-model-process") == 3
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_errors_keep_their_hint_and_fields_when_pickled() -> None:
    error = ModelChoiceError("http://server", ["a", "b"])
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ModelChoiceError
    assert (copy.message, copy.hint, copy.models) == (error.message, error.hint, ["a", "b"])
    assert str(copy) == str(error)
    plain = pickle.loads(pickle.dumps(VicunaError("bad", "do this")))
    assert (plain.message, plain.hint) == ("bad", "do this")


def test_a_killed_child_is_explained_and_can_be_loaded_again(smollm_gguf: Path, home: Path) -> None:
    # The GGUF on llama.cpp: its child starts in a fraction of torch's time.
    backend = ProcessBackend(LoadSettings(model_path=str(smollm_gguf)))
    backend.load()
    pid = backend.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(GenerationError) as caught:
        reply(backend, ask("hello", 5))  # the request may still fit in the pipe
    assert "killed by signal 9" in caught.value.message
    assert "load the model again" in caught.value.hint
    assert backend.pid is None

    backend.load()
    process = backend._process
    assert process is not None
    process.kill()
    process.wait()  # long dead: now writing the request itself fails
    with pytest.raises(GenerationError) as caught:
        reply(backend, ask("hello", 5))
    assert "killed by signal 9" in caught.value.message
    assert backend.pid is None
    with pytest.raises(GenerationError, match="not loaded"):
        backend.preview(ask("hello"))
    backend.load()  # the settings pane's reload does this
    second = backend.pid
    assert second is not None and second != pid
    try:
        events = reply(backend, ask("hello", 5))
        assert isinstance(events[-1], ReplyDone) and events[-1].stats.new_tokens == 5
    finally:
        backend.unload()
    with pytest.raises(ProcessLookupError):  # unloading ends the child (and reaps it)
        os.kill(second, 0)


def test_a_load_error_in_the_child_comes_back_and_the_child_exits(
    tmp_path: Path, home: Path
) -> None:
    model = tiny_llama(tmp_path / "tiny")
    (model / "config.json").write_text('{"model_type": "no-such-architecture"}')
    backend = ProcessBackend(LoadSettings(model_path=str(model), device="cpu"))
    with pytest.raises(VicunaError) as caught:
        backend.load()
    assert "no-such-architecture" in str(caught.value)
    assert caught.value.hint
    assert backend.pid is None


def test_the_status_bar_memory_counts_the_model_process(tmp_path: Path) -> None:
    """Anonymous memory of a child counts; a mapped file it reads is shown apart."""
    import mmap
    import subprocess

    from vicuna_tui.tui.widgets.status import memory_text, process_memory

    before, _ = process_memory()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; x = b'x' * 200_000_000; print('ready');"
            " sys.stdout.flush(); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert process_memory()[0] - before > 190_000_000
    finally:
        child.kill()
        child.wait()
    data = tmp_path / "weights.bin"
    data.write_bytes(b"w" * 64 * 2**20)
    anonymous, mapped = process_memory()
    with data.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        assert sum(view[i] for i in range(0, len(view), 4096)) > 0  # every page touched
        more_anonymous, more_mapped = process_memory()
    assert more_mapped - mapped > 60 * 2**20  # the file's pages: not counted as held
    assert more_anonymous - anonymous < 16 * 2**20
    assert memory_text((2**30, 3 * 2**30)) == "RAM 1.0 GB + 3.0 GB file"
    assert memory_text(123 * 2**20) == "RAM 123 MB"


async def test_tui_after_the_model_process_dies_says_so_and_reloads(
    smollm_gguf: Path, home: Path
) -> None:
    """The real app with its default backend: the model's process is killed; the next
    prompt comes back with a dialog that says what happened, the status bar says no
    model is loaded, and Reload (same settings) starts a new process that answers."""
    from tui_helpers import make_app, ready, reply_done, send, showing, wait_for

    from vicuna_tui.tui.screens.dialogs import ErrorScreen

    app = make_app(
        lambda load: ProcessBackend(load),
        load=LoadSettings(model_path=str(smollm_gguf)),
        max_new_tokens=4,
    )
    async with run_test(app, size=(120, 40)) as pilot:
        screen = await ready(pilot)
        first = app.engine.backend.pid  # type: ignore[union-attr]
        assert first is not None and first != os.getpid()
        await send(pilot, "hello")
        await reply_done(pilot)

        os.kill(first, signal.SIGKILL)
        await send(pilot, "are you there?")
        await wait_for(pilot, lambda: showing(app, ErrorScreen))
        message = str(app.screen.query_one("#error-message").render())
        assert "the model's process stopped (killed by signal 9" in message
        assert "Reload model" in str(app.screen.query_one("#error-hint").render())
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.prompt.text == "are you there?")
        assert "no model" in screen.status.text
        assert not screen.model_ready

        await pilot.press("f3")
        await wait_for(pilot, lambda: not screen.query_one("#reload").disabled)
        await pilot.click("#reload")
        await wait_for(pilot, lambda: screen.model_ready)
        second = app.engine.backend.pid  # type: ignore[union-attr]
        assert second is not None and second != first
        screen.prompt.set_text("")
        await send(pilot, "hello again")
        await reply_done(pilot)
        assert [m.role for m in screen.session.messages] == ["user", "assistant"] * 2
    with pytest.raises(ProcessLookupError):  # quitting ended the model's process
        os.kill(second, 0)


def test_a_large_log_is_set_aside_at_load(tmp_path: Path, home: Path) -> None:
    log = log_path()
    log.write_bytes(b"old line\n" * 700_000)  # over 5 MiB
    backend = ProcessBackend(LoadSettings(model_path=str(tiny_llama(tmp_path / "tiny"))))
    backend.load()
    backend.unload()
    old = log.with_name("engine.log.1")
    assert old.stat().st_size == 9 * 700_000
    assert log.stat().st_size < 2**20
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


# A model whose load never ends (a stuck read, a library call that does not return):
# put in place in every Python process started with this folder first on PYTHONPATH.
STUCK_LOAD = """
import os, time
from vicuna_tui.engine import backends

class StuckLoad:
    def __init__(self, settings):
        self.settings = settings
    def check(self):
        pass
    def load(self, progress=None):
        with open(os.environ["VICUNA_STUCK_MARK"], "w") as mark:
            mark.write(str(os.getpid()))
        while True:
            time.sleep(0.1)
    def unload(self):
        pass

backends.local_backend = lambda settings, **options: StuckLoad(settings)
"""


@pytest.fixture
def stuck_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """The mark file the stuck load writes its process id into."""
    folder = tmp_path / "stuck"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(STUCK_LOAD)
    from helpers import REPO

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), str(REPO)]))
    mark = tmp_path / "loading.pid"
    monkeypatch.setenv("VICUNA_STUCK_MARK", str(mark))
    return mark


def _loading_pid(mark: Path) -> int:
    for _ in range(600):
        if mark.exists() and mark.read_text():
            return int(mark.read_text())
        time.sleep(0.05)
    raise AssertionError("the model's process never began to load")


def _ends(pid: int, within: float = 20.0) -> bool:
    """Whether the process ``pid`` is gone (or a zombie nobody needs) within ``within`` s."""
    import psutil

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_quitting_while_the_model_loads_ends_its_process(
    stuck_load: Path, smollm_gguf: Path
) -> None:
    from vicuna_tui.engine.worker import EngineThread

    events: list[Any] = []
    engine = EngineThread(events.append).start()
    engine.load(ProcessBackend(LoadSettings(model_path=str(smollm_gguf), device="cpu")))
    pid = _loading_pid(stuck_load)
    engine.shutdown(timeout=5)  # what every front end does when it quits
    assert _ends(pid), "the model's process outlived the front end's quit"
    assert not engine._thread.is_alive()


def test_the_model_process_ends_itself_when_its_front_end_is_gone(
    stuck_load: Path, smollm_gguf: Path
) -> None:
    """A front end killed outright (SIGKILL, a crash) closes the pipe: the child exits
    after a short grace period even in the middle of a load."""
    import subprocess

    from vicuna_tui.engine import process_wire as wire
    from vicuna_tui.engine.process import ORPHAN_GRACE

    child = subprocess.Popen(
        [sys.executable, "-m", "vicuna_tui.engine.process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdin is not None
        settings = LoadSettings(model_path=str(smollm_gguf), device="cpu")
        pickle.dump((1, wire.LoadModel(settings, False, ())), child.stdin)
        child.stdin.flush()
        assert _loading_pid(stuck_load) == child.pid
        child.stdin.close()  # as when the front end's process dies
        assert child.wait(ORPHAN_GRACE + 20) == 0
    finally:
        child.kill()
        child.wait()
