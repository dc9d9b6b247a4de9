"""The sampling temperature of each question category: FastChat's by default, or a
small TOML file of ``category = temperature`` lines (with an optional ``default``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vicuna_tui import bounded
from vicuna_tui.errors import SettingsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# FastChat's temperature per MT-bench category (fastchat/llm_judge/common.py);
# categories it does not list are sampled at 0.7.
FASTCHAT_TEMPERATURES: Mapping[str, float] = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
    "arena-hard-200": 0.0,
}
DEFAULT_TEMPERATURE = 0.7
_EXAMPLE = "e.g. math = 0.0 and default = 0.7, one per line"


@dataclass(frozen=True)
class Temperatures:
    by_category: Mapping[str, float] = field(default_factory=lambda: dict(FASTCHAT_TEMPERATURES))
    default: float = DEFAULT_TEMPERATURE

    def of(self, category: object) -> float:
        return self.by_category.get(str(category or ""), self.default)


def read_temperatures(path: Path) -> Temperatures:
    """FastChat's table, with the file's lines over it.  A bad file is refused whole,
    with the line to fix named."""
    try:
        data = tomllib.loads(
            bounded.read_text(path, limit=bounded.LINES_LIMIT, what="temperature file")
        )
    except bounded.InputError as exc:
        message = exc.message.replace("no such file:", "no such temperature file:")
        raise SettingsError(message, exc.hint) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not TOML ({exc})", _EXAMPLE) from None
    table = data.get("temperatures", data)  # a [temperatures] table, or bare lines
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [temperatures] must be a table", _EXAMPLE)
    values: dict[str, float] = {}
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 2:
            raise SettingsError(
                f"{path}: {name} = {value!r} is not a temperature", "use a number from 0 to 2"
            )
        values[name] = float(value)
    default = values.pop("default", DEFAULT_TEMPERATURE)
    return Temperatures({**FASTCHAT_TEMPERATURES, **values}, default)
