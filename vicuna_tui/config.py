"""Settings in TOML: ``config.toml`` in the user config folder.

Read with ``tomllib``; edited with ``tomlkit``, which keeps the user's comments, order,
line endings and byte-order mark.  Top-level keys are defaults for any
setting (model, device, sampling, template, theme, remote); ``[profiles.NAME]`` holds
named model profiles (``--profile NAME``); ``[keys]`` overrides key bindings.

Precedence: command-line flag > profile > config > built-in default.

A broken file (bad TOML, unknown key, value out of range) is reported with the file,
the line or key and the allowed values; the app then runs on defaults and never
overwrites the broken file.
"""

from __future__ import annotations

import codecs
import os
import re
import sys
import tempfile
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vicuna_tui import locations
from vicuna_tui.engine.settings import (
    CHAT_FIELDS,
    GENERATION_FIELDS,
    LOAD_FIELDS,
    FieldSpec,
    parse_fields,
)
from vicuna_tui.errors import SettingsError
from vicuna_tui.keymap import DEFAULT_KEYS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UI_FIELDS: dict[str, FieldSpec] = {
    "theme": FieldSpec("theme", str, "Textual theme name"),
}
REMOTE_FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec(
            "endpoint",
            str,
            "OpenAI-compatible server, e.g. http://host:8000/v1",
            optional=True,
            pattern=re.compile(r"^https?://[^\s/]+\S*$"),
            pattern_help="an http:// or https:// URL, e.g. http://gpu-box:8000/v1",
            reload=True,
            label="Endpoint (OpenAI-compatible, e.g. http://host:8000/v1)",
        ),
        FieldSpec(
            "remote_model",
            str,
            "model name on the server",
            optional=True,
            reload=True,
            flags=("--model",),
        ),
        FieldSpec("api_key_env", str, "environment variable holding the API key", reload=True),
        FieldSpec(
            "api_key",
            str,
            "API key (prefer api_key_env)",
            optional=True,
            reload=True,
            secret=True,
        ),
        FieldSpec(
            "request_timeout",
            float,
            "seconds to wait for the server",
            minimum=1.0,
            maximum=3600.0,
            reload=True,
        ),
        FieldSpec(
            "verify_tls",
            bool,
            "check the server's TLS certificate",
            reload=True,
            flags=("--insecure",),
            switch=False,
            switch_help="do not check the server's TLS certificate",
        ),
    )
}
SETTING_FIELDS: dict[str, FieldSpec] = {
    **LOAD_FIELDS,
    **GENERATION_FIELDS,
    **CHAT_FIELDS,
    **UI_FIELDS,
    **REMOTE_FIELDS,
}
SECRET_KEYS = frozenset(name for name, spec in SETTING_FIELDS.items() if spec.secret)


@dataclass
class Config:
    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    error: SettingsError | None = None

    def settings(self, profile: str | None = None) -> dict[str, Any]:
        """Config defaults with ``profile`` laid over them."""
        merged = dict(self.values)
        if profile:
            if profile not in self.profiles:
                known = ", ".join(sorted(self.profiles)) or "none defined"
                raise SettingsError(f"no profile {profile!r} in {self.path}", f"profiles: {known}")
            merged.update(self.profiles[profile])
        return merged

    def key_bindings(self) -> dict[str, str]:
        return {**DEFAULT_KEYS, **self.keys}


def _validate(data: Mapping[str, Any], path: Path) -> Config:
    config = Config(path=path)
    for key, value in data.items():
        if key == "profiles":
            if not isinstance(value, dict):
                raise SettingsError(
                    f"{path}: [profiles] must be a table of tables",
                    "write [profiles.NAME] sections",
                )
            for name, table in value.items():
                if not isinstance(table, dict):
                    raise SettingsError(
                        f"{path}: profiles.{name} must be a table",
                        f"write a [profiles.{name}] section",
                    )
                config.profiles[name] = parse_fields(
                    SETTING_FIELDS, table, f"{path} [profiles.{name}]"
                )
        elif key == "keys":
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: [keys] must be a table", "write a [keys] section")
            for action, binding in value.items():
                if action not in DEFAULT_KEYS:
                    raise SettingsError(
                        f"unknown action {action!r} in {path} [keys]",
                        "actions: " + ", ".join(sorted(DEFAULT_KEYS)),
                    )
                if not isinstance(binding, str) or not binding.strip():
                    raise SettingsError(
                        f"keys.{action} in {path} must be a key name", 'e.g. "ctrl+r" or "f5"'
                    )
                config.keys[action] = binding.strip()
        else:
            config.values.update(parse_fields(SETTING_FIELDS, {key: value}, str(path)))
    return config


