"""Building the TUI for tests, and waiting for it without timing anything."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from textual.app import App
from textual.message import Message
from textual.screen import Screen

from vicuna_tui import config as config_mod
from vicuna_tui import runtime
from vicuna_tui.engine.events import ReplyDelta
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.store import Store
from vicuna_tui.tui.app import VicunaApp
from vicuna_tui.tui.chat import ChatScreen
from vicuna_tui.tui.messages import PromptSubmitted

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


_SEEN: weakref.WeakKeyDictionary[App[Any], list[Message]] = weakref.WeakKeyDictionary()


def run_test(app: App[Any], **options: Any) -> Any:
    """``app.run_test`` that records every message posted in the app (``seen``)."""
    messages: list[Message] = []
    _SEEN[app] = messages
    return app.run_test(message_hook=messages.append, **options)


M = TypeVar("M", bound=Message)


def seen(app: App[Any], kind: type[M]) -> list[M]:
    """The messages of ``kind`` handled so far in an app started by ``run_test`` (each
    once, though Textual's hook sees a message at every pump it passes through)."""
    unique: dict[int, M] = {id(m): m for m in _SEEN[app] if isinstance(m, kind)}
    return list(unique.values())


def count_deltas(app: VicunaApp) -> list[int]:
    """From now on, the number of reply deltas the screen takes each frame."""
    counts: list[int] = []
    take = app.replies.take_deltas

    def counting() -> list[ReplyDelta]:
        deltas = take()
        if deltas:
            counts.append(len(deltas))
        return deltas

    app.replies.take_deltas = counting  # type: ignore[method-assign]
    return counts


def chat(app: VicunaApp) -> ChatScreen:
    return app.chat


async def settled(pilot: Any) -> None:
    """Wait until every database call the app made has run and its reply was handled
    (the TUI writes and reads the store on its own thread)."""
    calls = pilot.app.store_calls
    if calls is not None:
        await wait_for(pilot, lambda: calls.idle)
    await pilot.pause()


async def ready(pilot: Any) -> ChatScreen:
    screen = chat(pilot.app)
    await wait_for(pilot, lambda: screen.model_ready)
    await settled(pilot)
    return screen


async def send(pilot: Any, text: str) -> ChatScreen:
    screen = chat(pilot.app)
    screen.prompt.focus()
    screen.prompt.set_text(text)
    before = len(seen(pilot.app, PromptSubmitted))
    await pilot.press("enter")
    await wait_for(pilot, lambda: len(seen(pilot.app, PromptSubmitted)) > before)
    await settled(pilot)  # and handled
    return screen


async def reply_done(pilot: Any) -> ChatScreen:
    screen = chat(pilot.app)
    await wait_for(pilot, lambda: screen.replies.streaming is None)
    await settled(pilot)
    return screen


def showing(app: Any, screen_type: type[Screen[Any]]) -> bool:
    """Whether the app shows a ``screen_type`` that has mounted (its widgets are there
    to query: a pushed screen composes after it becomes ``app.screen``)."""
    screen = app.screen
    return isinstance(screen, screen_type) and bool(screen.is_mounted)


_S = TypeVar("_S", bound=Screen[Any])


def shown(app: Any, screen_type: type[_S]) -> _S:
    """The screen the app shows, which must be a ``screen_type``."""
    screen = app.screen
    assert isinstance(screen, screen_type), screen
    return screen


def status_text(screen: ChatScreen) -> str:
    return screen.status.text
