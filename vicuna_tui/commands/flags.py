"""The flag groups that the chat and ``replay`` commands share."""

from __future__ import annotations

import argparse
from typing import Any

from vicuna_tui.engine.settings import (
    GENERATION_FIELDS,
    LOAD_FIELDS,
    FieldSpec,
    GenerationSettings,
    LoadSettings,
)


def _add_flag(group: argparse._ArgumentGroup, spec: FieldSpec, default: Any) -> None:
    """A setting's flag, from its declaration: a switch for a bool (absent: None, so
    config.toml decides), else a value that ``FieldSpec.parse`` checks later."""
    if spec.kind is bool:
        group.add_argument(spec.flag, action="store_const", const=True, help=spec.help)
    elif spec.kind is list:
        group.add_argument(spec.flag, action="append", help=f"{spec.help} (repeatable)")
    else:
        group.add_argument(spec.flag, choices=spec.choices or None, help=spec.flag_help(default))


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    # Each flag, its help and its default come from the setting's declaration.
    g = parser.add_argument_group("model and device")
    defaults = LoadSettings()
    for spec in LOAD_FIELDS.values():
        _add_flag(g, spec, getattr(defaults, spec.name))
    g.add_argument("--profile", help="a [profiles.NAME] section of config.toml")
    add_remote_flags(parser)


def add_remote_flags(parser: argparse.ArgumentParser) -> None:
    r = parser.add_argument_group("remote server (OpenAI-compatible)")
    r.add_argument("--endpoint", help="server URL, e.g. http://gpu-box:8000/v1")
    r.add_argument("--model", dest="remote_model", help="model name on the server")
    r.add_argument(
        "--api-key-env", help="environment variable with the API key (default: OPENAI_API_KEY)"
    )
    r.add_argument("--request-timeout", help="seconds to wait for the server (default 600)")
    r.add_argument(
        "--insecure",
        dest="verify_tls",
        action="store_const",
        const=False,
        help="do not check the server's TLS certificate",
    )


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("prompt and sampling")
    g.add_argument(
        "--conv-template",
        "--template",
        dest="template",
        help="prompt template: auto (default), tokenizer, vicuna_v1.1, one_shot, "
        "zero_shot, llama-2, chatml, alpaca",
    )
    g.add_argument(
        "--conv-system-msg",
        "--system-message",
        dest="system_message",
        help="replace the template's system message",
    )
    # Each sampling flag, its help and its default come from the setting's declaration.
    defaults = GenerationSettings()
    for spec in GENERATION_FIELDS.values():
        _add_flag(g, spec, getattr(defaults, spec.name))
