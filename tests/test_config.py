"""config.toml: reading, validation, precedence, `config` commands, broken files."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest
from helpers import run_cli

from vicuna_tui import config as config_mod
from vicuna_tui import locations, runtime
from vicuna_tui.cli import build_parser
from vicuna_tui.errors import SettingsError


def write_config(text: str) -> Path:
    path = locations.config_path()
    locations.ensure_private_dir(path.parent)
    path.write_text(text)
    return path


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_precedence_flag_over_profile_over_config_over_default(home: Path) -> None:
    write_config(
        'temperature = 0.3\nmax_new_tokens = 100\ndevice = "cpu"\n'
        '[profiles.fast]\ntemperature = 0.1\nmodel_path = "/models/small"\n'
    )
    plain = runtime.resolve(args())
    assert plain.generation.temperature == 0.3
    assert plain.generation.max_new_tokens == 100
    assert plain.generation.top_p == 1.0  # built-in default
    assert plain.load.device == "cpu"
    profiled = runtime.resolve(args("--profile", "fast"))
    assert profiled.generation.temperature == 0.1
    assert profiled.load.model_path == "/models/small"
    assert profiled.generation.max_new_tokens == 100  # from config under the profile
    flagged = runtime.resolve(args("--profile", "fast", "--temperature", "0.9"))
    assert flagged.generation.temperature == 0.9


def test_unknown_profile(home: Path) -> None:
    write_config("[profiles.a]\ntemperature = 0.1\n")
    with pytest.raises(SettingsError, match="no profile 'b'") as info:
        runtime.resolve(args("--profile", "b"))
    assert "profiles: a" in info.value.hint


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("temperature = \n", ["is not valid TOML", "line 1"]),
        ("temprature = 0.5\n", ["unknown setting 'temprature'", "known: "]),
        ("temperature = 7\n", ["temperature = 7 is out of range", "a number in [0, 2]"]),
        ('device = "gpu"\n', ["device = 'gpu' is out of range", "one of auto, cuda, mps, cpu"]),
        ('[keys]\nfly = "f9"\n', ["unknown action 'fly'"]),
    ],
)
def test_broken_config_is_reported_and_never_overwritten(
    home: Path, text: str, words: list[str]
) -> None:
    path = write_config(text)
    cfg = config_mod.load()
    assert cfg.error is not None
    message = f"{cfg.error.message} {cfg.error.hint}"
    assert str(path) in message
    for word in words:
        assert word in message
    resolved = runtime.resolve(args())  # runs on defaults, with a warning
    assert resolved.generation.temperature == 0.7
    assert resolved.warnings and str(path) in resolved.warnings[0]
    with pytest.raises(SettingsError, match="not writing"):
        config_mod.set_value("temperature", "0.2")
    assert path.read_text() == text


def test_set_validates_and_writes_private_toml(home: Path) -> None:
    assert config_mod.set_value("temperature", "0.25") == 0.25
    assert config_mod.set_value("profiles.big.load_8bit", "true") is True
    assert config_mod.set_value("keys.regenerate", "f9") == "f9"
    with pytest.raises(SettingsError, match="out of range"):
        config_mod.set_value("top_p", "2")
    with pytest.raises(SettingsError, match="unknown setting"):
        config_mod.set_value("tempo", "1")
    cfg = config_mod.load()
    assert cfg.error is None
    assert cfg.values == {"temperature": 0.25}
    assert cfg.profiles == {"big": {"load_8bit": True}}
    assert cfg.key_bindings()["regenerate"] == "f9"
    assert stat.S_IMODE(cfg.path.stat().st_mode) == 0o600
    config_mod.set_value("temperature", None)
    assert "temperature" not in config_mod.load().values


def test_set_values_writes_all_or_nothing(home: Path) -> None:
    config_mod.set_value("temperature", "0.25")
    before = config_mod.load().path.read_text()
    with pytest.raises(SettingsError, match="unknown setting 'tempo'"):
        config_mod.set_values({"top_p": "0.5", "tempo": "1"})
    assert config_mod.load().path.read_text() == before  # the valid one was not written
    stored = config_mod.set_values({"top_p": "0.5", "max_new_tokens": "64", "temperature": None})
    assert stored == {"top_p": 0.5, "max_new_tokens": 64, "temperature": None}
    assert config_mod.load().values == {"top_p": 0.5, "max_new_tokens": 64}


def test_config_commands(home: Path) -> None:
    assert run_cli("config", "path").stdout.strip() == str(locations.config_path())
    result = run_cli("config", "set", "temperature", "3")
    assert result.returncode == 2
    assert "allowed: a number in [0, 2]" in result.stderr
    assert run_cli("config", "set", "temperature", "0.4").returncode == 0
    assert run_cli("config", "set", "api_key", "sk-secret-123").returncode == 0
    shown = run_cli("config", "show")
    assert "temperature = 0.4" in shown.stdout
    assert "sk-secret-123" not in shown.stdout  # secrets are masked
    write_config("temperature = [\n")
    broken = run_cli("config", "show")
    assert broken.returncode == 2
    assert "not valid TOML" in broken.stderr


def test_config_set_keeps_the_users_comments_line_endings_and_bom(home: Path) -> None:
    """A file written in Notepad: a byte-order mark, CRLF, the user's notes."""
    path = locations.config_path()
    locations.ensure_private_dir(path.parent)
    original = (
        "# my settings: keep the replies short\r\n"
        "temperature = 0.5  # warm enough\r\n"
        "\r\n"
        "[profiles.fast]\r\n"
        "# the small model, for quick questions\r\n"
        "max_new_tokens = 64\r\n"
    )
    path.write_bytes(b"\xef\xbb\xbf" + original.encode())
    assert config_mod.load(path).values["temperature"] == 0.5  # the BOM is tolerated
    shown = run_cli("config", "show")
    assert shown.returncode == 0 and "temperature = 0.5" in shown.stdout

    assert run_cli("config", "set", "temperature", "0.2").returncode == 0
    assert run_cli("config", "set", "profiles.fast.top_p", "0.9").returncode == 0
    assert run_cli("config", "set", "keys.regenerate", "f5").returncode == 0
    assert run_cli("config", "unset", "profiles.fast.max_new_tokens").returncode == 0

    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw[3:].decode()
    assert "\n" not in text.replace("\r\n", "")  # every line still ends in CRLF
    for note in ("# my settings: keep the replies short", "# warm enough", "# the small model"):
        assert note in text
    assert text.index("# my settings") < text.index("temperature = 0.2")
    assert text.index("temperature") < text.index("[profiles.fast]")  # order kept
    loaded = config_mod.load(path)
    assert loaded.error is None
    assert loaded.values["temperature"] == 0.2
    assert loaded.profiles["fast"] == {"top_p": 0.9}
    assert loaded.keys["regenerate"] == "f5"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
