"""The TUI driven with Pilot on a scripted backend: exact, fast UI behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import ScriptedBackend
from textual import events
from textual.widgets import Input, OptionList, Select, Static
from tui_helpers import (
    make_app,
    ready,
    reply_done,
    run_test,
    seen,
    send,
    settled,
    showing,
    shown,
    wait_for,
)

from vicuna_tui import config as config_mod
from vicuna_tui.engine.events import ModelInfo
from vicuna_tui.errors import ModelNotFoundError
from vicuna_tui.store import Store
from vicuna_tui.tui.messages import StoreResult
from vicuna_tui.tui.screens.dialogs import ConfirmScreen, ErrorScreen
from vicuna_tui.tui.screens.help import HelpScreen
from vicuna_tui.tui.widgets.sidebar import PAGE, Listing, Sidebar
from vicuna_tui.tui.widgets.transcript import MessageView

SIZE = (120, 40)


def stored_messages() -> list[tuple[str, str, str | None]]:
    with Store() as store:
        conv = store.get(store.resolve("last"))
    return [(m.role, m.content, m.finish_reason) for m in conv.messages]


async def test_send_streams_and_saves(home: Path) -> None:
    backend = ScriptedBackend([["The capital", " of France", " is **Paris**."]])
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        # The model's arrival is announced in a toast that names it and its template.
        toasts = [n.message for n in app._notifications]
        assert any(
            "scripted-model on cpu (float32) is ready" in t and "template" in t for t in toasts
        ), toasts
        await send(pilot, "What is the capital of France?")
        screen = await reply_done(pilot)
        views = screen.transcript.views
        assert [v.role for v in views] == ["user", "assistant"]
        assert views[1].text == "The capital of France is **Paris**."
        assert "20.0 tok/s" in str(views[1].query_one(".meta").render())
        assert not screen.prompt.text  # the input was cleared
    assert stored_messages() == [
        ("user", "What is the capital of France?", None),
        ("assistant", "The capital of France is **Paris**.", "stop"),
    ]


async def test_markup_like_text_is_shown_literally(home: Path) -> None:
    nasty = "[bold]not bold[/] [link=https://evil.example]x[/link] [/] \x1b[31mred\x1b]0;t\x07"
    backend = ScriptedBackend([[nasty]])
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "[b]user markup[/b] [/]")
        screen = await reply_done(pilot)
        user, reply = screen.transcript.views
        assert user.text == "[b]user markup[/b] [/]"
        assert "\x1b" not in reply.text
        assert reply.text.startswith("[bold]not bold[/] [link=https://evil.example]x[/link]")
        svg = app.export_screenshot()
        assert "[b]user&#160;markup[/b]" in svg or "[b]user markup[/b]" in svg
        assert "not&#160;bold[/]" in svg or "not bold[/]" in svg


async def test_escape_cancels_and_keeps_the_partial_reply(home: Path) -> None:
    backend = ScriptedBackend([["one", " two", " three", " four"]], pause_after=2)
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "count")
        await wait_for(pilot, backend.paused.is_set)
        await pilot.press("escape")
        screen = await reply_done(pilot)
        reply = screen.transcript.views[-1]
        assert reply.text == "one two"
        assert "stopped" in str(reply.query_one(".meta").render())
    assert stored_messages()[-1] == ("assistant", "one two", "cancelled")


async def test_the_status_bar_counts_a_speculating_reply_live(home: Path) -> None:
    """While a reply is written the status bar shows its drafted and kept tokens so
    far; when it ends, the reply's own counts and its speed-up."""
    backend = ScriptedBackend([["one", " two", " three", " four"]], pause_after=2, drafts=True)
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "count")
        await wait_for(pilot, backend.paused.is_set)
        screen = app.chat
        await wait_for(pilot, lambda: "kept 2/4 drafted (50%)" in status_line(screen))
        backend.gate.set()
        await reply_done(pilot)
        shown = status_line(screen)
        assert "kept 4/8 drafted (50%) · 1.50× unspeculated" in shown
        assert "20.0 tok/s" in shown


