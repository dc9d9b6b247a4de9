"""A local model in a child process, behind the same Backend interface.

The TUI draws on the same interpreter as the engine thread, and Python's GIL lets only
one of them run Python at a time: every frame of a growing Markdown reply (10-20 ms of
Python) stalled the decode loop, which costs 10% of the tokens/s (BENCHMARKS.md).  Here
the model and its decode loop live in a child process with its own interpreter; the
engine thread in the front end only forwards commands and passes events on.

The child is ``python -m vicuna_tui.engine.process``, talking pickled tuples over its
stdin and stdout (a plain subprocess, so no main module is re-imported as with
multiprocessing's spawn).  In the child one thread owns the model, as in-process; a
second thread reads the pipe, so that a cancel is seen while a reply is being decoded,
and sets the event that the decode loop checks every token.  The child's own output
(library warnings, progress bars) goes to ``engine.log`` in the log folder, never to
the terminal the TUI draws on.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import pickle
import queue
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from vicuna_tui.engine import process_wire as wire
from vicuna_tui.engine.backend import HoldsModel
from vicuna_tui.engine.events import (
    ChatRequest,
    EngineEvent,
    ModelInfo,
    PromptPreview,
    ReplyDone,
)
from vicuna_tui.engine.progress import Progress
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.errors import GenerationError, ModelProcessLost, VicunaError

LOG_LIMIT = 5 * 2**20
RELOAD_HINT = "load the model again (Reload model in the settings pane)"
ORPHAN_GRACE = 3.0  # seconds the child lets a reply stop once the front end is gone

# Every model process this front end started and has not yet seen end.  At exit, any
# still running is killed: nothing of ours outlives the front end, whatever the model
# was doing (a load cannot be interrupted from inside).
_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


def end_model_processes() -> None:
    """Kill every model process this front end started that is still running."""
    with _LIVE_LOCK:
        left = list(_LIVE)
        _LIVE.clear()
    for process in left:
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            process.wait(5)


atexit.register(end_model_processes)


def log_path() -> Path:
    from vicuna_tui import locations

    return locations.engine_log_path()


def _write(stream: IO[bytes], message: tuple[Any, ...]) -> None:
    pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


class ProcessBackend(HoldsModel):
    """A local backend (transformers or llama.cpp) in a child process.  Every method
    runs on the engine thread, except ``cancel``, which any thread may call."""

    kind = "local"

    def __init__(self, settings: LoadSettings, *, debug: bool = False) -> None:
        self.settings = settings
        self.debug = debug
        self._process: subprocess.Popen[bytes] | None = None
        self._info: ModelInfo | None = None
        self._sequence = 0  # each request's number; replies and cancels carry it
        self._send_lock = threading.Lock()  # cancel() writes from other threads

    # -- lifecycle -------------------------------------------------------------------------

    def check(self) -> None:
        from vicuna_tui.engine.backends import local_backend  # no torch: only checks paths

        local_backend(self.settings).check()

    def _open_log(self) -> tuple[IO[bytes] | int, str | None]:
        """engine.log for the child's stderr; DEVNULL, and why, when it cannot be written
        (a read-only log folder must not stop the model)."""
        from vicuna_tui import writable

        path: Path | None = None
        try:
            path = log_path()
            with contextlib.suppress(OSError):  # keep one old log, not an ever-growing one
                if path.stat().st_size > LOG_LIMIT:
                    os.replace(path, path.with_name(path.name + ".1"))
            log = open(path, "ab")  # noqa: SIM115 (closed once the child has it)
            os.chmod(path, 0o600)
            return log, None
        except OSError as exc:
            where = path or Path(exc.filename or "engine.log")
            problem = writable.os_error_problem(exc, where)
            return subprocess.DEVNULL, f"no engine.log this time: {problem}"

    def load(self, progress: Progress | None = None) -> ModelInfo:
        log, log_problem = self._open_log()
        try:
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "vicuna_tui.engine.process"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                )
            finally:
                if not isinstance(log, int):
                    log.close()
        except OSError as exc:
            raise GenerationError(
                f"could not start the model's process: {exc}",
                "check that the machine has free memory and processes left",
            ) from exc
        with _LIVE_LOCK:
            _LIVE.add(self._process)

        def on_progress(value: Any) -> None:
            if progress is not None:
                progress(*value)

        try:
            load = wire.LoadModel(self.settings, self.debug, tuple(sys.path))
            info = self._request(load, on_progress)
        except BaseException:
            self.unload()
            raise
        self._info = cast(ModelInfo, info)
        if log_problem:
            notices = (*self._info.notices, log_problem)
            self._info = dataclasses.replace(self._info, notices=notices)
        return self._info

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def cancel(self) -> None:
        """Stop the reply being decoded (any thread)."""
        with contextlib.suppress(OSError, ValueError, GenerationError):
            self._send(wire.Signal.CANCEL, new=False)

    def abort(self) -> None:
        """End the model's process now, whatever it is doing (any thread): quitting
        while a model loads, or a process that did not stop when asked."""
        process = self._process
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()

    def unload(self) -> None:
        process, self._process, self._info = self._process, None, None
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert process.stdin is not None
            with self._send_lock:
                _write(process.stdin, (0, wire.Signal.QUIT))
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        with _LIVE_LOCK:
            _LIVE.discard(process)
        if process.stdout is not None:
            process.stdout.close()

    # -- requests --------------------------------------------------------------------------

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[EngineEvent]:
        sequence = self._send(wire.Generate(request))
        if cancel.is_set():  # cancelled while queued
            self.cancel()
        finished = False
        try:
            while True:
                reply = self._receive(sequence)
                if isinstance(reply, wire.Streamed):
                    yield reply.event
                    if isinstance(reply.event, ReplyDone):
                        finished = True
                        return
                elif isinstance(reply, wire.Failure):
                    finished = True
                    raise reply.error
        finally:
            if not finished:  # abandoned mid-reply: stop the child's decode loop too
                self.cancel()

    def preview(self, request: ChatRequest) -> PromptPreview:
        return cast(PromptPreview, self._request(wire.Preview(request)))

    def memory_in_use(self) -> int | None:
        return cast("int | None", self._request(wire.Signal.MEASURE_MEMORY))

    def reset_cache(self) -> None:
        self._request(wire.Signal.RESET_CACHE)

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(local_backend, *args)`` in the child (an importable function)."""
        return self._request(wire.RunFunction(function, args))

    def _request(
        self, request: wire.Request, on_progress: Callable[[Any], None] | None = None
    ) -> Any:
        sequence = self._send(request)
        while True:
            reply = self._receive(sequence)
            if isinstance(reply, wire.Answer):
                return reply.value
            if isinstance(reply, wire.Failure):
                raise reply.error
            if isinstance(reply, wire.Progress) and on_progress is not None:
                on_progress(reply.value)

    # -- the pipe --------------------------------------------------------------------------

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise ModelProcessLost("the model is not loaded", RELOAD_HINT)
        return self._process

    def _send(self, request: wire.Request, *, new: bool = True) -> int:
        process = self._running()
        assert process.stdin is not None
        with self._send_lock:
            if new:
                self._sequence += 1
            sequence = self._sequence
            try:
                _write(process.stdin, (sequence, request))
                failed = None
            except (OSError, ValueError) as exc:
                failed = exc
        if failed is not None:  # outside the lock: _died() unloads, which takes it
            if not new:
                raise failed
            raise self._died() from failed
        return sequence

    def _receive(self, sequence: int) -> wire.Reply:
        process = self._running()
        assert process.stdout is not None
        while True:
            try:
                number, reply = pickle.load(process.stdout)
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                raise self._died() from exc
            if number == sequence:  # older numbers answer an abandoned request
                return cast(wire.Reply, reply)

    def _died(self) -> ModelProcessLost:
        process = self._process
        code = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(2)
            code = process.returncode
        self.unload()
        why = f" (exit code {code})" if code is not None else ""
        if code is not None and code < 0:
            why = f" (killed by signal {-code}{', likely out of memory' if -code == 9 else ''})"
        return ModelProcessLost(
            f"the model's process stopped{why}", f"{RELOAD_HINT}; details may be in {log_path()}"
        )


