"""Streaming overhead: how fast tokens reach the user through each front end.

    python benchmarks/stream.py [--runs 5] [--lengths 200 800] [--backend llamacpp]

All paths drive the same loaded SmolLM2 (CPU, greedy, replies forced to full length)
in one process, one after another.  The rate is taken where the user sees the text:
(new tokens - 1) / (time of the last delta - time of the first), at the consumer; the
TUI draws in frames, so there it is the tokens after the first frame over the time from
the first frame to the final update.  Ratios are against the raw engine
(backend.generate called directly).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import queue
import statistics
import threading
import time
from typing import Any

from _common import fmt, no_eos, smollm_folder, smollm_gguf, table, write_section

PROMPT = "Tell me a very long story about a lighthouse keeper and the sea."


def request(tokens: int, request_id: int = 1) -> Any:
    from vicuna_tui.engine.events import ChatRequest
    from vicuna_tui.engine.settings import GenerationSettings

    return ChatRequest(
        turns=(("user", PROMPT),),
        request_id=request_id,
        generation=GenerationSettings(temperature=0.0, max_new_tokens=tokens),
    )


def rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


class Preloaded:
    """The loaded model behind the Backend interface, without reloading."""

    kind = "local"

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def check(self) -> None:
        pass

    def load(self, progress: Any = None) -> Any:
        return self.backend.info

    def generate(self, req: Any, cancel: threading.Event) -> Any:
        self.backend.reset_cache()
        return self.backend.generate(req, cancel)

    def preview(self, req: Any) -> Any:
        return self.backend.preview(req)

    def cancel(self) -> None:
        pass

    def unload(self) -> None:
        pass


def raw_engine(backend: Any, tokens: int) -> float:
    from vicuna_tui.engine.events import ReplyDelta

    backend.reset_cache()
    times = [
        time.perf_counter()
        for event in backend.generate(request(tokens), threading.Event())
        if isinstance(event, ReplyDelta)
    ]
    return rate(times)


def engine_thread(backend: Any, tokens: int) -> float:
    from vicuna_tui.engine.events import ModelReady, ReplyDelta, ReplyDone
    from vicuna_tui.engine.worker import EngineThread

    events: queue.Queue[Any] = queue.Queue()
    engine = EngineThread(events.put).start()
    engine.load(Preloaded(backend))
    while not isinstance(events.get(), ModelReady):
        pass
    engine.generate(request(tokens))
    times = []
    while True:
        event = events.get()
        if isinstance(event, ReplyDelta):
            times.append(time.perf_counter())
        elif isinstance(event, ReplyDone):
            break
    engine.shutdown()
    return rate(times)


class TimedOut(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def write(self, text: str) -> int:
        self.times.append(time.perf_counter())
        return len(text)

    def isatty(self) -> bool:
        return False


def simple_style(backend: Any, tokens: int) -> float:
    from vicuna_tui.engine.settings import GenerationSettings
    from vicuna_tui.frontends.driver import Driver
    from vicuna_tui.frontends.linechat import LineChat, PlainRenderer
    from vicuna_tui.session import ChatSession

    driver = Driver()
    info = driver.load(Preloaded(backend), lambda event: None)
    out = TimedOut()
    session = ChatSession(
        None, generation=GenerationSettings(temperature=0.0, max_new_tokens=tokens)
    )
    session.set_model(info)
    renderer = PlainRenderer(io.StringIO(), out, io.StringIO(), interactive=False)
    LineChat(session, driver, renderer, stderr=io.StringIO()).respond(session.add_user(PROMPT))
    driver.close()
    return rate(out.times[:-1])  # the last write is the closing newline


def tui_in_process(backend: Any, tokens: int) -> float:
    """The TUI with the model in its own process (the default): ``backend`` is then
    the loaded ProcessBackend, passed instead of the in-process model."""
    return tui_headless(CHILD["backend"], tokens)


CHILD: dict[str, Any] = {}


def streaming(app: Any) -> bool:
    """Whether the chat is writing a reply (as this tree's chat screen says it; an
    earlier revision's kept it in ``streaming``: revision_ab.py runs this script there)."""
    chat = app.chat
    replies = getattr(chat, "replies", None)
    return (replies.streaming if replies is not None else chat.streaming) is not None


def tui_headless(backend: Any, tokens: int) -> float:
    """Tokens/s as drawn: the TUI draws a few frames a second, each with every token
    that arrived since the last, and the last tokens with the final update.  The rate is
    (tokens - those in the first frame) / (time of the final update - first frame), the
    first frame's tokens counted by its share of the reply's characters."""
    from tui_helpers import make_app, ready, reply_done, run_test, send

    from vicuna_tui.tui.widgets.transcript import MessageView

    frames: list[tuple[float, int]] = []  # (time drawn, characters drawn so far)
    original_write, original_finish = MessageView.write, MessageView.finish

    async def timed_write(self: Any, *args: Any, **kwargs: Any) -> None:
        await original_write(self, *args, **kwargs)
        frames.append((time.perf_counter(), len(self.text)))

    async def timed_finish(self: Any, text: str | None = None, meta: str = "") -> None:
        await original_finish(self, text, meta)
        if self.role == "assistant":
            frames.append((time.perf_counter(), len(self.text)))

    async def run() -> None:
        app = make_app(lambda load: Preloaded(backend), max_new_tokens=tokens, save=False)
        async with run_test(app, size=(120, 40)) as pilot:
            await ready(pilot)
            await send(pilot, PROMPT)
            # Wait without Pilot.pause(): it makes every widget process a callback each
            # time, a load a real terminal session does not have.
            while streaming(app) or not frames:
                await asyncio.sleep(0.05)
            await reply_done(pilot)

    MessageView.write = timed_write  # type: ignore[method-assign]
    MessageView.finish = timed_finish  # type: ignore[method-assign]
    try:
        asyncio.run(run())
    finally:
        MessageView.write = original_write  # type: ignore[method-assign]
        MessageView.finish = original_finish  # type: ignore[method-assign]
    (first_time, first_chars), (last_time, last_chars) = frames[0], frames[-1]
    # The reply is ``tokens`` long (forced); what the first frame drew is its share of
    # the characters.
    return tokens * (last_chars - first_chars) / last_chars / (last_time - first_time)


def _engine(module: str, before: str, name: str) -> Any:
    """A backend class, from its package, or from the module it was before the backends
    became packages (``revision_ab.py`` runs this script in earlier trees too)."""
    import importlib

    try:
        found = importlib.import_module(f"vicuna_tui.engine.{module}")
    except ModuleNotFoundError:
        found = importlib.import_module(f"vicuna_tui.engine.{before}")
    return getattr(found, name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lengths", type=int, nargs="+", default=[200, 800])
    parser.add_argument("--backend", choices=["transformers", "llamacpp"], default="transformers")
    opts = parser.parse_args()
    import os
    import tempfile

    os.environ["VICUNA_TUI_HOME"] = tempfile.mkdtemp(prefix="stream-bench-")
    from vicuna_tui.engine.process import ProcessBackend
    from vicuna_tui.engine.settings import LoadSettings

    backend: Any
    if opts.backend == "llamacpp":
        settings = LoadSettings(model_path=str(smollm_gguf()), device="cpu")
        backend = _engine("llamacpp.backend", "llamacpp", "LlamaCppBackend")(settings)
        model = "SmolLM2-135M-Instruct's Q4_1 GGUF on llama.cpp"
    else:
        settings = LoadSettings(model_path=str(smollm_folder()), device="cpu")
        backend = _engine("transformers.backend", "local", "LocalBackend")(settings)
        model = "SmolLM2-135M-Instruct"
    backend.load()
    no_eos(backend)
    child = ProcessBackend(settings)  # the same model, loaded in a child process
    child.load()
    child.run(no_eos)
    CHILD["backend"] = child
    paths = [
        ("raw engine (backend.generate)", raw_engine),
        ("engine thread", engine_thread),
        ("--style simple", simple_style),
        ("TUI, model in the UI's process", tui_headless),
        ("TUI, model in its own process (default)", tui_in_process),
    ]
    rows = []
    for tokens in opts.lengths:
        results: dict[str, list[float]] = {name: [] for name, _ in paths}
        for run in range(opts.runs + 1):  # the first round warms up
            for name, fn in paths:
                value = fn(backend, tokens)
                if run:
                    results[name].append(value)
        raw = results[paths[0][0]]
        base = statistics.median(raw)
        for name, _ in paths:
            values = results[name]
            paired = [value / first for value, first in zip(values, raw, strict=True)]
            rows.append(
                [
                    str(tokens),
                    name,
                    fmt(values, 1, " tok/s"),
                    f"{statistics.median(values) / base:.3f}",
                    fmt(paired, 3),
                ]
            )
            print(rows[-1], flush=True)
    body = (
        f"{model} on this CPU, greedy, replies forced to the full length. "
        f"Median (min–max) of {opts.runs} rounds after a warm-up round; within a round the "
        "paths run one after another on the same loaded model, except the default TUI row, "
        "whose model is the same weights loaded once in a child process "
        "(engine/process.py). The TUI's rate is taken "
        "over what it draws: the tokens after its first frame, over the time from that "
        "frame to the final update (it draws up to 8 frames a second). Two ratios: of the "
        "medians, and the median (min–max) of each round's ratio to the raw engine's reply "
        "in the same round, which cancels the machine's slower and faster spells. Targets: "
        "the TUI at least 0.97 of the raw engine at 200 tokens and 0.93 at 800.\n\n"
        + table(
            [
                "new tokens",
                "path",
                "tokens/s seen by the user",
                "÷ raw engine",
                "÷ raw engine, round by round",
            ],
            rows,
        )
    )
    child.unload()
    print(body)
    if opts.backend == "llamacpp":
        write_section("stream-llamacpp", "Streaming through the front ends (llama.cpp)", body)
    else:
        write_section("stream", "Streaming through the front ends", body)


if __name__ == "__main__":
    main()