async def test_regenerate_and_edit_keep_branches_and_delete_asks(home: Path) -> None:
    backend = ScriptedBackend([["first"], ["second"], ["third"], ["fourth"], ["fifth"]])
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "hello")
        await reply_done(pilot)
        await pilot.press("ctrl+r")
        screen = await reply_done(pilot)
        assert [v.text for v in screen.transcript.views] == ["hello", "second"]
        assert backend.requests[1].turns == (("user", "hello"),)
        assert stored_messages() == [("user", "hello", None), ("assistant", "second", "stop")]
        reply = screen.transcript.views[-1]
        assert "‹ 2/2 ›" in str(reply.query_one(".role").render())  # nothing overwritten

        # the earlier reply is one key away, and the chat goes on from it
        await pilot.press("alt+left")
        await settled(pilot)
        assert [v.text for v in screen.transcript.views] == ["hello", "first"]
        assert "‹ 1/2 ›" in str(screen.transcript.views[-1].query_one(".role").render())
        assert stored_messages()[-1] == ("assistant", "first", "stop")  # remembered
        await send(pilot, "and then?")
        await reply_done(pilot)
        assert backend.requests[2].turns == (
            ("user", "hello"), ("assistant", "first"), ("user", "and then?")
        )  # fmt: skip

        # edit the first message (focused): a new branch from the top
        screen.transcript.views[0].focus()
        await pilot.press("f7")
        assert screen.prompt.text == "hello"
        screen.prompt.set_text("hello again")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(backend.requests) == 4)
        screen = await reply_done(pilot)
        assert [v.text for v in screen.transcript.views] == ["hello again", "fourth"]
        assert backend.requests[3].turns == (("user", "hello again"),)
        assert "‹ 2/2 ›" in str(screen.transcript.views[0].query_one(".role").render())
        assert stored_messages() == [("user", "hello again", None), ("assistant", "fourth", "stop")]
        with Store() as store:
            assert len(store.get(store.resolve("last")).tree) == 7  # every branch kept
        screen.transcript.views[0].focus()
        await pilot.press("alt+left")  # back to the first question: where it was left
        await settled(pilot)
        assert [v.text for v in screen.transcript.views] == ["hello", "first", "and then?", "third"]
        await pilot.press("alt+left")  # there is no branch before the first
        await settled(pilot)
        assert len(screen.transcript.views) == 4

        # deleting a turn says how many messages go, and asks: the focused one's ...
        question = "Delete this turn and every turn after it: 5 message(s), 1 of them"
        await pilot.press("f8")
        await wait_for(pilot, lambda: showing(app, ConfirmScreen))
        assert question in str(shown(app, ConfirmScreen).question)
        await pilot.press("escape")  # no
        await settled(pilot)
        assert len(screen.transcript.views) == 4
        # ... else the last one
        screen.prompt.focus()
        await pilot.press("f8")
        await wait_for(pilot, lambda: showing(app, ConfirmScreen))
        assert str(shown(app, ConfirmScreen).question) == "Delete the last turn: 2 message(s)?"
        await pilot.press("escape")
        await settled(pilot)
        await pilot.press("f8")
        await wait_for(pilot, lambda: showing(app, ConfirmScreen))
        await pilot.press("y")
        await settled(pilot)
        assert [v.text for v in screen.transcript.views] == ["hello", "first"]
        assert screen.session.messages[-1].content == "first"