def load(path: Path | None = None) -> Config:
    """Read the config.  Never raises for a broken file: see ``Config.error``."""
    path = path or locations.config_path()
    if not path.exists():
        return Config(path=path)
    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        return Config(
            path=path,
            error=SettingsError(
                f"{path} is not valid TOML: {exc}",
                "fix that line; until then vicuna-tui runs on defaults and does not write the file",
            ),
        )
    except (OSError, UnicodeDecodeError) as exc:
        return Config(
            path=path,
            error=SettingsError(f"cannot read {path}: {exc}", "check the file's permissions"),
        )
    try:
        return _validate(data, path)
    except SettingsError as exc:
        return Config(
            path=path,
            error=SettingsError(
                exc.message,
                exc.hint + "; until then vicuna-tui runs on defaults and does not write the file",
            ),
        )


def _write(path: Path, text: str) -> None:
    try:
        _write_file(path, text)
    except OSError as exc:
        from vicuna_tui import writable

        problem = writable.os_error_problem(exc, path)
        raise SettingsError(
            f"cannot save the settings to {path}: {problem}", writable.fix_for(problem)
        ) from None


def _write_file(path: Path, text: str) -> None:
    """Replace the file at once (never half written), 0600 in a 0700 folder."""
    locations.ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_text(path: Path) -> str:
    """The file's text; a UTF-8 byte-order mark (Notepad writes one) is not part of it."""
    return path.read_bytes().decode("utf-8-sig")


def set_value(dotted_key: str, value: Any, path: Path | None = None) -> Any:
    """Validate and store one setting: ``temperature``, ``profiles.NAME.KEY`` or
    ``keys.ACTION``.  A ``None`` value removes the key.  Returns the stored value."""
    return set_values({dotted_key: value}, path)[dotted_key]


def set_values(values: Mapping[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Validate and store several settings with one read and one write of the file (all
    or none).  Returns what was stored for each key."""
    path = path or locations.config_path()
    current = load(path)
    if current.error is not None:
        raise SettingsError(
            f"not writing {path}: {current.error.message}", "fix the file by hand first"
        )
    # The user's file is edited, not rewritten: comments, order, blank lines, line
    # endings and a byte-order mark stay as they were (tomlkit keeps them).
    import tomlkit

    raw = path.read_bytes() if path.exists() else b""
    source = raw.decode("utf-8-sig")
    document = tomlkit.parse(source)
    stored = {key: _put(document, key, value) for key, value in values.items()}
    text = tomlkit.dumps(document)
    if "\r\n" in source:  # new lines follow the file's own endings
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    if raw.startswith(codecs.BOM_UTF8):
        text = "\ufeff" + text
    _write(path, text)
    return stored


def _put(data: MutableMapping[str, Any], dotted_key: str, value: Any) -> Any:
    """Set (or with None remove) one setting in the raw TOML data."""
    spec, target, key = _place(data, dotted_key)
    parsed = None if value is None else spec.parse(value)
    if parsed is None:
        target.pop(key, None)
    else:
        target[key] = parsed
    return parsed


def _place(
    data: MutableMapping[str, Any], dotted_key: str
) -> tuple[FieldSpec, MutableMapping[str, Any], str]:
    """The spec of a dotted key, the table it lives in, and its name there."""
    parts = dotted_key.split(".")
    if len(parts) == 1 or (len(parts) == 3 and parts[0] == "profiles"):
        spec = SETTING_FIELDS.get(parts[-1])
        if spec is None:
            raise SettingsError(
                f"unknown setting {parts[-1]!r}", "known: " + ", ".join(sorted(SETTING_FIELDS))
            )
        if len(parts) == 1:
            return spec, data, parts[0]
        return spec, data.setdefault("profiles", {}).setdefault(parts[1], {}), parts[2]
    if len(parts) == 2 and parts[0] == "keys":
        if parts[1] not in DEFAULT_KEYS:
            raise SettingsError(
                f"unknown action {parts[1]!r}", "actions: " + ", ".join(sorted(DEFAULT_KEYS))
            )
        return FieldSpec(parts[1], str, "key"), data.setdefault("keys", {}), parts[1]
    raise SettingsError(f"cannot set {dotted_key!r}", "use KEY, profiles.NAME.KEY or keys.ACTION")


def show(config: Config) -> dict[str, Any]:
    """The config as a dict for display, with secrets masked."""
    values = {k: ("********" if k in SECRET_KEYS else v) for k, v in config.values.items()}
    out: dict[str, Any] = dict(values)
    if config.profiles:
        out["profiles"] = {
            name: {k: ("********" if k in SECRET_KEYS else v) for k, v in table.items()}
            for name, table in config.profiles.items()
        }
    if config.keys:
        out["keys"] = dict(config.keys)
    return out