# -- the child ---------------------------------------------------------------------------


class _Child:
    """The model's process: the main thread owns the model; a reader thread takes
    requests off stdin, and handles cancels at once."""

    def __init__(self, incoming: IO[bytes], outgoing: IO[bytes]) -> None:
        self.incoming, self.outgoing = incoming, outgoing
        self.requests: queue.Queue[tuple[int, wire.Request] | None] = queue.Queue()
        self.cancel = threading.Event()
        self.lock = threading.Lock()
        self.current = 0  # the request being handled
        self.cancelled = 0  # the newest request a cancel was asked for
        self.debug = False
        self.backend: Any = None

    def read(self) -> None:
        while True:
            try:
                message = pickle.load(self.incoming)
            except (EOFError, OSError, pickle.UnpicklingError):
                message = None  # the front end is gone: stop any reply, then exit
                self.cancel.set()
                self.exit_soon()
            if message is not None and message[1] is wire.Signal.CANCEL:
                with self.lock:
                    self.cancelled = max(self.cancelled, message[0])
                    if self.current == message[0]:
                        self.cancel.set()
                continue
            self.requests.put(message)
            if message is None or message[1] is wire.Signal.QUIT:
                return

    def exit_soon(self) -> None:
        """With no front end, nobody will ever read what we make: a reply stops within
        a token, but a load (or a stuck library call) would hold the model's memory for
        as long as it runs.  Exit in any case once the grace period is over."""

        def end() -> None:
            os._exit(0)

        timer = threading.Timer(ORPHAN_GRACE, end)
        timer.daemon = True
        timer.start()

    def reply(self, reply: wire.Reply) -> None:
        _write(self.outgoing, (self.current, reply))

    def serve(self) -> None:
        threading.Thread(target=self.read, name="vicuna-model-pipe", daemon=True).start()
        while True:
            message = self.requests.get()
            if message is None or message[1] is wire.Signal.QUIT:
                return
            sequence, request = message
            with self.lock:
                self.current = sequence
                self.cancel.clear()
                if self.cancelled >= sequence:
                    self.cancel.set()
            try:
                self.handle(request)
            except (BrokenPipeError, ConnectionResetError):
                return  # the front end is gone
            except VicunaError as exc:
                if self.debug:
                    traceback.print_exc()
                self.reply(wire.Failure(exc))
            except Exception as exc:  # noqa: BLE001 - reported as a GenerationError
                traceback.print_exc()  # into engine.log
                self.reply(
                    wire.Failure(
                        GenerationError(
                            f"the model failed: {type(exc).__name__}: {exc}",
                            f"the traceback is in {log_path()}",
                        )
                    )
                )

    def handle(self, request: wire.Request) -> None:
        if isinstance(request, wire.LoadModel):
            paths = list(request.paths)
            sys.path[:] = [*paths, *(p for p in sys.path if p not in paths)]
            self.debug = request.debug
            from vicuna_tui.engine.backends import local_backend

            self.backend = local_backend(request.settings, native_log=True)  # into engine.log
            self.backend.check()
            info = self.backend.load(lambda *value: self.reply(wire.Progress(value)))
            self.reply(wire.Answer(info))
        elif self.backend is None:
            raise GenerationError("no model is loaded", "wait for the model to load")
        elif isinstance(request, wire.Generate):
            for event in self.backend.generate(request.request, self.cancel):
                self.reply(wire.Streamed(event))
        elif isinstance(request, wire.Preview):
            self.reply(wire.Answer(self.backend.preview(request.request)))
        elif request is wire.Signal.MEASURE_MEMORY:
            self.reply(wire.Answer(self.backend.memory_in_use()))
        elif request is wire.Signal.RESET_CACHE:
            self.backend.reset_cache()
            self.reply(wire.Answer())
        elif isinstance(request, wire.RunFunction):
            self.reply(wire.Answer(request.function(self.backend, *request.args)))
        else:
            raise GenerationError(f"unknown request {request!r}", "this is a bug in vicuna-tui")


def main() -> None:
    import signal

    # Ctrl+C in the terminal is the front end's to handle (it cancels or quits and then
    # tells us); a SIGINT sent to the whole process group must not kill the model.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Likewise the terminal closing (SIGHUP to the whole session): the front end saves
    # the reply in flight and then stops us; if it dies instead, our stdin ends.
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The pipe to the front end is our stdin and stdout as they are now; afterwards
    # fd 1 goes where fd 2 goes (engine.log), so no library can write into the pipe.
    incoming = os.fdopen(os.dup(0), "rb")
    outgoing = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115
    sys.stdout = sys.stderr
    _Child(incoming, outgoing).serve()


if __name__ == "__main__":
    main()