async def test_settings_file_is_written_once_editing_settles(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[dict[str, object]] = []  # one entry per write of config.toml
    real_set_values = config_mod.set_values

    def recording(values: dict[str, object], path: Path | None = None) -> dict[str, object]:
        writes.append(dict(values))
        return real_set_values(values, path)

    monkeypatch.setattr(config_mod, "set_values", recording)
    app = make_app(lambda load: ScriptedBackend())
    # a pause long enough that no loaded machine types slower than it
    monkeypatch.setattr(app, "SETTINGS_SETTLE", 30.0)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("f3")
        field = screen.query_one("#set-temperature", Input)
        field.focus()
        field.value = ""
        await pilot.press(*"0.3")  # three valid values on the way: 0, 0., 0.3
        await pilot.pause()
        assert screen.session.generation.temperature == 0.3  # applied at once
        assert writes == []  # but config.toml is not rewritten per keystroke
        monkeypatch.setattr(app, "SETTINGS_SETTLE", 0.05)
        await pilot.press("5")  # editing settles: written once, on a worker thread
        await wait_for(pilot, lambda: bool(writes))
        await wait_for(pilot, lambda: not app.workers)
    assert len(writes) == 1 and writes[0]["temperature"] == 0.35  # one write, settled
    assert config_mod.load().values["temperature"] == 0.35


async def test_settings_apply_and_refuse_bad_values(home: Path) -> None:
    backend = ScriptedBackend([["ok"]])
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("f3")
        assert screen.settings.display
        field = screen.query_one("#set-temperature", Input)
        field.value = "0.5"
        await pilot.pause()
        assert screen.session.generation.temperature == 0.5
        field.value = "5"
        await pilot.pause()
        error = str(screen.query_one("#err-temperature").render())
        assert "allowed: a number in [0, 2]" in error
        assert screen.session.generation.temperature == 0.5  # refused at the field
        await send(pilot, "hi")
        await reply_done(pilot)
        assert backend.requests[-1].generation.temperature == 0.5
    assert config_mod.load().values["temperature"] == 0.5  # remembered in config.toml


async def test_load_error_shows_a_dialog_and_gives_the_prompt_back(home: Path) -> None:
    error = ModelNotFoundError("no such file or folder: /models/nope", "pass a model folder")
    backend = ScriptedBackend(load_error=error)
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        screen = app.chat
        await wait_for(pilot, lambda: showing(app, ErrorScreen))
        dialog = app.screen
        assert "no such file or folder: /models/nope" in str(
            dialog.query_one("#error-message").render()
        )
        assert "pass a model folder" in str(dialog.query_one("#error-hint").render())
        await pilot.press("enter")
        await send(pilot, "are you there?")
        await wait_for(pilot, lambda: showing(app, ErrorScreen))
        assert "no model is loaded" in str(app.screen.query_one("#error-message").render())
        await pilot.press("enter")
        await pilot.pause()
        assert screen.prompt.text == "are you there?"  # the prompt went back into the input
        assert screen.transcript.views == []


async def test_reload_keeps_the_conversation(home: Path) -> None:
    made = []

    def factory(load):  # type: ignore[no-untyped-def]
        made.append(load)
        return ScriptedBackend([["reply"]], name=f"model-{load.dtype}")

    app = make_app(factory)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await send(pilot, "hello")
        await reply_done(pilot)
        await pilot.press("f3")
        screen.query_one("#set-dtype", Select).value = "bfloat16"
        screen.query_one("#set-speculate", Select).value = "ngram"
        await pilot.pause()
        button = screen.query_one("#reload")
        assert not button.disabled
        await pilot.click("#reload")
        await wait_for(pilot, lambda: len(made) == 2 and screen.model_ready)
        assert made[1].dtype == "bfloat16"
        assert made[1].speculate == "ngram" and made[1].speculation == "ngram"
        await pilot.pause()
        assert button.disabled  # the pane's settings are now what runs: nothing to reload
        assert screen.session.model_info is not None
        assert screen.session.model_info.name == "model-bfloat16"
        assert [v.text for v in screen.transcript.views] == ["hello", "reply"]
        await send(pilot, "again")
        await reply_done(pilot)
        assert len(screen.session.messages) == 4


async def test_typing_while_the_model_loads_sends_when_ready(home: Path) -> None:
    import threading

    gate = threading.Event()

    class SlowBackend(ScriptedBackend):
        def load(self, progress=None):  # type: ignore[no-untyped-def]
            gate.wait(30)
            return super().load(progress)

    backend = SlowBackend([["hi"]])
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        screen = app.chat
        await send(pilot, "early question")
        assert not screen.model_ready
        assert "waiting for the model" in screen.status.state
        waiting = screen.transcript.views[-1]
        assert str(waiting.query_one(".role", Static).render()) == "Assistant"
        gate.set()
        await reply_done(pilot)
        assert [v.text for v in screen.transcript.views] == ["early question", "hi"]
        assert screen.session.model_info is not None
        name = screen.session.model_info.name
        assert str(waiting.query_one(".role", Static).render()) == f"Assistant · {name}"


async def test_quit_mid_reply_keeps_the_partial_text(home: Path) -> None:
    backend = ScriptedBackend([["partial", " more"]], pause_after=1)
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "go")
        await wait_for(pilot, backend.paused.is_set)
        await wait_for(pilot, lambda: app.chat.transcript.views[-1].text == "partial")
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert stored_messages()[-1] == ("assistant", "partial", "cancelled")


