"""Paths from a user that are not what they seem: a home that is a file, links in a loop
or to nothing, a GGUF without its extension, a conversion killed halfway.  The real CLI
in a subprocess; each gets a message that names the real problem and the fix."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import run_cli

from vicuna_tui.engine import sources
from vicuna_tui.engine.transformers import gguf_cache


def calm(result: subprocess.CompletedProcess[str]) -> str:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text[-2000:]
    return text


def test_a_home_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    env = {"VICUNA_TUI_HOME": str(home)}
    for command in (["sessions", "list"], ["config", "set", "temperature", "0.3"], ["-p", "hi"]):
        result = run_cli(*command, env=env)
        text = calm(result)
        assert result.returncode == 2, text
        assert f"VICUNA_TUI_HOME is {home}, which is a file, where a folder is needed" in text
        assert "read-only" not in text and "set VICUNA_TUI_HOME to a folder" in text
    assert home.read_text() == "not a folder"  # nothing of the user's touched


def test_a_folder_where_a_file_should_be_made_is_named(tmp_path: Path) -> None:
    """The data folder's place taken by a file (under a real home folder)."""
    from vicuna_tui import writable

    (tmp_path / "data").write_text("in the way")
    problem = writable.write_problem(tmp_path / "data" / "conversations.db")
    assert problem == f"{tmp_path / 'data'} is a file, where a folder is needed"
    assert "move or rename that file" in writable.fix_for(problem)


def test_links_in_a_loop_or_to_nothing_are_named(tmp_path: Path, home: Path) -> None:
    loop_a, loop_b = tmp_path / "models" / "a", tmp_path / "models" / "b"
    loop_a.parent.mkdir()
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    dangling = tmp_path / "models" / "gone"
    dangling.symlink_to(tmp_path / "deleted.gguf")
    for path, words in (
        (loop_a, "is a symbolic link in a loop"),
        (dangling, f"is a symbolic link to {tmp_path / 'deleted.gguf'}, which does not exist"),
    ):
        for backend in ("auto", "llamacpp", "transformers"):
            result = run_cli("-p", "hi", "--model-path", str(path), "--backend", backend)
            text = calm(result)
            assert result.returncode == 2, text
            assert words in text and "pass the real path" in text, text
            assert "Hugging Face" not in text  # not taken for a Hub id (owner/name)


@pytest.mark.real_model
def test_a_gguf_is_known_by_its_bytes_not_its_name(
    tmp_path: Path, home: Path, smollm_gguf: Path
) -> None:
    link = tmp_path / "my-model"  # a link, or a download saved without the extension
    link.symlink_to(smollm_gguf)
    assert sources.is_gguf(link) and sources.wants_gguf(str(link), None)
    not_gguf = tmp_path / "notes.txt"
    not_gguf.write_text("GGUX and more")
    assert not sources.is_gguf(not_gguf) and not sources.wants_gguf(str(not_gguf), None)
    result = run_cli("-p", "Say hi.", "--model-path", str(link), "--max-new-tokens", "4", "--stats")
    text = calm(result)
    assert result.returncode == 0 and result.stdout.strip(), text
    assert "llama.cpp" in result.stderr  # the fast route, not a conversion for torch
    assert not list(home.glob("**/gguf-converted/*"))  # nothing converted


def test_a_conversion_killed_halfway_leaves_nothing_behind(tmp_path: Path) -> None:
    """Ctrl-C or a kill during a GGUF conversion leaves a `.converting-PID-…` folder; the
    next conversion removes those of processes that are gone, and no other."""
    root = tmp_path / "gguf"
    root.mkdir()
    dead = root / ".converting-999999999-abcd"  # no such process
    (dead / "model").mkdir(parents=True)
    (dead / "model" / "weights.safetensors").write_bytes(b"\0" * 1024)
    older = root / ".converting-k2j3h4"  # from before the folders carried a process id
    older.mkdir()
    alive = root / f".converting-{os.getpid()}-efgh"  # this process: still converting
    alive.mkdir()
    finished = root / "smollm-1234"
    finished.mkdir()
    assert sorted(gguf_cache.sweep_abandoned(root)) == sorted([dead, older])
    assert not dead.exists() and not older.exists()
    assert alive.exists() and finished.exists()


def test_bench_refuses_a_folder_or_a_link_as_its_answer_file(
    tmp_path: Path, home: Path, smollm_gguf: Path
) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question_id": 1, "category": "x", "turns": ["Hi?"]}\n')
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("someone's file\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    (tmp_path / "answers").mkdir()
    for output, words in (
        (tmp_path / "answers", "is a folder"),
        (link, "is a symbolic link"),
    ):
        result = run_cli(
            "bench", str(questions), "--model-id", "m", "-o", str(output),
            "--model-path", str(smollm_gguf),
        )  # fmt: skip
        text = calm(result)
        assert result.returncode == 2 and words in text, text
        assert "loading" not in text  # refused before the model loads
    assert target.read_text() == "someone's file\n"


@pytest.mark.real_model
def test_save_in_a_chat_never_replaces_a_file_without_force(
    tmp_path: Path, home: Path, smollm_gguf: Path
) -> None:
    existing = tmp_path / "chat.json"
    existing.write_text("my notes\n")
    existing.chmod(0o644)
    target = tmp_path / "target.json"
    target.write_text("someone's file\n")
    (tmp_path / "link.json").symlink_to(target)
    (tmp_path / "folder.json").mkdir()
    script = "\n".join(
        [
            "Hello",
            f"!!save {existing}",
            f"!!save {tmp_path / 'link.json'} --force",
            f"!!save {tmp_path / 'missing' / 'chat.json'}",
            f"!!save {tmp_path / 'folder.json'}",
            f"!!save {existing} --force",
            "Still here?",
        ]
    )
    result = run_cli(
        "--style", "simple", "--model-path", str(smollm_gguf), "--max-new-tokens", "4",
        input=script + "\n",
    )  # fmt: skip
    text = calm(result)
    assert result.returncode == 0, text
    assert f"not saved: {existing} already exists (!!save {existing} --force" in text
    assert "is a symbolic link" in text and "does not exist" in text and "is a folder" in text
    assert target.read_text() == "someone's file\n"  # never written through the link
    assert f"saved to {existing}" in text  # with --force
    assert '"from": "human"' in existing.read_text() or "Hello" in existing.read_text()
    assert oct(existing.stat().st_mode & 0o777) == oct(0o644)  # its mode kept
    assert text.count("[stats]") == 2  # two replies: a refused save never ends the chat
