"""Conversations as trees: regenerating, editing and replaying add branches, nothing
is overwritten; the branch shown is remembered; export, import, search and delete know
the tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli

from vicuna_tui.engine.events import ReplyDone, ReplyStats
from vicuna_tui.session import ChatSession
from vicuna_tui.store import SavedMessage, Store, tree


def _m(uid: str, parent: str | None, role: str = "user") -> SavedMessage:
    return SavedMessage(role=role, content=uid, uid=uid, parent=parent)


def test_tree_paths_siblings_and_subtrees() -> None:
    #   a ─ b ─ c          (b2 is a second reply to a; d a second first question)
    #     └ b2 ─ e
    #   d
    messages = [
        _m("a", None), _m("b", "a", "assistant"), _m("c", "b"),
        _m("b2", "a", "assistant"), _m("d", None), _m("e", "b2"),
    ]  # fmt: skip
    assert [m.uid for m in tree.path_to(messages, "c")] == ["a", "b", "c"]
    assert [m.uid for m in tree.path_to(messages, "missing")] == ["a", "b2", "e"]  # newest
    assert [m.uid for m in tree.siblings(messages, messages[1])] == ["b", "b2"]
    assert [m.uid for m in tree.siblings(messages, messages[0])] == ["a", "d"]
    assert tree.latest_leaf(messages, "a") == "e"
    assert tree.latest_leaf(messages, "b") == "c"
    assert tree.latest_leaf(messages, "c") == "c"
    assert sorted(m.uid for m in tree.subtree(messages, "a")) == ["a", "b", "b2", "c", "e"]


def _reply(session: ChatSession, text: str) -> None:
    session.record_result(ReplyDone(0, text, "stop", ReplyStats()))


def test_nothing_is_overwritten_and_the_branch_shown_is_remembered(home: Path) -> None:
    with Store() as store:
        session = ChatSession(store)
        session.add_user("hello")
        _reply(session, "one")
        assert session.regenerate() is not None
        _reply(session, "two")
        assert [m.content for m in session.messages] == ["hello", "two"]
        assert session.branches.branch_at(1) == (2, 2)
        assert session.switch_branch(1, -1)
        assert [m.content for m in session.messages] == ["hello", "one"]
        assert not session.switch_branch(1, -1)  # the first already
        session.add_user("more")
        _reply(session, "three")
        assert session.edit_at(0, "hi") is not None  # a second first question
        _reply(session, "four")
        conv_id = session.conversation.id if session.conversation else ""

        saved = store.get(conv_id)
        assert len(saved.tree) == 7
        assert store.listing.branch_counts() == {conv_id: 3}  # two, three and four end branches
        [row] = run_cli("sessions", "list").stdout.splitlines()
        assert "  7 msgs" in row and row.endswith("hello  (3 branches)")
        assert [m.content for m in saved.messages] == ["hi", "four"]  # as last shown
        assert [m.position for m in saved.messages] == [0, 1]

        reopened = ChatSession(store)
        reopened.open(conv_id)
        assert reopened.branches.branch_at(0) == (2, 2)
        assert reopened.choose_branch(0, 1)  # the first question: where it was left
        assert [m.content for m in reopened.messages] == ["hello", "one", "more", "three"]
        assert [m.content for m in store.get(conv_id).messages][-1] == "three"

        # a search hit on another branch opens that branch
        hit = next(h for h in store.search.messages("two") if h.conversation_id == conv_id)
        assert hit.message_uid and reopened.show_branch_of(hit.message_uid)
        assert [m.content for m in reopened.messages] == ["hello", "two"]

        # deleting a turn deletes every branch below it
        assert reopened.choose_branch(1, 1)  # hello / one / more / three
        assert reopened.branches.turn_size(0) == 5  # hello, one, two, more, three
        reopened.add_user("bye")
        _reply(reopened, "ciao")
        assert reopened.remove_last_turn()
        assert len(store.get(conv_id).tree) == 7
        assert store.delete_subtree(conv_id, reopened.messages[0].uid) == 5
        left = store.get(conv_id)
        assert [m.content for m in left.messages] == ["hi", "four"] and len(left.tree) == 2
        single = ChatSession(store)
        single.add_user("alone")
        _reply(single, "yes")
    listed = run_cli("sessions", "list")
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[0].endswith("alone") and "branches" not in rows[0]
    assert "2 msgs" in rows[1] and "branches" not in rows[1]  # one branch left
    listed_json = json.loads(run_cli("sessions", "list", "--json").stdout)
    assert [c["branches"] for c in listed_json] == [1, 1]


def test_switching_back_to_a_branch_restores_the_choice_below_it(
    home: Path, tmp_path: Path
) -> None:
    #   q1 ─ a1 ─ q2 ─ b1      b1 and b2 answer q2; q1e is q1 edited (F7)
    #                 └ b2
    #   q1e ─ c
    with Store() as store:
        session = ChatSession(store)
        session.add_user("q1")
        _reply(session, "a1")
        session.add_user("q2")
        _reply(session, "b1")
        session.regenerate()
        _reply(session, "b2")
        assert session.switch_branch(3, -1)  # the user goes back to b1 ...
        assert session.edit_at(0, "q1e") is not None  # ... then edits the first question
        _reply(session, "c")
        assert [m.content for m in session.messages] == ["q1e", "c"]
        assert session.switch_branch(0, -1)  # back to the first question
        assert [m.content for m in session.messages] == ["q1", "a1", "q2", "b1"]  # not b2
        newest = tree.latest_leaf(session.tree, session.messages[0].uid)
        assert newest != session.messages[-1].uid  # the old rule (the newest leaf) gave b2
        assert session.switch_branch(0, +1) and session.switch_branch(0, -1)
        assert [m.content for m in session.messages][-1] == "b1"
        conv_id = session.conversation.id if session.conversation else ""
    # the choice is stored: reopened, and carried through export and import
    with Store() as store:
        assert [m.content for m in store.get(conv_id).messages][-1] == "b1"
        reopened = ChatSession(store)
        reopened.open(conv_id)
        assert reopened.switch_branch(0, +1)
        assert [m.content for m in reopened.messages] == ["q1e", "c"]
        assert reopened.switch_branch(0, -1)
        assert [m.content for m in reopened.messages][-1] == "b1"
        assert reopened.switch_branch(3, +1)  # b2 chosen now ...
        assert reopened.switch_branch(0, +1) and reopened.switch_branch(0, -1)
        assert [m.content for m in reopened.messages][-1] == "b2"  # ... and remembered
        assert reopened.switch_branch(3, -1)
    out = tmp_path / "tree.json"
    exported = run_cli(
        "sessions", "export", conv_id, "--format", "json", "--all-branches", "-o", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    assert run_cli("sessions", "import", str(out)).returncode == 0
    with Store() as store:
        copy = ChatSession(store)
        copy.open(store.resolve("last"))
        assert copy.switch_branch(0, +1) and copy.switch_branch(0, -1)
        assert [m.content for m in copy.messages][-1] == "b1"


def test_export_all_branches_and_import_keep_the_tree(home: Path, tmp_path: Path) -> None:
    with Store() as store:
        session = ChatSession(store)
        session.add_user("hello")
        _reply(session, "one")
        session.regenerate()
        _reply(session, "two")
        conv_id = session.conversation.id if session.conversation else ""
    path_only = run_cli("sessions", "export", conv_id, "--format", "json")
    assert [m["content"] for m in json.loads(path_only.stdout)["messages"]] == ["hello", "two"]
    out = tmp_path / "all.json"
    done = run_cli(
        "sessions", "export", conv_id, "--format", "json", "--all-branches", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["branches"] is True
    refused = run_cli("sessions", "export", conv_id, "--format", "md", "--all-branches")
    assert refused.returncode == 2 and "--all-branches needs --format json" in refused.stderr
    imported = run_cli("sessions", "import", str(out))
    assert imported.returncode == 0, imported.stderr
    with Store() as store:
        copy = store.get(store.resolve("last"))
        assert copy.id != conv_id
        assert [m.content for m in copy.messages] == ["hello", "two"]
        assert sorted(m.content for m in copy.tree) == ["hello", "one", "two"]
        assert {m.uid for m in copy.tree}.isdisjoint(
            {m.uid for m in store.get(conv_id).tree}
        )  # new uids: importing twice makes two chats
    shown = run_cli("sessions", "show", conv_id).stdout
    assert "(branch 2 of 2): two" in shown


@pytest.mark.real_model
def test_the_line_front_end_keeps_regenerated_replies(smollm_gguf: Path, home: Path) -> None:
    result = run_cli(
        "--model-path", str(smollm_gguf), "--style", "simple", "--max-new-tokens", "8",
        input="Say hi.\n!!regen\n!!branches\n!!branch 1\n!!branches\n!!branch 7\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "showing 2 of 2; !!branch N shows another" in out
    assert "showing branch 1 of 2:" in out
    assert "showing 1 of 2; !!branch N shows another" in out
    assert "!!branch needs a number from 1 to 2" in out
    with Store() as store:
        conv = store.get(store.resolve("last"))
    assert len(conv.tree) == 3 and conv.messages[-1].uid == conv.tree[1].uid