async def test_conversations_pane_lists_filters_and_opens(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store() as store:
        for title in ("Rust lifetimes", "Pasta recipe", "Rust traits"):
            conv = store.create_conversation(title=title)
            store.add_message(conv.id, _msg("user", f"about {title}"))
            store.add_message(conv.id, _msg("assistant", f"answer on {title}"))
        for run, title in (("mt_bench/m", "mt_bench/m · 81"), ("arena", "Rust? · arena A")):
            store.create_conversation(title=title, run=run)
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        options = screen.sidebar.query_one("#chat-list", OptionList)
        titles = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        # newest first; bench answers and arena sides kept apart from people's own chats
        assert titles == [
            "Rust traits",
            "Pasta recipe",
            "Rust lifetimes",
            "and 1 bench answer and 1 arena chat: type to find them",
        ]
        assert options.get_option_at_index(3).disabled
        await pilot.press("ctrl+f")

        def listings_seen() -> int:  # the sidebar's answers from the store: Listings
            return sum(isinstance(m.value, Listing) for m in seen(app, StoreResult))

        listings = listings_seen()
        # a pause long enough that no loaded machine types slower than it
        monkeypatch.setattr(Sidebar, "FILTER_PAUSE", 2.0)
        await pilot.press(*"rust")
        await wait_for(pilot, lambda: listings_seen() > listings)  # the listing
        await settled(pilot)
        assert [str(options.get_option_at_index(i).prompt) for i in range(3)] == [
            "Rust? · arena A",  # a filter finds them too
            "Rust traits",
            "Rust lifetimes",
        ]
        # four keys, one query: the filter runs once typing pauses, on the store's thread
        assert listings_seen() - listings == 1
        options.highlighted = 1
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(screen.transcript.views))
        assert [v.text for v in screen.transcript.views] == [
            "about Rust traits",
            "answer on Rust traits",
        ]


async def test_conversations_pane_counts_and_pages_through_every_chat(home: Path) -> None:
    with Store() as store:
        for n in range(PAGE + 50):
            store.create_conversation(title=f"chat {n:03}")
        store.create_conversation(title="bench answer", run="mt_bench/m")
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        options = screen.sidebar.query_one("#chat-list", OptionList)

        def prompts() -> list[str]:
            return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]

        await wait_for(pilot, lambda: options.option_count > 0)
        title = screen.sidebar.query_one("#chats-title", Static)
        assert str(title.render()) == f"Chats · {PAGE + 50}"  # people's own, not the bench's
        assert prompts()[0] == f"chat {PAGE + 49:03}" and len(prompts()) == PAGE + 2
        assert prompts()[-2:] == [
            "↓ 50 more chats: Enter shows them",
            "and 1 bench answer: type to find them",
        ]
        options.focus()
        await pilot.press("end")  # the keys reach the last line: the next page comes
        await wait_for(pilot, lambda: options.option_count == PAGE + 51)
        assert prompts()[-2:] == ["chat 000", "and 1 bench answer: type to find them"]
        assert options.highlighted is not None
        assert prompts()[options.highlighted] == f"chat {49:03}"  # where the line was

        # a filter starts again at one page, and says how many match
        screen.sidebar.query_one("#chat-filter", Input).value = "chat 1"
        await wait_for(pilot, lambda: str(title.render()) == "Chats · 100 match")
        assert len(prompts()) == 100 and not any(p.startswith("↓") for p in prompts())
        # scrolling to the end (the mouse wheel) brings the next page too
        screen.sidebar.query_one("#chat-filter", Input).value = "chat"
        await wait_for(pilot, lambda: str(title.render()) == f"Chats · {PAGE + 50} match")
        assert prompts()[-1] == "↓ 50 more chats: Enter shows them"
        await pilot.pause()
        options.scroll_end(animate=False)
        await wait_for(pilot, lambda: options.option_count == PAGE + 50)


