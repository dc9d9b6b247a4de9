"""--resume and replay, on the real model and on a scripted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ScriptedBackend, run_cli
from tui_helpers import make_app, ready, reply_done, run_test, send, showing, shown, wait_for

from vicuna_tui.store import Conversation, Store
from vicuna_tui.tui.screens.replay_result import ReplayScreen


def last_conversation() -> Conversation:
    with Store() as store:
        return store.get(store.resolve("last"))


@pytest.mark.real_model
def test_resume_feeds_the_history_and_keeps_saving(smollm_gguf: Path, home: Path) -> None:
    first = run_cli(
        "--model-path",
        str(smollm_gguf),
        "--temperature",
        "0",
        "--max-new-tokens",
        "30",
        input="My name is Ada. Please remember it.\n",
    )
    assert first.returncode == 0, first.stderr
    conv = last_conversation()
    resumed = run_cli("--resume", conv.id[:8], "--stats", input="What is my name?\n")
    assert resumed.returncode == 0, resumed.stderr
    assert "Ada" in resumed.stdout
    again = last_conversation()
    assert again.id == conv.id
    assert [m.role for m in again.messages] == ["user", "assistant", "user", "assistant"]
    assert again.model_path == str(smollm_gguf)  # the saved model was used


def test_resume_unknown_id(home: Path) -> None:
    result = run_cli("--resume", "deadbeef", "-p", "hi")
    assert result.returncode == 2
    assert "no conversation matches 'deadbeef'" in result.stderr


@pytest.mark.real_model
def test_replay_reproduces_sampled_replies_exactly(smollm_gguf: Path, home: Path) -> None:
    made = run_cli(
        "--model-path",
        str(smollm_gguf),
        "--temperature",
        "0.9",
        "--max-new-tokens",
        "30",
        input="Name a fruit.\nWrite a haiku about rain.\n",
    )
    assert made.returncode == 0, made.stderr
    original = last_conversation()
    assert all(m.seed is not None for m in original.messages if m.role == "assistant")
    replayed = run_cli("replay", original.id[:8], "--style", "simple")
    assert replayed.returncode == 0, replayed.stderr
    assert "2 of 2 replies identical" in replayed.stdout
    assert "│" in replayed.stdout  # side by side
    assert f"replay saved as branch 2 of 2 of {original.short_id}" in replayed.stdout
    branched = last_conversation()
    assert branched.id == original.id and branched.replay_of is None
    assert [m.content for m in branched.messages] == [m.content for m in original.messages]
    # nothing was overwritten: the saved replies stay, the replay branches off at reply 1
    assert len(branched.tree) == 7
    saved_uids = {m.uid for m in original.messages}
    assert saved_uids < {m.uid for m in branched.tree}
    assert branched.messages[0].uid == original.messages[0].uid  # the same first question
    assert branched.messages[1].uid != original.messages[1].uid
    assert branched.messages[1].parent == original.messages[0].uid

    fresh = run_cli("replay", original.id[:8], "--style", "simple", "--new-seeds")
    assert fresh.returncode == 0
    assert "differs" in fresh.stdout and "diff: " in fresh.stdout
    assert "branch 3 of 3" in fresh.stdout
    shown = last_conversation()  # the branch the replay made is the one shown now

    linked = run_cli("replay", original.id[:8], "--style", "simple", "--new-conversation")
    assert linked.returncode == 0, linked.stderr
    assert "2 of 2 replies identical" in linked.stdout
    copy = last_conversation()
    assert copy.id != original.id and copy.replay_of == original.id
    assert [m.content for m in copy.messages] == [m.content for m in shown.messages]
    assert len(copy.tree) == 4


@pytest.mark.real_model
def test_replay_a_question_set(smollm_dir: Path, home: Path, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"question_id": 7, "text": "What is the capital of France?"})
        + "\n"
        + json.dumps({"prompt": "What is the capital of Germany?"})
        + "\n"
    )
    result = run_cli(
        "replay",
        str(questions),
        "--model-path",
        str(smollm_dir),
        "--temperature",
        "0",
        "--max-new-tokens",
        "20",
    )
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "questions.answers.jsonl").read_text().splitlines()
    answers = [json.loads(line) for line in lines]
    assert answers[0]["question_id"] == 7 and "Paris" in answers[0]["text"]
    assert "Berlin" in answers[1]["text"]
    assert answers[1]["stats"]["new_tokens"] > 0
    assert answers[0]["settings"]["temperature"] == 0.0


def test_broken_question_set(home: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"prompt": "ok"}\n{"nope": 1}\n')
    result = run_cli("replay", str(questions))
    assert result.returncode == 2
    assert 'q.jsonl:2 has no "prompt" text' in result.stderr


async def test_replay_in_the_tui(home: Path) -> None:
    with Store() as store:
        conv = store.create_conversation(title="Original")
        from vicuna_tui.store import SavedMessage

        store.add_message(conv.id, SavedMessage(role="user", content="q1"))
        store.add_message(conv.id, SavedMessage(role="assistant", content="same answer", seed=5))
        store.add_message(conv.id, SavedMessage(role="user", content="q2"))
        store.add_message(conv.id, SavedMessage(role="assistant", content="old answer"))
    backend = ScriptedBackend([["same answer"], ["new answer"]])
    app = make_app(lambda load: backend, conversation_id=conv.id, temperature=0.7)
    async with run_test(app, size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: showing(app, ReplayScreen))
        replay_screen = shown(app, ReplayScreen)
        assert [c.identical for c in replay_screen.comparisons] == [True, False]
        assert backend.requests[0].generation.seed == 5  # the saved seed was reused
        assert backend.requests[1].generation.seed is None
        await pilot.press("escape")
        assert screen.session.conversation is not None
        assert screen.session.conversation.id == conv.id  # a branch, not a copy
        assert screen.session.generation.seed is None  # settings restored afterwards
        views = screen.transcript.views
        assert [v.text for v in views] == ["q1", "same answer", "q2", "new answer"]
        assert "‹ 2/2 ›" in views[1].label_text
        views[1].focus()
        await pilot.press("alt+left")  # the saved replies are still there
        await wait_for(pilot, lambda: screen.transcript.views[3].text == "old answer")
        assert "‹ 1/2 ›" in screen.transcript.views[1].label_text
    saved = last_conversation()
    assert saved.id == conv.id
    assert [m.content for m in saved.messages] == ["q1", "same answer", "q2", "old answer"]
    assert sorted(m.content for m in saved.tree) == sorted(
        ["q1", "same answer", "q2", "old answer", "same answer", "q2", "new answer"]
    )


async def test_tui_resume_shows_the_history(home: Path) -> None:
    with Store() as store:
        conv = store.create_conversation(title="Earlier")
        from vicuna_tui.store import SavedMessage

        store.add_message(conv.id, SavedMessage(role="user", content="earlier question"))
        store.add_message(conv.id, SavedMessage(role="assistant", content="earlier answer"))
    backend = ScriptedBackend([["next answer"]])
    app = make_app(lambda load: backend, conversation_id=conv.id)
    async with run_test(app, size=(120, 40)) as pilot:
        screen = await ready(pilot)
        assert [v.text for v in screen.transcript.views] == ["earlier question", "earlier answer"]
        await send(pilot, "follow-up")
        await reply_done(pilot)
        assert backend.requests[0].turns == (
            ("user", "earlier question"),
            ("assistant", "earlier answer"),
            ("user", "follow-up"),
        )
