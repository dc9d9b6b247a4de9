"""Every path vicuna-tui reads or writes comes from here.

Paths follow the platform's conventions (platformdirs).  Setting the environment
variable ``VICUNA_TUI_HOME`` redirects all of them below one folder, which is what
the tests use.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TextIO

APP_NAME = "vicuna-tui"
HOME_ENV = "VICUNA_TUI_HOME"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else None


def home_problem() -> str | None:
    """What is wrong with ``VICUNA_TUI_HOME`` as a folder for everything, or None (it
    may not exist yet: it is created when first written)."""
    home = _home()
    if home is None or home.is_dir() or not os.path.lexists(home):
        return None
    if home.is_symlink() and not home.exists():
        return f"{HOME_ENV} is {home}, a symbolic link that leads nowhere"
    return f"{HOME_ENV} is {home}, which is a file, where a folder is needed"


def _platform_dir(kind: str) -> Path:
    import platformdirs

    getter = {
        "config": platformdirs.user_config_dir,
        "data": platformdirs.user_data_dir,
        "cache": platformdirs.user_cache_dir,
        "log": platformdirs.user_log_dir,
    }[kind]
    return Path(getter(APP_NAME, appauthor=False))


def _dir(kind: str) -> Path:
    home = _home()
    return home / kind if home is not None else _platform_dir(kind)


def config_dir() -> Path:
    return _dir("config")


def data_dir() -> Path:
    return _dir("data")


def cache_dir() -> Path:
    return _dir("cache")


def log_dir() -> Path:
    return _dir("log")


def config_path() -> Path:
    return config_dir() / "config.toml"


def database_path() -> Path:
    return data_dir() / "conversations.db"


def engine_log_path() -> Path:
    """engine.log: the model process's own output, and library warnings (folder created)."""
    return ensure_private_dir(log_dir()) / "engine.log"


def backup_dir() -> Path:
    """Rolling daily backups of the conversation database."""
    return data_dir() / "backups"


def gguf_cache_dir() -> Path:
    """Where ``.gguf`` files are converted to safetensors once, then loaded from."""
    return cache_dir() / "gguf-converted"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` readable by the user alone (0700), and any missing parents too."""
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> None:
    """Make an existing file readable by the user alone (0600)."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)


def open_private(path: Path, *, append: bool = False) -> TextIO:
    """A text file that only the user can read (0600 whatever the umask), for writing:
    truncated, or appended to with ``append``."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a" if append else "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise
