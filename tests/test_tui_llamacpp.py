"""The TUI on its default backend for a GGUF: llama.cpp, in the model's own process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import Input, Select, Static
from tui_helpers import (
    count_deltas,
    make_app,
    ready,
    reply_done,
    run_test,
    send,
    showing,
    shown,
    wait_for,
)

from vicuna_tui.engine.process import ProcessBackend
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.store import Store
from vicuna_tui.tui.widgets.transcript import MessageView

pytestmark = pytest.mark.real_model
QUESTION = "Which city is the capital of France?"


def status_text(screen: object) -> str:
    return screen.status.text  # type: ignore[attr-defined,no-any-return]


async def test_chat_on_llamacpp_then_switch_to_transformers(
    home: Path, smollm_gguf: Path, smollm_dir: Path
) -> None:
    app = make_app(
        lambda load: ProcessBackend(load),
        load=LoadSettings(model_path=str(smollm_gguf), device="cpu"),
        max_new_tokens=40,
    )
    async with run_test(app, size=(120, 40)) as pilot:
        screen = await ready(pilot)
        welcome = str(screen.query_one("#welcome", Static).render())
        assert "on llama.cpp (Q4_1" in welcome and "Enter" in welcome and "F1" in welcome
        status = status_text(screen)
        assert "llama.cpp" in status and "Q4_1" in status and "ctx 4096" in status
        assert app.engine.backend.pid != os.getpid()  # type: ignore[union-attr]

        deltas = count_deltas(app)
        await send(pilot, QUESTION)
        await reply_done(pilot)
        assert not screen.query_one("#welcome").display
        reply = screen.transcript.views[-1]
        assert "Paris" in reply.text and sum(deltas) > 3  # streamed token by token
        assert "tok/s" in status_text(screen)

        # Switch what runs the model: a reload in the background; the chat stays.
        await pilot.press("f3")
        screen.query_one("#set-engine", Select).value = "transformers"
        screen.query_one("#set-model_path", Input).value = str(smollm_dir)
        await wait_for(pilot, lambda: not screen.query_one("#reload").disabled)
        await pilot.click("#reload")
        await wait_for(pilot, lambda: screen.model_ready and "llama.cpp" not in status_text(screen))
        assert screen.session.model_info is not None
        assert screen.session.model_info.engine == "transformers"
        await send(pilot, "And of Italy?")
        await reply_done(pilot)
        assert "Rome" in screen.transcript.views[-1].text
        assert len(screen.transcript.views) == 4

    with Store() as store:
        conv = store.get(store.resolve("last"))
    assert [m.backend for m in conv.messages if m.role == "assistant"] == [
        "llamacpp",
        "transformers",
    ]


async def test_a_hub_repo_of_several_ggufs_asks_which_one(
    home: Path, smollm_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.tui.screens.dialogs import PickScreen

    cache = tmp_path / "hf"
    repo = cache / "models--someone--smol-GGUF"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in ("smol.Q4_1.gguf", "smol.Q8_0.gguf"):
        (repo / "snapshots" / commit / name).symlink_to(smollm_gguf)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    app = make_app(
        lambda load: LlamaCppBackend(load),
        load=LoadSettings(model_path="someone/smol-GGUF", device="cpu"),
        max_new_tokens=30,
    )
    async with run_test(app, size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: showing(app, PickScreen))
        picker = shown(app, PickScreen)
        assert "someone/smol-GGUF holds several GGUFs" in picker.title_text
        assert picker.items == ["smol.Q4_1.gguf", "smol.Q8_0.gguf"]
        await pilot.press("enter")  # the first one
        screen = await ready(pilot)
        assert screen.session.load.gguf_file == "smol.Q4_1.gguf"
        await send(pilot, QUESTION)
        await reply_done(pilot)
        assert "Paris" in screen.transcript.views[-1].text


async def test_a_crash_of_the_llamacpp_process_is_explained_and_reload_retries(
    home: Path, smollm_gguf: Path
) -> None:
    import signal

    from vicuna_tui.tui.screens.dialogs import ErrorScreen

    app = make_app(
        lambda load: ProcessBackend(load),
        load=LoadSettings(model_path=str(smollm_gguf), device="cpu"),
        max_new_tokens=8,
    )
    async with run_test(app, size=(120, 40)) as pilot:
        screen = await ready(pilot)
        first = app.engine.backend.pid  # type: ignore[union-attr]
        os.kill(first, signal.SIGKILL)
        await send(pilot, QUESTION)
        await wait_for(pilot, lambda: showing(app, ErrorScreen))
        assert "the model's process stopped" in str(app.screen.query_one("#error-message").render())
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.prompt.text == QUESTION)
        await pilot.press("f3")
        await wait_for(pilot, lambda: not screen.query_one("#reload").disabled)
        await pilot.click("#reload")
        await wait_for(pilot, lambda: screen.model_ready)
        assert app.engine.backend.pid not in (None, first)  # type: ignore[union-attr]
        screen.prompt.set_text("")
        await send(pilot, QUESTION)
        await reply_done(pilot)
        assert "capital" in screen.transcript.views[-1].text


async def test_the_context_meter_and_prompt_view_follow_the_branch_shown(
    home: Path, smollm_gguf: Path
) -> None:
    from textual.widgets import TextArea

    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.tui.screens.dialogs import PromptViewScreen

    app = make_app(
        lambda load: LlamaCppBackend(load),
        load=LoadSettings(model_path=str(smollm_gguf), device="cpu"),
        max_new_tokens=24,
        temperature=0,
    )
    async with run_test(app, size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, QUESTION)
        await reply_done(pilot)
        await send(pilot, "And of Italy?")
        await reply_done(pilot)
        long_reply = screen.session.messages[-1]
        assert long_reply.prompt_tokens is not None and long_reply.new_tokens
        long_context = long_reply.prompt_tokens + long_reply.new_tokens
        assert f"ctx {long_context}/" in status_text(screen)

        # a new branch from the first question: one short turn
        screen.transcript.views[0].focus()
        await pilot.press("f7")
        screen.prompt.set_text("Which city is the capital of Germany?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(screen.session.messages) == 2)
        await reply_done(pilot)
        short_reply = screen.session.messages[-1]
        assert short_reply.prompt_tokens is not None
        short_context = short_reply.prompt_tokens + (short_reply.new_tokens or 0)
        assert short_context < long_context
        assert f"ctx {short_context}/" in status_text(screen)

        async def switch_and_read_prompt(key: str, views: int) -> str:
            screen.transcript.views[0].focus()
            await pilot.press(key)
            await wait_for(pilot, lambda: len(screen.transcript.views) == views)
            screen.prompt.focus()
            await pilot.press("f4")
            await wait_for(pilot, lambda: showing(app, PromptViewScreen))
            text = shown(app, PromptViewScreen).query_one("#prompt-text", TextArea).text
            await pilot.press("escape")
            return text

        # back to the first branch: the meter and the next prompt are that branch's
        prompt = await switch_and_read_prompt("alt+left", 4)
        assert f"ctx {long_context}/" in status_text(screen)
        assert "And of Italy?" in prompt and "Germany" not in prompt
        # and on the other branch, the other way round
        prompt = await switch_and_read_prompt("alt+right", 2)
        assert f"ctx {short_context}/" in status_text(screen)
        assert "Germany" in prompt and "Italy" not in prompt


async def test_a_long_prompt_shows_how_far_its_reading_got_and_esc_stops_it(
    home: Path, smollm_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(
        lambda load: ProcessBackend(load),
        load=LoadSettings(model_path=str(smollm_gguf), device="cpu"),
        max_new_tokens=12,
    )
    notes = " ".join(f"note {i}: the llama number {i} eats grass." for i in range(45))
    async with run_test(app, size=(120, 40)) as pilot:
        screen = await ready(pilot)
        states: list[str] = []  # what a reply's line under it said, in turn
        set_meta = MessageView.set_meta

        def record(view: MessageView, text: str) -> None:
            states.append(text)
            set_meta(view, text)

        monkeypatch.setattr(MessageView, "set_meta", record)
        await send(pilot, f"{notes}\nWhat do the llamas eat?")
        await reply_done(pilot)
        reading = [s for s in states if s.startswith("reading the chat, tokens ")]
        assert len(reading) >= 2, states  # read 256 tokens at a time
        first = reading[0]
        total = int(first.split("/")[1].split()[0])
        assert total > 512 and first.endswith("% · Esc stops") and "▕" in first
        assert [int(s.split("/")[0].split()[-1]) for s in reading] == sorted(
            int(s.split("/")[0].split()[-1]) for s in reading
        )  # tokens read, going up
        assert "grass" in screen.transcript.views[-1].text
        assert "tok/s" in status_text(screen) and "reading" not in status_text(screen)
        assert "reading" not in str(screen.transcript.views[-1].query_one(".meta", Static).render())

        # Esc while it reads: stopped at the next chunk, before any token
        states.clear()
        await send(pilot, f"{notes} Once more: what do the llamas eat?")
        await wait_for(pilot, lambda: any(s.startswith("reading the chat") for s in states))
        await pilot.press("escape")
        await reply_done(pilot)
        reply = screen.transcript.views[-1]
        assert reply.text == "" and "stopped" in str(reply.query_one(".meta", Static).render())


async def test_a_quantized_kv_cache_answers_and_the_status_bar_says_so(
    home: Path, smollm_gguf: Path
) -> None:
    app = make_app(
        lambda load: ProcessBackend(load),
        load=LoadSettings(
            model_path=str(smollm_gguf), device="cpu", kv_type="q8_0", prompt_cache_mib=16
        ),
        max_new_tokens=12,
    )
    async with run_test(app, size=(160, 40)) as pilot:
        screen = await ready(pilot)
        status = status_text(screen)
        assert "KV q8_0" in status and "prompt cache 0/16 MiB" in status
        await send(pilot, QUESTION)
        await reply_done(pilot)
        assert screen.transcript.views[-1].text.strip()  # it answers
        status = status_text(screen)
        assert "KV q8_0" in status and "tok/s" in status and "/16 MiB" in status


async def test_the_status_bar_says_before_sending_how_many_old_turns_will_drop(
    home: Path, smollm_gguf: Path
) -> None:
    """A small context: typing a long message near its end shows "sending drops N old
    turns" (the engine's own preview), and sending drops exactly that many."""
    app = make_app(
        lambda load: ProcessBackend(load),
        load=LoadSettings(model_path=str(smollm_gguf), device="cpu", context=256),
        max_new_tokens=30,
    )
    async with run_test(app, size=(200, 40)) as pilot:
        screen = await ready(pilot)
        for question in ("Name a colour.", "Name a fruit."):
            await send(pilot, question)
            await reply_done(pilot)
        assert "sending drops" not in status_text(screen)
        screen.prompt.set_text("Tell me about " + "the sea and the sky, " * 20)
        await wait_for(pilot, lambda: "sending drops" in status_text(screen))
        forecast = screen.forecast.dropped
        assert forecast >= 1
        await pilot.press("enter")
        await reply_done(pilot)
        turns = "turn(s)"
        assert f"⚠ {forecast} old {turns} dropped to fit the context" in status_text(screen)
