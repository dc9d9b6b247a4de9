"""`vicuna-tui sessions ...` and the export/import formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli

from vicuna_tui import formats
from vicuna_tui.store import SavedMessage, Store


def seed_store() -> str:
    with Store() as store:
        conv = store.create_conversation(
            model_name="SmolLM2", template="vicuna_v1.1", system_message="Be brief."
        )
        store.add_message(conv.id, SavedMessage(role="user", content="What is a llama?"))
        store.add_message(
            conv.id,
            SavedMessage(
                role="assistant",
                content="A camelid.",
                new_tokens=4,
                tokens_per_second=12.5,
                finish_reason="stop",
                seed=3,
                model="SmolLM2-135M-Instruct.Q4_1",
                backend="llamacpp",
                template="vicuna_v1.1",
                settings={"temperature": 0.0},
            ),
        )
        store.add_message(conv.id, SavedMessage(role="user", content="And an alpaca?"))
        store.add_message(
            conv.id,
            SavedMessage(role="assistant", content="A smaller one.", finish_reason="cancelled"),
        )
        return conv.id


def test_list_show_search(home: Path) -> None:
    conv_id = seed_store()
    listed = run_cli("sessions", "list")
    assert listed.returncode == 0
    assert conv_id[:8] in listed.stdout and "What is a llama?" in listed.stdout
    data = json.loads(run_cli("sessions", "list", "--json").stdout)
    assert data[0]["id"] == conv_id and data[0]["messages"] == 4
    shown = run_cli("sessions", "show", conv_id[:6])
    assert "USER: What is a llama?" in shown.stdout
    assert "ASSISTANT [cancelled]: A smaller one." in shown.stdout
    assert "12.5 tok/s" in shown.stdout
    found = run_cli("sessions", "search", "alpaca")
    assert found.returncode == 0 and "«alpaca»" in found.stdout
    assert run_cli("sessions", "search", "zebra").returncode == 1


def test_search_says_where_it_stopped_and_goes_on(home: Path) -> None:
    with Store() as store:
        for n in range(60):
            conv = store.create_conversation(model_name="m", template="vicuna_v1.1")
            store.add_message(conv.id, SavedMessage(role="user", content=f"wool number {n}"))
    first = run_cli("sessions", "search", "wool")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == 2 * 50  # a line and its snippet, per hit
    assert "stopped at 50 hits (1–50); there are more:" in first.stderr
    assert first.stderr.rstrip().endswith("vicuna-tui sessions search wool --from 51")
    rest = run_cli("sessions", "search", "wool", "--from", "51")
    assert len(rest.stdout.splitlines()) == 2 * 10 and rest.stderr == ""

    def ids(text: str) -> set[str]:
        return {line.split()[0] for line in text.splitlines()[::2]}

    assert len(ids(first.stdout) | ids(rest.stdout)) == 60  # every hit once, none twice
    ten = run_cli("sessions", "search", "wool", "-n", "10", "--from", "55")
    assert len(ten.stdout.splitlines()) == 2 * 6 and ten.stderr == ""
    past = run_cli("sessions", "search", "wool", "--from", "61")
    assert past.returncode == 1 and "no matches from hit 61 on" in past.stdout
    bad = run_cli("sessions", "search", "wool", "--from", "0")
    assert bad.returncode == 2 and "not a whole number of at least 1" in bad.stderr


def test_arena_chats_are_listed_as_arena_chats_not_bench_ones(home: Path) -> None:
    with Store() as store:
        store.create_conversation(title="mine")
        store.create_conversation(title="mt_bench/m · 81", run="mt_bench/m")
        sides = [store.create_conversation(title=f"Hi · arena {s}", run="arena") for s in "AB"]
    listed = run_cli("sessions", "list").stdout
    assert "and 1 bench conversation(s), kept apart:" in listed
    assert "arena   (vicuna-tui sessions list --run arena)" not in listed  # not a bench run
    assert (
        "and 2 arena chat(s), two to a battle: vicuna-tui sessions list --run arena; "
        "the votes: vicuna-tui arena results" in listed
    )
    shown = run_cli("sessions", "show", sides[0].id).stdout
    assert "arena: one side of a battle" in shown and "bench run" not in shown


def test_rename_and_delete(home: Path) -> None:
    conv_id = seed_store()
    assert run_cli("sessions", "rename", conv_id[:5], "Camelids", "101").returncode == 0
    with Store() as store:
        assert store.get(conv_id).title == "Camelids 101"
    refused = run_cli("sessions", "delete", conv_id[:5])  # no terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert run_cli("sessions", "delete", conv_id[:5], "--yes").returncode == 0
    with Store() as store:
        assert store.listing.conversations() == []


def test_unknown_and_ambiguous_ids(home: Path) -> None:
    result = run_cli("sessions", "show", "ffff")
    assert result.returncode == 2 and "no conversation matches 'ffff'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("fmt", ["json", "fastchat", "sharegpt"])
def test_export_import_round_trip(home: Path, tmp_path: Path, fmt: str) -> None:
    conv_id = seed_store()
    out = tmp_path / f"chat.{fmt}.json"
    assert run_cli("sessions", "export", conv_id, "--format", fmt, "-o", str(out)).returncode == 0
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    imported = run_cli("sessions", "import", str(out))
    assert imported.returncode == 0, imported.stderr
    with Store() as store:
        original = store.get(conv_id)
        copy = store.get(store.resolve(imported.stdout.split(" as ")[1].split()[0]))
    assert [(m.role, m.content) for m in copy.messages] == [
        (m.role, m.content) for m in original.messages
    ]
    if fmt == "json":
        assert copy.system_message == "Be brief."
        assert copy.messages[1].seed == 3
        reply = copy.messages[1]  # what wrote each reply travels with it
        assert (reply.model, reply.backend, reply.template, reply.settings) == (
            "SmolLM2-135M-Instruct.Q4_1",
            "llamacpp",
            "vicuna_v1.1",
            {"temperature": 0.0},
        )
        assert copy.messages[3].finish_reason == "cancelled"


def test_fastchat_export_matches_its_save_format(home: Path) -> None:
    conv_id = seed_store()
    data = json.loads(run_cli("sessions", "export", conv_id, "--format", "fastchat").stdout)
    assert data == {
        "template_name": "vicuna_v1.1",
        "system_message": "Be brief.",
        "roles": ["USER", "ASSISTANT"],
        "messages": [
            ["USER", "What is a llama?"],
            ["ASSISTANT", "A camelid."],
            ["USER", "And an alpaca?"],
            ["ASSISTANT", "A smaller one."],
        ],
        "offset": 0,
    }


def test_markdown_export(home: Path) -> None:
    conv_id = seed_store()
    text = run_cli("sessions", "export", conv_id, "--format", "md").stdout
    assert text.startswith("# What is a llama?")
    assert "**User:**\n\nWhat is a llama?" in text
    assert "**Assistant:** _(cancelled)_" in text


def test_fastchat_save_file_with_a_one_shot_example(home: Path, tmp_path: Path) -> None:
    saved = {
        "template_name": "one_shot",
        "system_message": "sys",
        "roles": ["Human", "Assistant"],
        "messages": [
            ["Human", "example q"],
            ["Assistant", "example a"],
            ["Human", "real q"],
            ["Assistant", "real a"],
            ["Human", "next"],
            ["Assistant", None],
        ],
        "offset": 2,
    }
    path = tmp_path / "fc.json"
    path.write_text(json.dumps(saved))
    conv, messages = formats.read_conversation(path)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "real q"),
        ("assistant", "real a"),
        ("user", "next"),
    ]
    assert conv.template == "one_shot"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        (
            '{"messages": [["USER", "a"], ["ASSISTANT"]], "roles": ["USER", "ASSISTANT"]}',
            "message 2 is not a [role, text] pair",
        ),
        (
            '{"messages": [["USER", "a"], ["USER", "b"]], "roles": ["USER", "ASSISTANT"]}',
            "should be from the assistant",
        ),
        (
            '{"format": "vicuna-tui/1", "conversation": {}, "messages": [{"role": "x"}]}',
            "has role 'x'",
        ),
        ("[1, 2]", "[conversation 1] is not a conversation object"),
        ('{"hello": 1}', "not a conversation file"),
    ],
)
def test_broken_import_says_why_and_imports_nothing(
    home: Path, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run_cli("sessions", "import", str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    with Store() as store:
        assert store.listing.conversations() == []


def test_export_never_replaces_or_follows_a_link_without_being_told(
    home: Path, tmp_path: Path
) -> None:
    conv_id = seed_store()
    target = tmp_path / "mine.md"
    target.write_text("my notes\n")
    target.chmod(0o644)

    def export(path: Path, *extra: str) -> tuple[int, str]:
        result = run_cli("sessions", "export", conv_id, "-o", str(path), *extra)
        assert "Traceback" not in result.stderr
        return result.returncode, result.stderr

    code, said = export(target)
    assert code == 2 and "already exists" in said and "--force" in said
    assert target.read_text() == "my notes\n"  # untouched
    link = tmp_path / "link.md"
    link.symlink_to(target)
    code, said = export(link, "--force")
    assert code == 2 and "symbolic link" in said
    assert target.read_text() == "my notes\n"
    code, said = export(tmp_path)
    assert code == 2 and "is a folder" in said and "chat.md" in said
    code, said = export(tmp_path / "no" / "such" / "x.md")
    assert code == 2 and "does not exist" in said
    code, said = export(target, "--force")  # asked for: replaced, its mode kept
    assert code == 0 and target.read_text().startswith("#")
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    piped = run_cli("sessions", "export", conv_id, "-o", "-")
    assert piped.returncode == 0 and piped.stdout.startswith("#")


def test_replay_checks_its_answer_file_before_the_model_loads(home: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question_id": 1, "turns": ["hi"]}\n')
    for output, said in ((tmp_path, "is a folder"), (tmp_path / "no" / "a.jsonl", "not exist")):
        result = run_cli("replay", str(questions), "-o", str(output), "--model-path", "nowhere")
        assert result.returncode == 2 and said in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "loading" not in result.stderr


def test_json_nested_ten_thousand_deep_gets_a_message_not_a_traceback(
    home: Path, tmp_path: Path, smollm_gguf: Path
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 10_000 + "]" * 10_000)
    questions = tmp_path / "deep.jsonl"
    questions.write_text('{"turns": ' + "[" * 10_000 + "]" * 10_000 + "}\n")
    for args in (
        ("sessions", "import", str(deep)),
        ("replay", str(questions), "--model-path", str(smollm_gguf)),
        ("bench", str(questions), "--model-id", "x", "--model-path", str(smollm_gguf)),
    ):
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        assert "nests its JSON too deeply" in result.stderr and "Traceback" not in result.stderr
    # In a piped chat, !!load of such a file is refused and the chat goes on.
    piped = run_cli(
        "--model-path", str(smollm_gguf), "--style", "simple", "--temperature", "0",
        "--max-new-tokens", "4",
        input=f"!!load {deep}\nSay hi.\n",
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert "nests its JSON too deeply" in piped.stderr
    assert piped.stdout.strip()  # only the reply: the question after it was answered


def test_a_sharegpt_dataset_imports_every_conversation_and_names_the_bad_ones(
    home: Path, tmp_path: Path
) -> None:
    def chat(question: str, answer: object) -> dict[str, object]:
        return {
            "id": question,
            "conversations": [
                {"from": "human", "value": question},
                {"from": "gpt", "value": answer},
            ],
        }

    dataset = tmp_path / "sharegpt.json"
    dataset.write_text(
        json.dumps([chat("Name a colour.", "Blue."), chat("Broken?", None), chat("Hi?", "Hello.")])
    )
    result = run_cli("sessions", "import", str(dataset))
    assert result.returncode == 0, result.stderr
    assert "imported 2 conversations (4 messages)" in result.stdout
    assert f"{dataset} [conversation 2]: turn 2 value must be text, not NoneType" in result.stderr
    with Store() as store:
        titles = sorted(c.title for c in store.listing.conversations())
    assert titles == ["Hi?", "Name a colour."]
    single = tmp_path / "one.json"
    single.write_text(json.dumps(chat("Alone?", None)))
    refused = run_cli("sessions", "import", str(single))
    assert refused.returncode == 2 and f"{single}: turn 2 value must be text" in refused.stderr
    # one conversation is what !!load takes: a dataset is pointed to `sessions import`
    with pytest.raises(formats.FormatError) as caught:
        formats.read_conversation(dataset)
    assert "holds 3 conversations" in caught.value.message
    assert "sessions import" in caught.value.hint


def test_a_sharegpt_dataset_of_a_thousand_conversations(home: Path, tmp_path: Path) -> None:
    chats: list[dict[str, Any]] = [
        {
            "id": str(n),
            "conversations": [
                {"from": "human", "value": f"Question {n}?"},
                {"from": "gpt", "value": f"Answer {n}."},
            ],
        }
        for n in range(1000)
    ]
    chats[500]["conversations"][0]["from"] = "bing"  # one odd entry, as real dumps have
    dataset = tmp_path / "sharegpt_1000.json"
    dataset.write_text(json.dumps(chats))
    result = run_cli("sessions", "import", str(dataset))
    assert result.returncode == 0, result.stderr
    assert "imported 999 conversations (1998 messages)" in result.stdout
    assert "[conversation 501]: turn 1 is from 'bing'" in result.stderr
    with Store() as store:
        assert store.listing.count() == 999
