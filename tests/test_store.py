"""The conversation store: schema, migrations, durability, concurrency, permissions."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO

from vicuna_tui import locations
from vicuna_tui.session import ChatSession
from vicuna_tui.store import SCHEMA_VERSION, SavedMessage, Store, StoreError, make_title

FIXTURES = Path(__file__).parent / "fixtures"


def test_new_database_is_current_private_and_in_wal_mode(home: Path) -> None:
    with Store() as store:
        assert store.version == SCHEMA_VERSION
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        conv = store.create_conversation()
        store.add_message(conv.id, SavedMessage(role="user", content="hi"))
    path = locations.database_path()
    assert path == home / "data" / "conversations.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for suffix in ("-wal", "-shm"):
        extra = Path(f"{path}{suffix}")
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) == 0o600


def test_first_schema_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript((FIXTURES / "schema" / "v1.sql").read_text())  # the frozen schema
        db.executescript((FIXTURES / "chat_v1.sql").read_text())
    with Store(path) as store:
        assert store.version == SCHEMA_VERSION
        conv = store.get("0123456789abcdef0123456789abcdef")
        assert conv.title == "Old chat about llamas"
        assert conv.load == {"device": "cuda", "load_8bit": True}
        assert conv.backend == "local"  # a column added by a later migration
        assert [m.content for m in conv.messages] == [
            "Tell me about llamas",
            "Llamas are camelids from the Andes.",
        ]
        assert conv.messages[1].seed == 42
        assert conv.messages[1].backend is None and conv.messages[1].settings is None  # v4
        hits = store.search.messages("camelids")  # the FTS index covers old messages too
        assert [h.conversation_id for h in hits] == [conv.id]


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE things (x)")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="written by a newer vicuna-tui") as info:
        Store(path)
    assert "upgrade vicuna-tui" in info.value.hint
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="is damaged"):
        Store(path)
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_messages_titles_search_rename_delete(home: Path) -> None:
    with Store() as store:
        conv = store.create_conversation(model_name="m")
        store.add_message(conv.id, SavedMessage(role="user", content="  How do   llamas\nsleep?  "))
        store.add_message(
            conv.id,
            SavedMessage(
                role="assistant",
                content="Standing up, mostly.",
                new_tokens=5,
                tokens_per_second=20.0,
                time_to_first_token=0.1,
                seed=7,
                prompt_tokens=30,
                finish_reason="stop",
            ),
        )
        got = store.get(conv.id)
        assert got.title == "How do llamas sleep?"
        assert [m.position for m in got.messages] == [0, 1]
        assert got.messages[1].seed == 7 and got.messages[1].finish_reason == "stop"
        assert [h.position for h in store.search.messages("standing")] == [1]
        assert store.search.messages("llam")[0].role == "user"  # prefix match
        store.rename(conv.id, "Sleep")
        assert store.get(conv.id).title == "Sleep"
        with pytest.raises(StoreError, match="cannot be empty"):
            store.rename(conv.id, "   ")
        store.delete(conv.id)
        assert store.listing.conversations() == []
        assert store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
        assert store.search.messages("standing") == []


def test_make_title_trims() -> None:
    assert make_title("a" * 100).endswith("…")
    assert len(make_title("a" * 100)) == 60
    assert make_title(" \n ") == "New chat"


def test_ids_by_prefix_and_last(home: Path) -> None:
    with Store() as store:
        a = store.create_conversation(conversation_id="abc111" + "0" * 26)
        store.create_conversation(conversation_id="abc222" + "0" * 26)
        assert store.resolve("abc1") == a.id
        assert store.resolve("last").startswith("abc2")
        with pytest.raises(StoreError, match="matches 2 conversations"):
            store.resolve("abc")
        with pytest.raises(StoreError, match="no conversation matches"):
            store.resolve("fff")
        with pytest.raises(StoreError, match="not a conversation id"):
            store.resolve("zz!")


def test_full_disk_is_reported_and_nothing_is_lost(home: Path) -> None:
    warnings: list[str] = []
    store = Store()
    session = ChatSession(store, warn=warnings.append)
    session.add_user("first")
    session.record_reply("reply one", "stop")
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full
    session.add_user("x" * 20000)
    session.record_reply("y" * 20000, "stop")
    assert warnings and "is full" in warnings[0]
    assert len(warnings) == 1  # said once, not on every write
    assert session.unsaved
    assert [m.content[:1] for m in session.messages] == ["f", "r", "x", "y"]
    store.db.execute("PRAGMA max_page_count = 1073741823")  # space freed
    session.add_user("third")
    assert not session.unsaved
    assert "saved again" in warnings[-1]
    assert session.conversation is not None
    saved = store.get(session.conversation.id)
    assert [m.content[:1] for m in saved.messages] == ["f", "r", "x", "y", "t"]
    store.close()


WRITER = """
import sys
from vicuna_tui.store import Store, SavedMessage
store = Store()
conv = store.create_conversation(title=sys.argv[1])
for i in range(150):
    store.add_message(conv.id, SavedMessage(role="user" if i % 2 == 0 else "assistant",
                                       content=f"{sys.argv[1]} message {i}"))
print(conv.id)
"""


def test_two_processes_write_at_once(home: Path) -> None:
    Store().close()  # create and migrate first, so both writers open a ready database
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for name in ("alpha", "beta")
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    with Store() as store:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for out, _ in results:
            conv = store.get(out.strip())
            assert [m.position for m in conv.messages] == list(range(150))
        assert len(store.search.messages("alpha")) == 50  # search returns at most 50 by default


@pytest.mark.real_model
def test_kill_9_mid_reply_keeps_the_user_turn(smollm_gguf: Path, home: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vicuna_tui",
            "--model-path",
            str(smollm_gguf),
            "--temperature",
            "0",
            "--max-new-tokens",
            "500",
            "--style",
            "simple",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write("Say hi.\nWrite a very long story about a lighthouse keeper.\n")
    proc.stdin.flush()
    proc.stdout.readline()  # the first reply is complete
    assert proc.stdout.read(40)  # the second is streaming
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    with Store() as store:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conv = store.get(store.resolve("last"))
    roles = [(m.role, m.content[:10]) for m in conv.messages]
    assert roles[0] == ("user", "Say hi.")
    assert roles[1][0] == "assistant"
    assert roles[2] == ("user", "Write a ve")  # committed before generation started
    assert len(roles) == 3  # only the reply in flight was lost
