"""Text for widgets: literal (never markup) and with nothing a terminal could act on."""

from __future__ import annotations

from textual.content import Content

from vicuna_tui.textsafe import terminal_safe


def plain(text: str) -> Content:
    """``text`` as it is, shown literally, with control characters removed: model
    names, titles, file names and errors come from files and models we do not trust."""
    return Content(terminal_safe(text))
