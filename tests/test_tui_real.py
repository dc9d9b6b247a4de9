"""TUI flows on the real SmolLM2 model (loaded once for the session)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Select
from tui_helpers import (
    count_deltas,
    make_app,
    ready,
    reply_done,
    run_test,
    seen,
    send,
    showing,
    wait_for,
)

from vicuna_tui.engine.backend import Backend
from vicuna_tui.engine.events import ChatRequest, ModelInfo
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.engine.transformers.backend import LocalBackend
from vicuna_tui.store import Store
from vicuna_tui.tui.messages import PromptSubmitted
from vicuna_tui.tui.screens.dialogs import ErrorScreen

pytestmark = pytest.mark.real_model
SIZE = (120, 40)


class Preloaded:
    """The session's loaded model behind the Backend interface (load() does not reload)."""

    kind = "local"

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.generated: list[ChatRequest] = []

    def check(self) -> None:
        pass

    def load(self, progress: Any = None) -> Any:
        self.backend.reset_cache()
        return self.backend.info

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Any:
        self.generated.append(request)
        return self.backend.generate(request, cancel)

    def preview(self, request: ChatRequest) -> Any:
        return self.backend.preview(request)

    def cancel(self) -> None:
        pass

    def unload(self) -> None:
        pass  # the session fixture owns it

    def abort(self) -> None:
        pass

    def memory_in_use(self) -> int | None:
        return None

    @property
    def loaded(self) -> ModelInfo | None:
        return self.backend.loaded


@pytest.fixture
def factory(backend: LocalBackend, smollm_dir: Path) -> Any:
    """The shared model for the starting settings; a real load for anything else."""
    loaded: list[LocalBackend] = []
    base = LoadSettings(model_path=str(smollm_dir), device="cpu")

    def make(load: LoadSettings) -> Backend:
        if load == base:
            return Preloaded(backend)
        fresh = LocalBackend(load)
        loaded.append(fresh)
        return fresh

    make.base = base  # type: ignore[attr-defined]
    yield make
    for extra in loaded:
        extra.unload()


def stored() -> list[tuple[str, str, str | None]]:
    with Store() as store:
        conv = store.get(store.resolve("last"))
    return [(m.role, m.content, m.finish_reason) for m in conv.messages]


async def test_chat_stream_cancel_regenerate_edit(home: Path, factory: Any) -> None:
    app = make_app(factory, load=factory.base, max_new_tokens=60)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        deltas = count_deltas(app)
        await send(pilot, "What is the capital of France?")
        await reply_done(pilot)
        reply = screen.transcript.views[-1]
        assert "Paris" in reply.text
        assert sum(deltas) > 3  # streamed token by token
        assert stored()[-1][0] == "assistant" and "Paris" in stored()[-1][1]

        # cancel a long reply: the partial text stays, marked, and is saved
        screen.session.generation = dataclasses.replace(
            screen.session.generation, max_new_tokens=300
        )
        await send(pilot, "Tell me a long story about a dragon.")
        await wait_for(
            pilot,
            lambda: (
                screen.replies.streaming is not None
                and len(screen.replies.streaming.view.text) > 20
            ),
        )
        await pilot.press("escape")
        await reply_done(pilot)
        role, text, finish = stored()[-1]
        assert (role, finish) == ("assistant", "cancelled")
        assert text and text == screen.transcript.views[-1].text

        # regenerate it (greedy: same start)
        await pilot.press("ctrl+r")
        await wait_for(
            pilot,
            lambda: (
                screen.replies.streaming is not None
                and len(screen.replies.streaming.view.text) > 20
            ),
        )
        await pilot.press("escape")
        await reply_done(pilot)
        assert len(screen.session.messages) == 4
        assert screen.session.messages[-1].content[:20] == text[:20]

        # edit and resend the last message
        await pilot.press("ctrl+g")
        assert screen.prompt.text == "Tell me a long story about a dragon."
        screen.prompt.set_text("What is the capital of Germany?")
        before = len(seen(app, PromptSubmitted))
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(seen(app, PromptSubmitted)) > before)
        await reply_done(pilot)
        assert "Berlin" in screen.transcript.views[-1].text
        assert [m[0] for m in stored()] == ["user", "assistant", "user", "assistant"]
        assert stored()[2][1] == "What is the capital of Germany?"


async def test_sampling_change_applies_to_the_next_reply(home: Path, factory: Any) -> None:
    app = make_app(factory, load=factory.base)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("f3")
        screen.query_one("#set-max_new_tokens", Input).value = "3"
        await pilot.pause()
        await send(pilot, "Tell me about the moon.")
        await reply_done(pilot)
        last = screen.session.messages[-1]
        assert last.new_tokens == 3
        assert last.finish_reason == "length"


async def test_reload_with_another_dtype_keeps_the_chat(home: Path, factory: Any) -> None:
    app = make_app(factory, load=factory.base)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await send(pilot, "What is the capital of France?")
        await reply_done(pilot)
        await pilot.press("f3")
        screen.query_one("#set-dtype", Select).value = "bfloat16"
        await pilot.pause()
        await pilot.click("#reload")
        await wait_for(
            pilot,
            lambda: (
                screen.model_ready
                and screen.session.model_info is not None
                and screen.session.model_info.dtype == "bfloat16"
            ),
        )
        assert len(screen.transcript.views) == 2
        await send(pilot, "And of Italy?")
        await reply_done(pilot)
        assert "Rome" in screen.transcript.views[-1].text
        assert len(stored()) == 4


async def test_bad_path_in_settings_shows_how_to_fix_it(home: Path, factory: Any) -> None:
    app = make_app(factory, load=factory.base)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("f3")
        screen.query_one("#set-model_path", Input).value = "/models/missing"
        await pilot.pause()
        await pilot.click("#reload")
        await wait_for(pilot, lambda: showing(app, ErrorScreen))
        hint = str(app.screen.query_one("#error-hint").render())
        assert "config.json" in hint
        await pilot.press("enter")
        await send(pilot, "What is the capital of France?")
        await reply_done(pilot)
        assert "Paris" in screen.transcript.views[-1].text


async def test_markup_like_reply_on_the_real_model(home: Path, factory: Any) -> None:
    app = make_app(factory, load=factory.base, max_new_tokens=40)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        # SmolLM2 answers this with "BBCode [b] tag:" lines: [b] is Rich/Textual markup.
        await send(pilot, "Show me a Markdown link and a BBCode [b] tag.")
        await reply_done(pilot)
        view = screen.transcript.views[-1]
        assert view.text == screen.session.messages[-1].content
        assert "BBCode [b] tag" in view.text
        svg = app.export_screenshot().replace("&#160;", " ")
        assert "BBCode [b] tag" in svg  # shown as written, not turned into bold
