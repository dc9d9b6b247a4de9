"""Snapshot tests (pytest-textual-snapshot) at a fixed terminal size.

A scripted backend keeps every frame deterministic.  Refresh after an intended
change with: pytest tests/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import ScriptedBackend
from tui_helpers import make_app as make_chat_app
from tui_helpers import showing, wait_for

from vicuna_tui.errors import ModelNotFoundError
from vicuna_tui.tui.screens.dialogs import ErrorScreen

SIZE = (110, 32)
CODE_REPLY = [
    "Here is the function:\n\n",
    "```python\n",
    "def add(a, b):\n",
    "    return a + b\n",
    "```\n\n",
    "It adds **two** numbers.",
]


def snapshot_app(backend_factory: Any) -> Any:
    """The app without toasts: they come and go on timers, so no frame could hold still
    (the notifications themselves are checked in test_tui.py)."""
    app = make_chat_app(backend_factory)
    app.notify = lambda *args, **kwargs: None  # type: ignore[method-assign]
    return app


async def settle(pilot: Any) -> None:
    app = pilot.app
    chat = getattr(app, "chat", None)
    if chat is not None and chat.is_mounted:
        await wait_for(pilot, lambda: chat.sidebar.up_to_date)  # its count shown
    app.clear_notifications()
    # The chat is a pushed screen: App.query would search only the default one.
    for area in app.screen.query("TextArea, Input"):
        area.cursor_blink = False
        # TextArea caches a line drawn in the blink's "off" phase under the same key as
        # a line drawn with blinking off: drop it, or the cursor may be missing.
        getattr(area, "_line_cache", {}).clear()
        area.refresh()
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


async def loaded(pilot: Any) -> None:
    await wait_for(pilot, lambda: pilot.app.chat.model_ready)
    await settle(pilot)


async def ask(pilot: Any, text: str) -> None:
    chat = pilot.app.chat
    chat.prompt.set_text(text)
    await pilot.press("enter")


def test_empty_app(snap_compare: Any, home: Path) -> None:
    app = snapshot_app(lambda load: ScriptedBackend())
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded)


def test_mid_stream_with_an_open_code_fence(snap_compare: Any, home: Path) -> None:
    backend = ScriptedBackend([CODE_REPLY], pause_after=4)

    async def run_before(pilot: Any) -> None:
        await loaded(pilot)
        await ask(pilot, "Write a Python function that adds two numbers.")
        await wait_for(pilot, backend.paused.is_set)
        # Drawn, not only received: the Markdown widget's own source has the text.
        view = pilot.app.chat.transcript.views[-1]
        await wait_for(pilot, lambda: "return a + b" in view.markdown.source)
        await settle(pilot)

    app = snapshot_app(lambda load: backend)
    try:
        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    finally:
        backend.gate.set()


def test_finished_reply(snap_compare: Any, home: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await loaded(pilot)
        await ask(pilot, "Write a Python function that adds two numbers.")
        await wait_for(
            pilot,
            lambda: (
                bool(pilot.app.chat.session.messages)
                and pilot.app.chat.replies.streaming is None
                and len(pilot.app.chat.session.messages) == 2
            ),
        )
        await settle(pilot)

    app = snapshot_app(lambda load: ScriptedBackend([CODE_REPLY]))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_settings_pane(snap_compare: Any, home: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("f3")
        await settle(pilot)

    app = snapshot_app(lambda load: ScriptedBackend())
    assert snap_compare(app, terminal_size=(110, 60), run_before=run_before)


def test_help_screen(snap_compare: Any, home: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("f1")
        await settle(pilot)

    app = snapshot_app(lambda load: ScriptedBackend())
    assert snap_compare(app, terminal_size=(110, 40), run_before=run_before)


def test_error_dialog(snap_compare: Any, home: Path) -> None:
    error = ModelNotFoundError(
        "no such file or folder: /models/vicuna-7b",
        "pass a model folder (with config.json), a .gguf file, or a "
        "Hub id such as HuggingFaceTB/SmolLM2-135M-Instruct",
    )

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: showing(pilot.app, ErrorScreen))
        await settle(pilot)

    app = snapshot_app(lambda load: ScriptedBackend(load_error=error))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_a_reply_with_branches(snap_compare: Any, home: Path) -> None:
    backend = ScriptedBackend([["A llama is a camelid."], ["Llamas hum."], ["They spit."]])

    async def run_before(pilot: Any) -> None:
        await loaded(pilot)
        await ask(pilot, "Tell me about llamas.")
        chat = pilot.app.chat
        for count in (1, 2, 3):

            def answered(n: int = count) -> bool:
                return len(backend.requests) == n and chat.replies.streaming is None

            await wait_for(pilot, answered)
            if count < 3:
                await pilot.press("ctrl+r")
        await pilot.press("alt+left")  # the second of three
        await wait_for(pilot, lambda: "‹ 2/3 ›" in str(chat.transcript.views[-1].label_text))
        await settle(pilot)

    app = snapshot_app(lambda load: backend)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_an_arena_battle_before_the_vote(snap_compare: Any, home: Path) -> None:
    """Two panes, both replies in, the names and speeds hidden, the vote bar live."""
    from test_tui_arena import arena_app

    backends = {
        "one": ScriptedBackend([["Paris is the capital of **France**."]], name="one"),
        "two": ScriptedBackend([["It is Paris."]], name="two"),
    }
    app = arena_app(backends, swapped=True)
    app.notify = lambda *args, **kwargs: None  # type: ignore[method-assign]

    async def run_before(pilot: Any) -> None:
        screen = app.arena
        await wait_for(pilot, lambda: all(s.state == "ready" for s in screen.sides))
        screen.prompt.set_text("Which city is the capital of France?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.battle.turns == 1)
        await wait_for(pilot, lambda: not any(s.stream.active for s in screen.sides))
        await wait_for(pilot, lambda: app.store_calls is None or app.store_calls.idle)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def _focus_and_edit(theme: str) -> tuple[Any, Any]:
    backend = ScriptedBackend([["A llama is a camelid."], ["Llamas hum."]])

    async def run_before(pilot: Any) -> None:
        pilot.app.theme = theme
        await loaded(pilot)
        await ask(pilot, "Tell me about llamas.")
        chat = pilot.app.chat
        await wait_for(pilot, lambda: len(backend.requests) == 1 and chat.replies.streaming is None)
        await ask(pilot, "And alpacas?")
        await wait_for(pilot, lambda: len(backend.requests) == 2 and chat.replies.streaming is None)
        await pilot.press("shift+tab")  # the input -> the last message
        await wait_for(pilot, lambda: pilot.app.focused is chat.transcript.views[-1])
        chat.editing.begin(0, "Tell me about camels.")  # edit mode, as F7 on message 1
        chat.transcript.views[1].focus()  # a focused reply while editing
        await settle(pilot)

    return make_chat_app(lambda load: backend), run_before


def test_focus_and_edit_mode_are_visible_in_two_themes(snap_compare: Any, home: Path) -> None:
    """A focused message has its own box and title; edit mode its own border and title:
    distinct from a user message and the normal prompt in textual-dark (where $accent
    is $warning) and in a light theme."""
    for theme in ("textual-dark", "textual-light"):
        app, run_before = _focus_and_edit(theme)
        app.notify = lambda *args, **kwargs: None
        assert snap_compare(app, terminal_size=SIZE, run_before=run_before), theme


def test_the_token_view(snap_compare: Any, home: Path) -> None:
    """A saved reply as its tokens, marked by probability (tints, italic for unsure,
    underline under 10%), the cursor on a token, and its alternatives with what the
    greedy sampler made of them."""
    import math

    from vicuna_tui.engine.events import TokenChoice, TokenLogprob
    from vicuna_tui.session import ChatSession
    from vicuna_tui.store import Store

    def token(text: str, p: float, *others: tuple[str, float]) -> TokenLogprob:
        top = sorted([(text, p), *others], key=lambda c: -c[1])
        return TokenLogprob(text, math.log(p), tuple(TokenChoice(t, math.log(q)) for t, q in top))

    tokens = (
        token("L", 0.157, ("The", 0.134), ("La", 0.09), ("Al", 0.063), ("Le", 0.05)),
        token("'", 0.66, ("ad", 0.16)),
        token("É", 0.4, ("e", 0.3)),
        token("to", 0.95),
        token("ile", 0.97),
        token(",", 0.3, (" (", 0.2)),
        token(" la", 0.52, (" le", 0.2)),
        token(" Mar", 0.06, (" Cit", 0.058), (" France", 0.05)),
    )
    with Store() as store:
        session = ChatSession(store)
        session.add_user("What is the capital of France?")
        session.record_reply("L'Étoile, la Mar", "length", tokens=tokens)
        assert session.conversation is not None
        chat_id = session.conversation.id

    async def run_before(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("f9")
        chat = pilot.app.chat
        await wait_for(pilot, lambda: chat.transcript.views[-1].token_text is not None)
        chat.transcript.views[-1].focus()
        await pilot.press("right", "right")
        await settle(pilot)

    app = make_chat_app(lambda load: ScriptedBackend(), conversation_id=chat_id)
    app.notify = lambda *args, **kwargs: None  # type: ignore[method-assign]
    assert snap_compare(app, terminal_size=(110, 36), run_before=run_before)
