"""Model text is data: it must never act on the terminal.

``terminal_safe`` removes every character a terminal could act on: C0 controls other
than newline and tab (ESC among them, so no escape sequence can start), DEL, the C1
controls (0x80-0x9F, which some terminals read as CSI/OSC), carriage return (which
could overwrite a line) and the bidirectional overrides (which could disguise text).
It works character by character, so it is safe on streamed fragments too.
"""

from __future__ import annotations

import json
import re
from typing import Any

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    return _UNSAFE.sub("", text)


def json_line(obj: Any) -> str:
    """One JSON object on one line, readable (UTF-8) but with nothing a terminal acts on."""
    return json_text(obj, indent=None)


def json_text(obj: Any, indent: int | None = 2) -> str:
    """JSON that keeps every character of the text exactly, readable (UTF-8), with the
    characters a terminal acts on written as escapes (``\\u001b``, ``\\u009b``): JSON
    itself escapes only C0, and a raw C1 control would reach a terminal that shows it."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
