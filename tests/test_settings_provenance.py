"""Settings have a provenance: a flag lasts for its run; only the settings pane's edits
(and ``config set``) reach config.toml."""

from __future__ import annotations

from pathlib import Path

from helpers import ScriptedBackend, run_cli
from textual.widgets import Button, Input, Static
from tui_helpers import ready, run_test, send, settled, wait_for

from vicuna_tui import config as config_mod
from vicuna_tui import locations, runtime
from vicuna_tui.cli import build_parser
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.session import ChatSession
from vicuna_tui.store import Store
from vicuna_tui.tui.app import VicunaApp

SIZE = (140, 44)


def resolved_from(*argv: str, conversation_id: str | None = None) -> runtime.Resolved:
    args = build_parser().parse_args(list(argv))
    conversation = None
    if conversation_id is not None:
        with Store() as store:
            conversation = store.get(conversation_id)
    return runtime.resolve(args, conversation)


def config_text() -> str:
    path = locations.config_path()
    return path.read_text(encoding="utf-8") if path.exists() else ""


def app_for(resolved: runtime.Resolved, backend: ScriptedBackend, **options: object) -> VicunaApp:
    return VicunaApp(
        resolved,
        Store(),
        backend_factory=lambda load: backend,
        memory_probe=lambda: 1,
        **options,  # type: ignore[arg-type]
    )


def test_every_setting_says_where_it_came_from(home: Path) -> None:
    config_mod.set_values({"top_p": 0.9, "profiles.small.top_k": 7})
    resolved = resolved_from("--profile", "small", "--temperature", "0.3")
    assert resolved.sources["temperature"] == "flag"
    assert resolved.sources["top_p"] == "config"
    assert resolved.sources["top_k"] == "profile"
    assert "max_new_tokens" not in resolved.sources  # the built-in default
    assert resolved.flags == {"temperature": 0.3}


async def test_flags_are_not_written_to_config(home: Path) -> None:
    """``--temperature 0.3 --max-new-tokens 33`` with nothing touched: config.toml stays
    as it was, and the pane marks both as this run's flags."""
    resolved = resolved_from("--temperature", "0.3", "--max-new-tokens", "33")
    backend = ScriptedBackend([["Paris."]])
    app = app_for(resolved, backend)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await send(pilot, "hi")
        await wait_for(pilot, lambda: screen.replies.streaming is None)
        await settled(pilot)
        assert backend.requests[0].generation.max_new_tokens == 33
        assert app._settings_pending == {}
        await pilot.press("f3")
        await pilot.pause()
        label = str(screen.settings.query_one("#label-temperature", Static).render())
        assert "flag, this run only" in label
        assert screen.settings.query_one("#flags-box").display
    assert config_text() == ""  # quitting wrote nothing either
    # The next plain run has the built-in default again.
    assert resolved_from().generation.max_new_tokens == GenerationSettings().max_new_tokens


async def test_an_edit_in_the_pane_is_remembered_and_keep_saves_the_flags(home: Path) -> None:
    resolved = resolved_from("--temperature", "0.3", "--max-new-tokens", "33")
    app = app_for(resolved, ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("f3")
        await pilot.pause()
        field = screen.settings.query_one("#set-temperature", Input)
        field.value = "0.5"
        await wait_for(pilot, lambda: "temperature = 0.5" in config_text())
        assert "max_new_tokens" not in config_text()  # still this run's flag only
        assert "temperature" not in screen.session.pinned
        label = str(screen.settings.query_one("#label-temperature", Static).render())
        assert "flag" not in label
        screen.settings.query_one("#keep-flags", Button).press()
        await wait_for(pilot, lambda: "max_new_tokens = 33" in config_text())
        assert not screen.settings.query_one("#flags-box").display


def _saved_chat(max_new_tokens: int) -> str:
    with Store() as store:
        session = ChatSession(store, generation=GenerationSettings(max_new_tokens=max_new_tokens))
        session.import_messages([("user", "hello"), ("assistant", "hi")], title="old chat")
        assert session.conversation is not None
        return session.conversation.id


async def test_resume_in_the_tui_honours_an_explicit_flag(home: Path) -> None:
    """``--resume ID --max-new-tokens 300``: the flag beats the chat's saved 100; the
    chat's saved temperature still applies where no flag was given."""
    conv_id = _saved_chat(100)
    resolved = resolved_from(
        "--resume", conv_id, "--max-new-tokens", "300", conversation_id=conv_id
    )
    backend = ScriptedBackend([["ok"]])
    app = app_for(resolved, backend, conversation_id=conv_id)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: len(screen.transcript.views) == 2)
        await send(pilot, "again")
        await wait_for(pilot, lambda: bool(backend.requests))
        assert backend.requests[0].generation.max_new_tokens == 300
    # Opening it without the flag brings the saved value back.
    plain = resolved_from("--resume", conv_id, conversation_id=conv_id)
    assert plain.generation.max_new_tokens == 100


def test_a_pinned_flag_beats_a_chat_opened_later(home: Path) -> None:
    session = ChatSession(None, pinned={"max_new_tokens": 300, "template": "chatml"})
    with Store() as store:
        session.store = store
        conv_id = _saved_chat(100)
        session.open(conv_id)
    assert session.generation.max_new_tokens == 300
    assert session.template == "chatml"


def test_line_front_ends_and_the_arena_leave_config_alone(home: Path, smollm_gguf: Path) -> None:
    """-p with flags answers with them and writes nothing; a later arena side, as
    resolved from the command line, has the built-in default."""
    result = run_cli(
        "--model-path",
        str(smollm_gguf),
        "--temperature",
        "0",
        "--max-new-tokens",
        "3",
        "-p",
        "Which city is the capital of France?",
        "--json",
        env={"VICUNA_TUI_HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    assert '"finish_reason": "length"' in result.stdout
    assert config_text() == ""
    from vicuna_tui.arena.sides import typed_side

    side = runtime.resolve(typed_side(str(smollm_gguf), config_mod.load()))
    assert side.generation.max_new_tokens == GenerationSettings().max_new_tokens
