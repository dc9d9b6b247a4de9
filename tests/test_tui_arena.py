"""The arena screen with two scripted backends: the blind order, votes and their rules,
the leaderboard on known votes, Esc on both, a side that does not load, a side whose
process dies mid-reply, and one model at a time."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ScriptedBackend
from textual.widgets import Button, DataTable, Static
from tui_helpers import run_test, showing, wait_for

from vicuna_tui import config as config_mod
from vicuna_tui import runtime
from vicuna_tui.arena.ratings import Vote, leaderboard
from vicuna_tui.arena.results import table_rows
from vicuna_tui.engine.events import ChatRequest, EngineEvent, ReplyDelta, ReplyStarted
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.errors import ModelNotFoundError, ModelProcessLost
from vicuna_tui.store import Battle, Store
from vicuna_tui.tui.arena.screen import ArenaScreen
from vicuna_tui.tui.arena_app import ArenaApp
from vicuna_tui.tui.screens.arena_results import ArenaResultsScreen


def resolved(name: str) -> runtime.Resolved:
    return runtime.Resolved(
        load=LoadSettings(model_path=name),
        generation=GenerationSettings(temperature=0.0, max_new_tokens=16),
        template="auto",
        system_message=None,
        remote=None,
        config=config_mod.load(),
    )


def arena_app(backends: dict[str, Any], *, save: bool = True, **options: Any) -> ArenaApp:
    names = list(backends)
    return ArenaApp(
        [resolved(n) for n in names],
        Store() if save else None,
        factory=lambda r: backends[str(r.load.model_path)],
        **options,
    )


def screen_of(app: ArenaApp) -> ArenaScreen:
    return app.arena


def toasts(app: ArenaApp) -> list[str]:
    return [n.message for n in app._notifications]


async def settled(pilot: Any) -> None:
    calls = pilot.app.store_calls
    if calls is not None:
        await wait_for(pilot, lambda: calls.idle)
    await pilot.pause()


async def both_ready(pilot: Any) -> ArenaScreen:
    screen = screen_of(pilot.app)
    await wait_for(pilot, lambda: all(s.state in ("ready", "failed") for s in screen.sides))
    return screen


async def ask(pilot: Any, text: str) -> ArenaScreen:
    screen = screen_of(pilot.app)
    before = (screen.battles, screen.battle.turns)
    screen.prompt.set_text(text)
    await pilot.press("enter")
    await wait_for(pilot, lambda: (screen.battles, screen.battle.turns) != before)
    await wait_for(pilot, lambda: not any(s.stream.active for s in screen.sides))
    await settled(pilot)
    return screen


def metas(screen: ArenaScreen, letter: str) -> list[str]:
    return [str(v.query_one(".meta").render()) for v in screen.pane(letter).transcript.views]


def texts(screen: ArenaScreen, letter: str) -> list[str]:
    return [v.text for v in screen.pane(letter).transcript.views]


async def test_a_blind_battle_votes_then_names_and_saves(home: Path) -> None:
    backends = {
        "one": ScriptedBackend([["I am", " one."], ["One again."]], name="one"),
        "two": ScriptedBackend([["I am", " two."], ["Two again."]], name="two"),
    }
    app = arena_app(backends, swapped=True)  # Model A is the second model given
    async with run_test(app, size=(120, 36)) as pilot:
        screen = await both_ready(pilot)
        assert screen.pane("A").title_text() == "Model A"
        assert "two" not in screen.pane("A").status_text()  # nothing gives it away
        assert all(b.disabled for b in screen.query(Button))  # nothing to vote on yet
        await ask(pilot, "Who are you?")
        assert texts(screen, "A") == ["Who are you?", "I am two."]
        assert texts(screen, "B") == ["Who are you?", "I am one."]
        assert screen.pane("A").title_text() == "Model A"  # still hidden
        assert metas(screen, "A") == ["", "2 tokens"]  # no speeds: they would tell

        await pilot.press("b")
        await wait_for(pilot, lambda: "20.0 tok/s" in metas(screen, "A")[-1])
        assert screen.pane("A").title_text() == "Model A · two (transformers float32)"
        assert any("Voted: B is better" in t for t in toasts(app))
        # said on a line of its own under the head, not in a toast over B's title
        notice = screen.query_one("#arena-notice", Static)
        assert notice.display and str(notice.render()).startswith("Voted: B is better.")
        assert notice.region.y < screen.pane("B").region.y
        await pilot.click("#vote-tie")  # changed, by its button
        assert screen.battle.vote == "tie"
        assert screen.query_one("#vote-tie", Button).variant == "primary"

        await ask(pilot, "Again?")
        assert texts(screen, "A")[-1] == "Two again."
        await pilot.press("alt+a")  # after the next prompt the vote is final
        assert screen.battle.vote == "tie"
        assert any("vote is final" in t for t in toasts(app))
        await settled(pilot)
        first = screen.battle.id

        await pilot.press("ctrl+n")
        assert texts(screen, "A") == [] and screen.battles == 2
        assert screen.pane("A").title_text() == "Model A"
        await settled(pilot)

    with Store() as store:
        [battle] = store.battles.all()
        assert (battle.id, battle.model_a, battle.vote, battle.turns, battle.swapped) == (
            first,
            "two (transformers float32)",
            "tie",
            2,
            True,
        )
        assert battle.model_b == "one (transformers float32)" and battle.blind
        left = store.get(battle.conversation_a or "")
        assert left.run == "arena"
        assert [m.content for m in left.messages] == [
            "Who are you?",
            "I am two.",
            "Again?",
            "Two again.",
        ]
        assert store.get(battle.conversation_b or "").messages[1].content == "I am one."
    # the second battle had no prompt: nothing of it was saved
    assert backends["one"].requests[1].turns[-1] == ("user", "Again?")
    assert len(backends["one"].requests[1].turns) == 3  # its own history


async def test_the_leaderboard_shows_known_votes(home: Path) -> None:
    known = [Vote("x", "y", "a")] * 3 + [Vote("y", "x", "a"), Vote("x", "y", "bothbad")]
    with Store() as store:
        for n, vote in enumerate(known):
            store.battles.save(Battle(f"b{n}", vote.model_a, vote.model_b, vote=vote.vote))
        store.battles.save(Battle("unvoted", "x", "z"))  # not counted
    app = arena_app({"one": ScriptedBackend(name="one"), "two": ScriptedBackend(name="two")})
    async with run_test(app, size=(120, 36)) as pilot:
        await both_ready(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: showing(app, ArenaResultsScreen))
        results = app.screen
        assert isinstance(results, ArenaResultsScreen)
        await wait_for(pilot, lambda: bool(results.rows))
        table = results.query_one(DataTable)
        cells = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        assert cells == table_rows(leaderboard(known))
        # p = (3 wins + 1 tie / 2 + 1 / 2) / (5 + 1) = 2/3: x is 400·log10(2) / 2 above 1000
        assert cells[0][1:3] == ("x", "1060") and cells[0][5:8] == ("3", "1", "1")
        summary = str(results.query_one("#arena-results-summary").render())
        assert summary.startswith("2 models · 5 blind voted battles counted.")
        assert "its rating gap shows about 83% of what the votes alone say" in summary


async def test_esc_stops_both_replies(home: Path) -> None:
    backends = {
        "one": ScriptedBackend([["a", "b", "c", "d"]], pause_after=1, name="one"),
        "two": ScriptedBackend([["w", "x", "y", "z"]], pause_after=2, name="two"),
    }
    app = arena_app(backends, swapped=False)
    async with run_test(app, size=(120, 36)) as pilot:
        screen = await both_ready(pilot)
        screen.prompt.set_text("go")
        await pilot.press("enter")
        await wait_for(pilot, lambda: all(b.paused.is_set() for b in backends.values()))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not any(s.stream.active for s in screen.sides))
        assert [screen.battle.sessions[i].messages[-1].finish_reason for i in (0, 1)] == [
            "cancelled",
            "cancelled",
        ]
        assert texts(screen, "A")[-1] == "a" and texts(screen, "B")[-1] == "wx"
        assert screen.pane("A").status_text() == "stopped"


async def test_a_side_that_does_not_load_leaves_the_other_usable(home: Path) -> None:
    broken = ScriptedBackend(
        name="two", load_error=ModelNotFoundError("no model at /nowhere", "check the path")
    )
    app = arena_app(
        {"one": ScriptedBackend([["Still here."]], name="one"), "two": broken}, swapped=False
    )
    async with run_test(app, size=(120, 36)) as pilot:
        screen = await both_ready(pilot)
        assert "did not load: no model at /nowhere" in screen.pane("B").status_text()
        card = screen.pane("B").transcript.welcome_text()  # why, not "both models answer"
        assert "Model B did not load: no model at /nowhere" in card and "check the path" in card
        assert "both models answer" not in card
        assert "both models answer" in screen.pane("A").transcript.welcome_text()
        assert any(
            "Model B did not load" in t and "other side stays usable" in t for t in toasts(app)
        )
        await ask(pilot, "Anyone?")
        assert texts(screen, "A") == ["Anyone?", "Still here."]
        assert texts(screen, "B") == []
        await pilot.press("alt+a")
        assert screen.battle.vote is None
        assert any("needs both models" in t for t in toasts(app))

        broken.load_error = None  # fixed: a new battle tries the side again
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: screen.sides[1].state == "ready")
        assert "did not load" not in screen.pane("B").transcript.welcome_text()
        await ask(pilot, "Both now?")
        assert texts(screen, "B") == ["Both now?", "Hello there."]


class DiesMidReply(ScriptedBackend):
    """Writes two words, then its process is gone."""

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[EngineEvent]:
        yield ReplyStarted(request.request_id, 5, 0, 0, 16, 1)
        yield ReplyDelta(request.request_id, "Half a")
        raise ModelProcessLost("the model's process stopped (killed by signal 9)", "reload it")


async def test_a_side_whose_process_dies_shows_it_and_the_other_finishes(home: Path) -> None:
    backends = {
        "one": DiesMidReply(name="one"),
        "two": ScriptedBackend([["All", " of it."]], name="two"),
    }
    app = arena_app(backends, swapped=False)
    async with run_test(app, size=(120, 36)) as pilot:
        screen = await both_ready(pilot)
        await ask(pilot, "Talk.")
        assert texts(screen, "B") == ["Talk.", "All of it."]
        assert texts(screen, "A") == ["Talk.", "Half a"]
        assert "killed by signal 9" in screen.pane("A").status_text()
        assert screen.sides[0].state == "failed"
        partial = screen.battle.sessions[0].messages[-1]
        assert (partial.content, partial.finish_reason) == ("Half a", "error")


class Logged(ScriptedBackend):
    def __init__(self, log: list[str], name: str) -> None:
        super().__init__([[f"{name} says hi"]], name=name)
        self.log = log

    def load(self, progress: Any = None) -> Any:
        self.log.append(f"load {self.name}")
        return super().load(progress)

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[EngineEvent]:
        self.log.append(f"answer {self.name}")
        yield from super().generate(request, cancel)

    def unload(self) -> None:
        self.log.append(f"unload {self.name}")


async def test_one_at_a_time_loads_each_side_for_its_turn(home: Path) -> None:
    log: list[str] = []
    app = arena_app(
        {"one": Logged(log, "one"), "two": Logged(log, "two")}, one_at_a_time=True, swapped=False
    )
    async with run_test(app, size=(120, 36)) as pilot:
        screen = screen_of(app)
        await pilot.pause()
        assert log == []  # nothing loads before the first prompt
        await ask(pilot, "Hi")
        await wait_for(pilot, lambda: log.count("unload two") == 1)
        assert texts(screen, "A")[-1] == "one says hi" and texts(screen, "B")[-1] == "two says hi"
    assert log[:6] == [
        "load one",
        "answer one",
        "unload one",
        "load two",
        "answer two",
        "unload two",
    ]


async def test_two_identical_models_are_allowed_with_a_warning(home: Path) -> None:
    same = ScriptedBackend(name="same")
    app = ArenaApp([resolved("same"), resolved("same")], None, factory=lambda r: same)
    async with run_test(app, size=(120, 36)) as pilot:
        await both_ready(pilot)
        await wait_for(pilot, lambda: any("same model" in t for t in toasts(app)))


@pytest.mark.parametrize(
    ("store", "reason", "shown"),
    [
        (True, None, None),
        (False, None, "NOT SAVING (--no-save)"),
        (False, "cannot write \x1b[2J[red]/data", "NOT SAVING (cannot write [2J[red]/data)"),
    ],
)
async def test_the_head_says_when_battles_are_not_saved(
    home: Path, store: bool, reason: str | None, shown: str | None
) -> None:
    app = arena_app(
        {"one": ScriptedBackend(name="one"), "two": ScriptedBackend(name="two")},
        save=store,
        not_saving=reason,
    )
    async with run_test(app, size=(160, 36)) as pilot:
        screen = await both_ready(pilot)
        head = str(screen.query_one("#arena-head").render())
        assert "Arena · battle 1" in head
        if shown is None:
            assert "NOT SAVING" not in head
        else:
            assert shown in head and "\x1b" not in head


@pytest.mark.parametrize("blind", [False])
async def test_named_mode_shows_the_names_at_once(home: Path, blind: bool) -> None:
    app = arena_app(
        {"one": ScriptedBackend(name="one"), "two": ScriptedBackend(name="two")},
        blind=blind,
        swapped=False,
        save=False,
    )
    async with run_test(app, size=(120, 36)) as pilot:
        screen = await both_ready(pilot)
        await wait_for(pilot, lambda: "one" in screen.pane("A").title_text())
        assert "ready: one on cpu" in screen.pane("A").status_text()
        assert "differ" not in str(screen.query_one("#arena-head", Static).render())


async def test_different_settings_are_warned_of_and_each_sides_shown_after_the_vote(
    home: Path,
) -> None:
    longer = dataclasses.replace(
        resolved("two"), generation=GenerationSettings(temperature=0.5, max_new_tokens=60)
    )
    backends = {"one": ScriptedBackend(name="one"), "two": ScriptedBackend(name="two")}
    app = ArenaApp(
        [resolved("one"), longer],
        Store(),
        factory=lambda r: backends[str(r.load.model_path)],
        swapped=False,
    )
    async with run_test(app, size=(160, 40)) as pilot:
        screen = await both_ready(pilot)
        head = str(screen.query_one("#arena-head", Static).render())
        assert (
            "⚠ The sides' settings differ: temperature: A 0, B 0.5; max new tokens: A 16, B 60"
            in head
        )
        await ask(pilot, "Hi")
        assert "max new tokens" not in screen.pane("A").status_text()  # blind: not yet
        await pilot.press("a")
        await wait_for(pilot, lambda: screen.battle.vote == "a")
        first, second = (screen.pane(x).status_text() for x in "AB")
        assert "one on cpu" in first and "temperature 0 · max new tokens 16" in first
        assert "two on cpu" in second and "temperature 0.5 · max new tokens 60" in second
        assert "template vicuna_v1.1 (auto)" in second


async def test_the_chat_opens_an_arena_from_the_palette_and_back(home: Path) -> None:
    from textual.widgets import Input, OptionList, Select, Static
    from tui_helpers import make_app, ready

    from vicuna_tui.tui.chat import ChatScreen
    from vicuna_tui.tui.screens.arena_setup import ArenaSetupScreen

    backends = {
        None: ScriptedBackend(name="chat-model"),
        "left": ScriptedBackend([["Left here."]], name="left"),
        "right": ScriptedBackend([["Right here."]], name="right"),
    }
    app = make_app(lambda load: backends[load.model_path])
    async with run_test(app, size=(120, 36)) as pilot:
        await ready(pilot)
        app.show_arena_setup()
        await wait_for(pilot, lambda: showing(app, ArenaSetupScreen))
        setup = app.screen
        labels = [str(w.render()) for w in setup.query(".field-label")]
        assert labels == ["First model", "Second model"]
        hint = setup.query_one("#arena-setup-hint", Static)
        assert hint.region.height >= 2 and "http://host:8000/v1 MODEL" in str(hint.render())
        setup.query_one("#arena-first", Input).value = "left"
        await pilot.click("#start")  # the second is missing: said, and focused
        error = str(setup.query_one("#arena-setup-error", Static).render())
        assert error == "Give the second model: a path, Hub id, profile name or server URL."
        assert app.focused is setup.query_one("#arena-second", Input)
        setup.query_one("#arena-second-engine", Select).value = "llamacpp"
        await pilot.press(*"right", "enter")  # typed where the focus went, and sent
        await wait_for(pilot, lambda: showing(app, ArenaScreen))
        arena = app.screen
        assert isinstance(arena, ArenaScreen)
        await wait_for(pilot, lambda: all(s.state == "ready" for s in arena.sides))
        assert arena.sides[0].resolved.load.model_path == "left"
        assert [s.resolved.load.backend for s in arena.sides] == ["auto", "llamacpp"]
        await ask_on(pilot, arena, "Hello?")
        assert sorted(texts(arena, "A") + texts(arena, "B")) == sorted(
            ["Hello?", "Left here.", "Hello?", "Right here."]
        )
        await pilot.press("f10")  # back to the chat, which kept its model
        await wait_for(pilot, lambda: showing(app, ChatScreen))
        assert app.chat.model_ready
        listed = app.chat.sidebar.query_one("#chat-list", OptionList)

        def last_line() -> str:
            count = listed.option_count
            return str(listed.get_option_at_index(count - 1).prompt) if count else ""

        # the chat list counts the battle's two chats, as arena chats
        await wait_for(pilot, lambda: last_line() == "and 2 arena chats: type to find them")


async def ask_on(pilot: Any, screen: ArenaScreen, text: str) -> None:
    screen.prompt.set_text(text)
    screen.prompt.focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen.battle.turns == 1)
    await wait_for(pilot, lambda: not any(s.stream.active for s in screen.sides))


async def test_a_blind_battle_holds_back_notices_that_name_a_model(home: Path) -> None:
    import dataclasses

    talkative = ScriptedBackend(name="two")
    talkative.info = dataclasses.replace(talkative.info, notices=("two uses the chatml template",))
    app = arena_app({"one": ScriptedBackend(name="one"), "two": talkative}, swapped=False)
    async with run_test(app, size=(120, 36)) as pilot:
        screen = await both_ready(pilot)
        await ask(pilot, "Hi")
        assert not any("chatml" in t for t in toasts(app))
        await pilot.press("alt+t")
        await wait_for(pilot, lambda: any("Model B: two uses the chatml" in t for t in toasts(app)))
        assert screen.held_notices == []


async def test_a_server_against_a_local_model(home: Path) -> None:
    """One side through the real remote backend to an OpenAI-compatible server."""
    from openai_stub import serve

    from vicuna_tui.engine.settings import RemoteSettings
    from vicuna_tui.tui.arena.side import side_backend

    local = ScriptedBackend([["Local", " reply."]], name="local")
    with serve() as (url, stub):
        server = dataclasses.replace(resolved("x"), remote=RemoteSettings(url, "stub-model"))
        real = side_backend()

        def factory(side: runtime.Resolved) -> Any:
            return real(side) if side.remote is not None else local

        app = ArenaApp([resolved("local"), server], Store(), factory=factory, swapped=False)
        async with run_test(app, size=(120, 36)) as pilot:
            screen = await both_ready(pilot)
            assert screen.sides[1].state == "ready"
            await ask(pilot, "Hello?")
            assert texts(screen, "B") == ["Hello?", "Hello from the server."]
            assert texts(screen, "A") == ["Hello?", "Local reply."]
            await pilot.press("b")
            assert "stub-model" in screen.pane("B").title_text()
        assert stub.requests[-1]["messages"][-1] == {"role": "user", "content": "Hello?"}


async def test_esc_one_at_a_time_stops_the_side_answering_and_skips_the_other(
    home: Path,
) -> None:
    log: list[str] = []
    first = Logged(log, "one")
    first.replies = [["a", "b", "c"]]
    first.pause_after = 1
    app = arena_app({"one": first, "two": Logged(log, "two")}, one_at_a_time=True, swapped=False)
    async with run_test(app, size=(120, 36)) as pilot:
        screen = screen_of(app)
        screen.prompt.set_text("go")
        await pilot.press("enter")
        await wait_for(pilot, first.paused.is_set)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not any(s.stream.active for s in screen.sides))
        await pilot.pause(0.2)
        assert "load two" not in log  # its turn never came
        assert texts(screen, "A")[-1] == "a"
        assert screen.pane("B").status_text() == "stopped"
        assert [s.messages[-1].finish_reason for s in screen.battle.sessions] == [
            "cancelled",
            "cancelled",
        ]


async def test_a_plain_letter_votes_only_in_the_empty_input_after_both_replies(
    home: Path,
) -> None:
    """``b`` votes once both replies are in and the input is empty; before that, or
    after other text, it is just typed."""
    backends = {
        "one": ScriptedBackend([["I am", " one."]], name="one"),
        "two": ScriptedBackend([["I am", " two."]], name="two"),
    }
    app = arena_app(backends)
    async with run_test(app, size=(120, 36)) as pilot:
        screen = await both_ready(pilot)
        await pilot.press("b")  # nothing to vote on yet: typed
        assert screen.prompt.text == "b"
        assert screen.battle.vote is None
        screen.prompt.set_text("")
        await ask(pilot, "Who are you?")
        await pilot.press("x", "y")  # "x" votes "both bad"; "y" is typed
        assert screen.battle.vote == "bothbad"
        assert screen.prompt.text == "y"
        await pilot.press("a")  # the input is not empty: typed, the vote stays
        assert screen.prompt.text == "ya"
        assert screen.battle.vote == "bothbad"


async def test_a_blind_battle_shows_the_same_loading_on_both_sides_and_holds_prompts(
    home: Path,
) -> None:
    release = threading.Event()

    class Slow(ScriptedBackend):
        def load(self, progress: Any = None) -> Any:
            release.wait(30)
            return super().load(progress)

    app = arena_app(
        {"one": ScriptedBackend([["Quick."]], name="one"), "two": Slow([["Slow."]], name="two")},
        swapped=False,
    )
    async with run_test(app, size=(120, 36)) as pilot:
        screen = screen_of(app)
        try:
            await wait_for(pilot, lambda: screen.sides[0].state == "ready")
            await pilot.pause()
            a, b = screen.pane("A").status_text(), screen.pane("B").status_text()
            assert a == b == "loading the models… (1 of 2 ready)"  # neither gives itself away
            screen.prompt.set_text("Who is first?")
            await pilot.press("enter")
            await pilot.pause()
            assert screen.prompt.text == "Who is first?"  # held, not lost
            assert texts(screen, "A") == [] and texts(screen, "B") == []
            assert any("still loading (1 of 2 ready)" in t for t in toasts(app))
        finally:
            release.set()
        await both_ready(pilot)
        await pilot.pause()
        assert screen.pane("A").status_text() == screen.pane("B").status_text() == "ready"
        await ask(pilot, "Who is first?")
        assert texts(screen, "A") == ["Who is first?", "Quick."]
        assert texts(screen, "B") == ["Who is first?", "Slow."]