def _msg(role: str, content: str):  # type: ignore[no-untyped-def]
    from vicuna_tui.store import SavedMessage

    return SavedMessage(role=role, content=content)


async def test_input_keys_history_newline_and_paste(home: Path) -> None:
    backend = ScriptedBackend([["a"], ["b"]])
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await send(pilot, "first prompt")
        await reply_done(pilot)
        screen.prompt.focus()
        await pilot.press("up")
        assert screen.prompt.text == "first prompt"
        await pilot.press("down")
        assert screen.prompt.text == ""
        await pilot.press("x", "ctrl+j", "y")
        assert screen.prompt.text == "x\ny"
        screen.prompt.set_text("")
        app.post_message(events.Paste("line one\n    line two\nline three"))  # as a terminal does
        await pilot.pause()
        assert screen.prompt.text == "line one\n    line two\nline three"


async def test_copy_reply_and_code_block(home: Path) -> None:
    reply = "Here:\n\n```python\nprint('hi')\n```\n"
    app = make_app(lambda load: ScriptedBackend([[reply]]))
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "code please")
        await reply_done(pilot)
        await pilot.press("ctrl+y")
        assert app.clipboard == reply
        await pilot.press("ctrl+o")
        assert app.clipboard == "print('hi')\n"


async def test_help_and_command_palette(home: Path) -> None:
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        cells = [str(s.render()) for s in app.screen.query("#help-keys Static")]
        keys, what = cells[0::2], cells[1::2]
        for words in ("Regenerate the last reply", "Copy a code block", "Move focus on"):
            assert any(words in w for w in what), what
        for key in ("Ctrl+R", "Ctrl+Q", "F1 or ?", "Ctrl+Del or F12", "Alt+←"):
            assert key in keys, keys
        assert not any("_" in k or k[:1] == "f" for k in keys), keys  # no question_mark, f12
        # A wrapped description stays in its column, right of every key.
        key_x = {s.region.x for s in app.screen.query("#help-keys .help-key")}
        what_x = {s.region.x for s in app.screen.query("#help-keys .help-what")}
        assert len(key_x) == 1 and len(what_x) == 1 and min(what_x) > max(key_x)
        await pilot.press("escape")
        palette = list(app.get_system_commands(app.chat))
        helps = [c.help for c in palette]
        assert "Key: F8" in helps and "Key: Ctrl+O" in helps
        assert not any("delete_turn" in h or "(f8)" in h for h in helps), helps
        commands = [c.title for c in palette]
        for title in (
            "Regenerate the last reply",
            "Stop the reply (keeps it)",
            "New chat",
            "Copy a code block",
            "Settings",
            "Edit and resend the last message",
        ):
            assert title in commands


@pytest.mark.parametrize("theme", ["dracula"])
async def test_theme_is_remembered(home: Path, theme: str) -> None:
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        app.theme = theme
        await pilot.pause()
    assert config_mod.load().values["theme"] == theme
    app2 = make_app(lambda load: ScriptedBackend())
    async with app2.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app2.theme == theme


