"""How a slow step reports progress: ``(stage, done, total)``, to a line front end's
progress line or the TUI's status bar."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]


def quiet(progress: Progress | None) -> Progress:
    """``progress``, or one that reports nowhere."""
    return progress or (lambda stage, done, total: None)
