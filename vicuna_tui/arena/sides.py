"""The arena's command line: which flags belong to which side.

``--model-path``, ``--endpoint`` and ``--profile`` each begin a side; the flags after
one (``--backend``, ``--model``, ``--temperature``, ...) belong to it until the next
begins.  Flags before the first side apply to both.  So::

    vicuna-tui arena --max-new-tokens 256 --model-path A --model-path B --load-8bit

runs A, and B in 8 bits, both with at most 256 new tokens.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from vicuna_tui import config as config_mod
from vicuna_tui.errors import SettingsError

SIDE_STARTS = ("--model-path", "--endpoint", "--profile")

NEED_TWO = (
    "give two models: --model-path A --model-path B (each side may instead be "
    "--endpoint URL --model NAME, or --profile NAME)"
)


def _starts_side(token: str) -> bool:
    return any(token == flag or token.startswith(flag + "=") for flag in SIDE_STARTS)


def split_sides(argv: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """(the flags both sides share, each side's own flags)."""
    shared: list[str] = []
    sides: list[list[str]] = []
    for token in argv:
        if _starts_side(token):
            sides.append([token])
        elif sides:
            sides[-1].append(token)
        else:
            shared.append(token)
    if len(sides) != 2:
        found = "one model was" if len(sides) == 1 else f"{len(sides)} models were"
        raise SettingsError(f"the arena needs two models; {found} given", NEED_TWO)
    return shared, sides


def describe_side(flags: Sequence[str]) -> str:
    """What a side runs, in the user's own words (for messages before anything loads)."""
    first = flags[0]
    value = first.split("=", 1)[1] if "=" in first else (flags[1] if len(flags) > 1 else "")
    kind = first.split("=", 1)[0].removeprefix("--").replace("-", " ")
    return f"{kind} {value}"


def typed_side(text: str, cfg: config_mod.Config, engine: str = "auto") -> argparse.Namespace:
    """A side as typed in the TUI: a profile's name, an ``http(s)://`` server URL and
    its model's name, or anything a ``--model-path`` takes, run by ``engine`` (auto,
    transformers or llamacpp; as ``--backend``)."""
    text = text.strip()
    if not text:
        raise SettingsError("a side of the arena is empty", "type a model path, Hub id or URL")
    if text in cfg.profiles:
        return argparse.Namespace(profile=text)
    if text.startswith(("http://", "https://")):
        endpoint, _, model = text.partition(" ")
        return argparse.Namespace(endpoint=endpoint, remote_model=model.strip() or None)
    if engine != "auto":
        return argparse.Namespace(model_path=text, backend=engine)
    return argparse.Namespace(model_path=text)