async def test_message_views_are_literal_content(home: Path) -> None:
    app = make_app(lambda load: ScriptedBackend([["fine"]]))
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "中文 and emoji 😀 in a very long line " * 5)
        screen = await reply_done(pilot)
        user = screen.transcript.views[0]
        assert isinstance(user, MessageView)
        assert user.text.startswith("中文 and emoji 😀")
        assert user.region.width <= screen.transcript.region.width  # layout intact


async def test_bad_model_path_typed_in_settings_keeps_the_current_model(home: Path) -> None:
    from vicuna_tui.engine.transformers.backend import LocalBackend

    first = ScriptedBackend([["still here"]])

    def factory(load):  # type: ignore[no-untyped-def]
        return first if load.model_path is None else LocalBackend(load)

    app = make_app(factory)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("f3")
        screen.query_one("#set-model_path", Input).value = "/no/such/model"
        await pilot.pause()
        await pilot.click("#reload")
        await wait_for(pilot, lambda: showing(app, ErrorScreen))
        dialog = app.screen
        assert "still using scripted-model" in str(dialog.query_one(".dialog-title").render())
        assert "no such file or folder: /no/such/model" in str(
            dialog.query_one("#error-message").render()
        )
        await pilot.press("enter")
        assert screen.model_ready
        assert screen.session.load.model_path is None
        await send(pilot, "hello?")
        await reply_done(pilot)
        assert screen.transcript.views[-1].text == "still here"


