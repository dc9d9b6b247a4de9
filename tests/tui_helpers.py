"""Building the TUI for tests, and waiting for it without timing anything."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from vicuna_tui import config as config_mod
from vicuna_tui import runtime
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.store import Store
from vicuna_tui.tui.app import VicunaApp
from vicuna_tui.tui.screens.chat import ChatScreen

FIXED_MEMORY = 123 * 2**20


def make_app(
    backend_factory: Callable[[LoadSettings], Any],
    *,
    load: LoadSettings | None = None,
    temperature: float = 0.0,
    max_new_tokens: int = 64,
    conversation_id: str | None = None,
    save: bool = True,
    remote: Any = None,
    store_object: Store | None = None,
    not_saving: str | None = None,
    not_saving_hint: str | None = None,
) -> VicunaApp:
    cfg = config_mod.load()
    resolved = runtime.Resolved(
        load=load or LoadSettings(),
        generation=GenerationSettings(temperature=temperature, max_new_tokens=max_new_tokens),
        template="auto",
        system_message=None,
        remote=remote,
        config=cfg,
        theme=cfg.values.get("theme"),
    )
    return VicunaApp(
        resolved,
        store_object or (Store() if save else None),
        conversation_id=conversation_id,
        backend_factory=backend_factory,
        memory_probe=lambda: FIXED_MEMORY,
        not_saving=not_saving,
        not_saving_hint=not_saving_hint,
    )


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Let the app run until ``condition()`` holds (the timeout only stops a hang)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the app never reached the expected state")
        await pilot.pause(0.02)


def chat(app: VicunaApp) -> ChatScreen:
    return app.chat


async def ready(pilot: Any) -> ChatScreen:
    screen = chat(pilot.app)
    await wait_for(pilot, lambda: screen.model_ready)
    await pilot.pause()
    return screen


async def send(pilot: Any, text: str) -> ChatScreen:
    screen = chat(pilot.app)
    screen.prompt.focus()
    screen.prompt.set_text(text)
    before = screen.submitted
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen.submitted > before)
    return screen


async def reply_done(pilot: Any) -> ChatScreen:
    screen = chat(pilot.app)
    await wait_for(pilot, lambda: screen.streaming is None)
    await pilot.pause()
    return screen


def showing(app: Any, screen_type: type) -> bool:
    """Whether the app shows a ``screen_type`` that has mounted (its widgets are there
    to query: a pushed screen composes after it becomes ``app.screen``)."""
    screen = app.screen
    return isinstance(screen, screen_type) and bool(screen.is_mounted)


def status_text(screen: ChatScreen) -> str:
    return str(screen.status.query_one("#status-text").render())
