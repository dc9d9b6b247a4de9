"""Read-only folders (a read-only bind mount when the tests run as root, chmod
otherwise): reading still works, writing says what is really wrong, and a chat still
answers without saving."""

from __future__ import annotations

from pathlib import Path

from helpers import read_only, run_cli

from vicuna_tui.engine.process import ProcessBackend
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.store import SavedMessage, Store


def seed() -> tuple[Path, str]:
    with Store() as store:
        for title in ("Llamas", "Alpacas", "Vicuñas"):
            conv = store.create_conversation(title=title, model_name="SmolLM2")
            store.add_message(conv.id, SavedMessage("user", f"Tell me about {title.lower()}."))
            store.add_message(conv.id, SavedMessage("assistant", f"{title} are camelids."))
        return store.path, conv.id


def quiet(result: object) -> None:
    text = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in text, text[-2000:]


def test_reading_works_and_writing_names_the_read_only_folder(home: Path) -> None:
    path, last = seed()
    before = path.read_bytes()
    with read_only(path.parent):
        listed = run_cli("sessions", "list")
        quiet(listed)
        assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3
        shown = run_cli("sessions", "show", last[:6])
        assert shown.returncode == 0 and "Vicuñas are camelids." in shown.stdout
        found = run_cli("sessions", "search", "alpacas")
        assert found.returncode == 0 and "Alpacas" in found.stdout
        for fmt in ("md", "json"):
            exported = run_cli("sessions", "export", "last", "--format", fmt)
            assert exported.returncode == 0 and "camelids" in exported.stdout
        checked = run_cli("sessions", "check")
        assert checked.returncode == 0 and "ok (3 conversations" in checked.stdout
        renamed = run_cli("sessions", "rename", "last", "New title")
        quiet(renamed)
        assert renamed.returncode == 2
        assert "read-only" in renamed.stderr and str(path.parent) in renamed.stderr
        assert "damaged" not in renamed.stderr and "not a readable" not in renamed.stderr
    assert path.read_bytes() == before


def test_reading_an_empty_read_only_home(home: Path) -> None:
    with read_only(home):
        listed = run_cli("sessions", "list")
        quiet(listed)
        assert listed.returncode == 0 and "no saved conversations yet" in listed.stdout


def test_a_chat_in_a_read_only_home_answers_and_says_once_it_is_not_saving(
    home: Path, smollm_gguf: Path
) -> None:
    path, _ = seed()
    before = path.read_bytes()
    with read_only(home):
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
    quiet(result)
    assert result.returncode == 0 and "Paris" in result.stdout
    assert result.stderr.count("not saving this chat") == 1
    assert "read-only" in result.stderr
    assert path.read_bytes() == before


def test_config_in_a_read_only_folder(home: Path) -> None:
    with read_only(home / "config"):
        result = run_cli("config", "set", "temperature", "0.5")
    quiet(result)
    assert result.returncode == 2
    assert "cannot save the settings" in result.stderr and "read-only" in result.stderr


def test_the_model_process_starts_when_the_log_folder_is_read_only(
    home: Path, smollm_gguf: Path
) -> None:
    backend = ProcessBackend(LoadSettings(model_path=str(smollm_gguf)))
    with read_only(home / "log"):
        info = backend.load()
    try:
        assert any("no engine.log this time" in n and "read-only" in n for n in info.notices)
    finally:
        backend.unload()


def test_a_read_only_conversion_cache_is_named_with_the_way_out(
    home: Path, smollm_gguf: Path
) -> None:
    with read_only(home / "cache"):
        result = run_cli("--model-path", str(smollm_gguf), "--backend", "transformers", "-p", "hi")
    quiet(result)
    assert result.returncode == 2
    assert "cannot convert" in result.stderr and "read-only" in result.stderr
    assert "--backend llamacpp" in result.stderr
