"""Damaged databases: every kind of damage gets a clear message from the real CLI, and
`sessions repair` saves what can be read without ever deleting the damaged file."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from pathlib import Path

import pytest
from helpers import ScriptedBackend, run_cli
from tui_helpers import make_app, ready, reply_done, run_test, send, status_text, wait_for

from vicuna_tui import runtime
from vicuna_tui.store import Battle, SavedMessage, Store, backups

CONVERSATIONS = 150
TURNS = 3  # user + assistant each


def fill(path: Path | None = None) -> Path:
    """A database with CONVERSATIONS chats of 2 * TURNS messages, checkpointed."""
    with Store(path) as store:
        for i in range(CONVERSATIONS):
            conv = store.create_conversation(model_name="SmolLM2")
            for j in range(TURNS):
                store.add_message(
                    conv.id, SavedMessage("user", f"question {i}.{j} " + "llama " * 40)
                )
                store.add_message(
                    conv.id, SavedMessage("assistant", f"answer {i}.{j} " + "wool " * 40)
                )
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return store.path


def damage(path: Path, kind: str) -> None:
    data = bytearray(path.read_bytes())
    if kind == "truncated":
        path.write_bytes(bytes(data[: len(data) * 3 // 5]))
    elif kind == "header":
        data[0:100] = b"\xa5" * 100
        path.write_bytes(bytes(data))
    elif kind == "interior":
        # Five pages at random, and always the messages table's last leaf, where a new
        # message goes: every write meets the damage (random pages alone moved with
        # each schema change), and few messages are lost.
        db = sqlite3.connect(path)
        (last_leaf,) = db.execute(
            "SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf' "
            "ORDER BY path DESC LIMIT 1"
        ).fetchone()
        db.close()
        rng = random.Random(7)
        pages = len(data) // 4096
        for page in {*rng.sample(range(4, pages - 2), 5), last_leaf - 1}:
            data[page * 4096 : (page + 1) * 4096] = rng.randbytes(4096)
        path.write_bytes(bytes(data))
    elif kind == "wal":
        Path(f"{path}-wal").write_bytes(random.Random(3).randbytes(40_000))
    elif kind == "not-sqlite":
        path.write_bytes(b"these are my notes, not a database\n" * 3000)
    else:
        raise AssertionError(kind)


def no_traceback(result: object) -> None:
    text = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in text and "sqlite3." not in text, text[-2000:]


KINDS = ["truncated", "header", "interior", "wal", "not-sqlite"]


@pytest.mark.parametrize("kind", KINDS)
def test_damage_gets_a_message_and_repair_saves_what_is_readable(home: Path, kind: str) -> None:
    path = fill()
    damage(path, kind)
    damaged_bytes = path.read_bytes()
    total = CONVERSATIONS * TURNS * 2

    for args in (("list",), ("search", "llama"), ("show", "last")):
        result = run_cli("sessions", *args)
        no_traceback(result)
        if result.returncode != 0:
            assert result.returncode == 2
            assert str(path) in result.stderr and "sessions repair" in result.stderr

    check = run_cli("sessions", "check")
    no_traceback(check)
    if kind == "wal":  # SQLite ignores a WAL whose header does not check out
        assert check.returncode == 0 and f"{CONVERSATIONS} conversations" in check.stdout
        assert len(run_cli("sessions", "list").stdout.splitlines()) == CONVERSATIONS
        return
    assert check.returncode == 1 and "damaged" in check.stdout

    refused = run_cli("sessions", "repair")  # no terminal, no --yes: nothing changes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert path.read_bytes() == damaged_bytes

    repaired = run_cli("sessions", "repair", "--yes")
    no_traceback(repaired)
    assert repaired.returncode == 0, repaired.stderr
    kept = [p for p in path.parent.iterdir() if p.name.startswith("conversations.db.damaged-")]
    kept = [p for p in kept if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged_bytes  # never deleted
    assert f"kept at {kept[0]}" in repaired.stdout

    with Store() as store:
        saved = store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        conversations = store.listing.conversations()
    assert run_cli("sessions", "check").returncode == 0
    rebuilt = [c for c in conversations if c.title.endswith("(recovered)")]
    whole = len(conversations) - len(rebuilt)
    assert f"saved {whole} conversations and {saved} messages" in repaired.stdout
    if rebuilt:  # messages whose conversation row was lost still have a home
        assert f"{len(rebuilt)} conversations were rebuilt" in repaired.stdout
    if kind == "header":
        assert saved == total and len(conversations) == CONVERSATIONS
        assert "header" in repaired.stdout
    elif kind == "interior":
        assert total * 0.8 < saved < total
        # rows on a damaged page: unreadable, or (where SQLite skips the page without an
        # error) missing below the newest ones; never "nothing lost"
        assert "could not be read" in repaired.stdout or "missing: " in repaired.stdout
        assert "lost: nothing" not in repaired.stdout
    elif kind == "truncated":
        assert 0 < saved < total and "cut short" in repaired.stdout
    else:
        assert saved == 0 and "nothing in the file could be read" in repaired.stdout
    # What was saved is whole and searchable, and the chat goes on in it.
    if saved:
        assert run_cli("sessions", "search", "wool").returncode == 0
        assert run_cli("sessions", "rename", "last", "after repair").returncode == 0


def test_repair_keeps_arena_votes_and_the_judgment_files_listed(home: Path) -> None:
    path = fill()
    with Store() as store:
        chats = store.listing.conversations()
        for number, vote in enumerate(["a", "b", "tie", None]):
            store.battles.save(
                Battle(
                    f"battle-{number}",
                    "llama",
                    "alpaca",
                    chats[2 * number].id,
                    chats[2 * number + 1].id,
                    swapped=number % 2 == 1,
                    turns=number + 1,
                    vote=vote,
                    settings={"max_new_tokens": 64},
                )
            )
        store.evaluations.remember("/judged/mt_bench_single.jsonl", "single", "gpt-4")
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = store.battles.all()
    damage(path, "header")
    repaired = run_cli("sessions", "repair", "--yes")
    no_traceback(repaired)
    assert repaired.returncode == 0, repaired.stderr
    assert "and 4 arena battles (with their votes) and 1 judgment files listed" in (repaired.stdout)
    with Store() as store:
        assert store.battles.all() == before  # every field, the links to both chats too
        [listed] = store.evaluations.files()
    assert (listed.path, listed.mode, listed.judge) == (
        "/judged/mt_bench_single.jsonl",
        "single",
        "gpt-4",
    )
    board = run_cli("arena", "results", "--json", "--rounds", "20")
    assert board.returncode == 0, board.stderr
    data = json.loads(board.stdout)
    assert data["battles"] == 3  # the three voted
    wins = {row["model"]: (row["wins"], row["losses"], row["ties"]) for row in data["models"]}
    assert wins == {"llama": (1, 1, 1), "alpaca": (1, 1, 1)}


def test_repair_of_a_healthy_database_changes_nothing(home: Path) -> None:
    path = fill()
    before = path.read_bytes()
    result = run_cli("sessions", "repair", "--yes")
    assert result.returncode == 0 and "nothing to repair" in result.stdout
    assert path.read_bytes() == before


def test_daily_backups_roll_and_restore_brings_one_back(home: Path) -> None:
    path = fill()
    with Store() as store:
        first = backups.take_daily(store)
        assert first is not None and first.path.stat().st_mode & 0o777 == 0o600
        assert backups.take_daily(store) is None  # once a day at most
        later = time.time()
        for day in range(1, 5):
            os.utime(backups.backups()[0].path, (later - 86_400, later - 86_400))
            time.sleep(1.1)  # the backup's name has a one-second stamp
            assert backups.take_daily(store, now=later + day) is not None
    assert len(backups.backups()) == backups.KEEP
    assert (path.parent / "backups").stat().st_mode & 0o777 == 0o700

    damage(path, "not-sqlite")
    listed = run_cli("sessions", "list")
    assert listed.returncode == 2 and "sessions repair" in listed.stderr
    repaired = run_cli("sessions", "repair", "--yes")
    assert "sessions restore" in repaired.stdout  # repair names the backup
    assert f"holds {CONVERSATIONS} conversations" in repaired.stdout
    restored = run_cli("sessions", "restore", "--yes")
    assert restored.returncode == 0, restored.stderr
    assert f"{CONVERSATIONS} conversations" in restored.stdout
    assert len(run_cli("sessions", "list").stdout.splitlines()) == CONVERSATIONS
    kept = [p.name for p in path.parent.iterdir()]
    assert any(n.startswith("conversations.db.before-restore-") for n in kept)
    assert any(n.startswith("conversations.db.damaged-") for n in kept)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_chat_on_a_damaged_database_answers_without_saving(home: Path, smollm_gguf: Path) -> None:
    path = fill()
    damage(path, "header")
    before = path.read_bytes()
    result = run_cli(
        "--model-path",
        str(smollm_gguf),
        "-p",
        "Which city is the capital of France?",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
    )
    no_traceback(result)
    assert result.returncode == 0 and "Paris" in result.stdout
    assert result.stderr.count("not saving this chat") == 1
    assert "is damaged" in result.stderr and "sessions repair" in result.stderr
    assert path.read_bytes() == before


async def test_the_tui_on_a_database_damaged_inside_keeps_chatting(home: Path) -> None:
    path = fill()
    damage(path, "interior")
    store, problem = runtime.open_store(False)  # the header is fine: it opens
    assert store is not None and problem is None
    backend = ScriptedBackend([["Still here."]])
    app = make_app(lambda load: backend, store_object=store)
    async with run_test(app, size=(110, 32)) as pilot:
        await ready(pilot)
        await send(pilot, "are you there?")
        await reply_done(pilot)
        screen = app.chat
        assert screen.session.messages[-1].content == "Still here."
        await wait_for(pilot, lambda: "not saving" in status_text(screen))
    store.close()


async def test_the_tui_says_why_it_is_not_saving(home: Path) -> None:
    path = fill()
    damage(path, "not-sqlite")
    store, problem = runtime.open_store(False)
    assert store is None and problem is not None and problem.kind == "damaged"
    backend = ScriptedBackend([["Hello."]])
    app = make_app(
        lambda load: backend, save=False, not_saving=problem.message, not_saving_hint=problem.hint
    )
    async with run_test(app, size=(110, 32)) as pilot:
        await ready(pilot)
        screen = app.chat
        toasts = app._notifications
        await wait_for(pilot, lambda: any("Not saving this chat" in n.message for n in toasts))
        toast = next(n for n in toasts if "Not saving this chat" in n.message)
        assert str(path) in toast.message and "sessions repair" in toast.message
        assert "not saving" in status_text(screen)
        note = str(screen.sidebar.query_one("#not-saving").render())
        assert "is damaged" in note and str(path) in note
        await send(pilot, "hi")
        await reply_done(pilot)
        assert screen.session.messages[-1].content == "Hello."
    assert path.read_bytes().startswith(b"these are my notes")


def test_translated_errors_name_the_file(home: Path) -> None:
    path = fill()
    damage(path, "interior")
    with Store() as store, pytest.raises(Exception) as info:
        for conv in store.listing.conversations():
            store.get(conv.id)
    assert type(info.value).__name__ == "StoreError"
    assert str(path) in str(info.value) and not isinstance(info.value, sqlite3.Error)