async def test_rename_delete_and_export_from_the_tui(home: Path, tmp_path: Path) -> None:
    from textual.widgets import Input as TextInput

    from vicuna_tui.tui.screens.dialogs import ConfirmScreen, TextInputScreen

    app = make_app(lambda load: ScriptedBackend([["an answer"]]))
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await send(pilot, "a question")
        await reply_done(pilot)
        conv_id = screen.session.conversation.id  # type: ignore[union-attr]

        await pilot.press("f2")
        await wait_for(pilot, lambda: showing(app, TextInputScreen))
        app.screen.query_one(TextInput).value = "Renamed chat"
        await pilot.press("enter")
        await pilot.pause()
        with Store() as store:
            assert store.get(conv_id).title == "Renamed chat"

        target = tmp_path / "out.md"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: showing(app, TextInputScreen))
        app.screen.query_one(TextInput).value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, target.exists)
        assert target.read_text().startswith("# Renamed chat")
        assert oct(target.stat().st_mode & 0o777) == "0o600"

        await pilot.press("f12")
        await wait_for(pilot, lambda: showing(app, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.session.conversation is None)
        with Store() as store:
            assert store.listing.conversations() == []
        assert screen.transcript.views == []


async def test_replies_are_labelled_with_the_model_that_wrote_them(home: Path) -> None:
    """A stored reply shows its own model; an imported chat with none says so, and
    neither takes the name of the model loaded now (scripted-model)."""
    from vicuna_tui.store import SavedMessage

    with Store() as store:
        imported = store.create_conversation(title="Imported")
        store.add_message(imported.id, _msg("user", "hello"))
        store.add_message(imported.id, _msg("assistant", "hi"))
        mixed = store.create_conversation(title="Mixed", model_name="chat-model")
        store.add_message(mixed.id, _msg("user", "q1"))
        store.add_message(mixed.id, SavedMessage(role="assistant", content="a1", model="vicuna-7b"))
        store.add_message(mixed.id, _msg("user", "q2"))
        store.add_message(mixed.id, _msg("assistant", "a2"))
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await screen.chats.open(imported.id)
        await pilot.pause()
        assert [v.label for v in screen.transcript.views] == ["You", "Assistant · unknown model"]
        await screen.chats.open(mixed.id)
        await pilot.pause()
        labels = [v.label for v in screen.transcript.views]
        assert labels == ["You", "Assistant · vicuna-7b", "You", "Assistant · chat-model"]


async def test_a_dialog_dismissed_before_it_mounts_does_not_crash(home: Path) -> None:
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        dialog = ErrorScreen("title", "message", "hint")
        dialog.on_mount()  # mounted with no buttons yet (as when dismissed first): no error
        app.push_screen(dialog)
        await wait_for(pilot, lambda: showing(app, ErrorScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ErrorScreen))


async def test_keys_typed_right_after_the_search_key_go_to_the_filter(home: Path) -> None:
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        # a burst, as a terminal delivers fast typing: no pause between the keys
        for key, char in (("ctrl+f", None), ("g", "g"), ("e", "e")):
            app.post_message(events.Key(key, char))
        await settled(pilot)
        assert screen.sidebar.filter_text == "ge"
        assert screen.prompt.text == ""


def test_progress_text_names_the_stage_and_never_shows_a_bar_for_one_step() -> None:
    from vicuna_tui.tui.widgets.status import progress_text

    assert progress_text("loading", 0, 0) == "loading the model…"
    assert progress_text("importing torch", 0, 1) == "importing torch…"
    assert progress_text("loading weights", 1, 4) == "loading weights 1/4 ▕███░░░░░░░░░▏ 25%"
    assert progress_text("loading weights", 9, 4).endswith("▕████████████▏ 100%")


def test_the_status_line_cuts_the_facts_and_keeps_what_changes_whole() -> None:
    from vicuna_tui.tui.widgets.status import status_line

    assert status_line("model · llama.cpp · Q4_1", "writing…", 24) == "model · llama…  writing…"
    assert status_line("facts", "live", 20) == "facts" + " " * 11 + "live"
    assert status_line("facts", "", 20) == "facts"
    assert status_line("facts", "a very long notice", 12) == "a very long notice"


async def test_load_progress_is_shown_whole_in_the_status_line(home: Path) -> None:
    import threading

    release = threading.Event()

    class Slow(ScriptedBackend):
        def load(self, progress: Any = None) -> ModelInfo:
            assert callable(progress)
            progress("loading weights", 1, 3)
            release.wait(30)
            return super().load(progress)

    app = make_app(lambda load: Slow())
    async with run_test(app, size=SIZE) as pilot:
        screen = app.screen
        expected = "loading weights 1/3 ▕████░░░░░░░░▏ 33%"
        try:
            await wait_for(pilot, lambda: expected in status_line(screen))
            # the whole line fits: nothing of it is cut at the right edge
            drawn = str(screen.query_one("#status-text").render())
            assert drawn.rstrip().endswith(expected)  # whole, at the right end
            assert "loading: " not in status_line(screen)
        finally:
            release.set()
        await ready(pilot)
        assert "loading weights" not in status_line(screen)


def status_line(screen: object) -> str:
    from vicuna_tui.tui.widgets.status import StatusBar

    bar = screen.query_one(StatusBar)  # type: ignore[attr-defined]
    return str(bar.text)


async def test_the_settings_fields_are_built_when_first_shown_from_what_the_pane_was_told(
    home: Path,
) -> None:
    import dataclasses

    from vicuna_tui.engine.settings import GenerationSettings

    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        pane = screen.settings
        assert not pane.built and not pane.display  # the first frame did not pay for it
        told = dataclasses.replace(GenerationSettings(), temperature=0.25)
        pane.set_generation(told, "chatml", "Be brief.")
        await pilot.press("f3")
        assert pane.built and pane.display
        assert screen.query_one("#set-temperature", Input).value == "0.25"
        assert screen.query_one("#set-system_message", Input).value == "Be brief."
        assert screen.query_one("#set-template", Select).value == "chatml"
        assert isinstance(screen.focused, Input) and screen.focused in pane.query(Input)
        assert screen.query_one("#reload").disabled  # nothing edited


async def test_a_regenerated_reply_shows_its_branch_number_while_it_streams(home: Path) -> None:
    backend = ScriptedBackend([["first"], ["sec", "ond", " reply"]])
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await send(pilot, "hello")
        await reply_done(pilot)
        backend.pause_after = 1
        await pilot.press("ctrl+r")
        await wait_for(pilot, backend.paused.is_set)
        streaming = screen.transcript.views[-1]
        assert "streaming" in streaming.classes
        assert "‹ 2/2 ›" in str(streaming.query_one(".role").render())
        backend.gate.set()
        await reply_done(pilot)
        assert "‹ 2/2 ›" in str(screen.transcript.views[-1].query_one(".role").render())


async def test_quit_over_an_unsent_draft_asks_first(home: Path) -> None:
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        screen.prompt.insert("a long question I have not sent")
        await pilot.press("ctrl+q")
        await settled(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen) and "unsent message" in dialog.question
        await pilot.press("escape")  # back to the draft, nothing lost
        await settled(pilot)
        assert app.screen is not dialog and app.is_running
        assert screen.prompt.text == "a long question I have not sent"
        await pilot.press("ctrl+q")
        await settled(pilot)
        await pilot.press("ctrl+q")  # again: quits
        await pilot.pause()
        assert app._exit  # the app is ending, by its own quit
    assert app.return_code == 0


async def test_quit_with_an_empty_input_does_not_ask(home: Path) -> None:
    app = make_app(lambda load: ScriptedBackend())
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app._exit and not isinstance(app.screen, ConfirmScreen)
    assert app.return_code == 0


async def test_a_worker_that_fails_is_shown_and_the_app_goes_on(
    home: Path, monkeypatch: pytest.MonkeyPatch, smollm_gguf: Path
) -> None:
    """The arena's memory check runs on a worker thread: an unforeseen failure there
    is one toast naming what failed, and the chat goes on (it used to end the app)."""
    from vicuna_tui.tui import app as app_mod
    from vicuna_tui.tui.screens.arena_setup import ArenaChoice

    def broken(loads: Any) -> Any:
        raise RuntimeError("the disk vanished")

    monkeypatch.setattr(app_mod, "check_fit", broken)
    backend = ScriptedBackend([["Still", " here."]])
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        await ready(pilot)
        app._arena_chosen(ArenaChoice(str(smollm_gguf), str(smollm_gguf), blind=True))

        def shown() -> list[str]:
            return [str(n.message) for n in app._notifications if "Failed while" in str(n.message)]

        await wait_for(pilot, lambda: bool(shown()))
        assert shown() == [
            "Failed while checking that the arena's models fit: RuntimeError: the disk vanished"
        ]
        assert app.is_running
        await send(pilot, "Are you there?")
        screen = await reply_done(pilot)
        assert screen.transcript.views[-1].text == "Still here."


class FailsOnRegenerate(ScriptedBackend):
    """Answers the first message; the second ask (a regenerate) fails at once."""

    def generate(self, request: Any, cancel: Any) -> Any:
        if self.requests:
            from vicuna_tui.errors import GenerationError

            self.requests.append(request)
            raise GenerationError("the model ran out of memory", "try a smaller context")
        return super().generate(request, cancel)


async def test_a_failed_regenerate_keeps_the_reply_it_was_to_replace(home: Path) -> None:
    """A failure with nothing written takes back only what it added: the old reply is
    shown again and stays saved (it used to go with its message)."""
    backend = FailsOnRegenerate([["Llamas hum."]])
    app = make_app(lambda load: backend)
    async with run_test(app, size=(100, 30)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "Tell me about llamas.")
        await reply_done(pilot)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: showing(app, ErrorScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not showing(app, ErrorScreen))
        await settled(pilot)
        texts = [view.text for view in screen.transcript.views]
        assert texts == ["Tell me about llamas.", "Llamas hum."]
        assert screen.prompt.text == ""  # nothing handed back: the message stays
    with Store() as store:
        conv = store.get(store.resolve("last"))
    assert [m.content for m in conv.messages] == ["Tell me about llamas.", "Llamas hum."]
