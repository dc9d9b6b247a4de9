"""The flag groups that the chat and ``replay`` commands share."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from vicuna_tui.config import REMOTE_FIELDS
from vicuna_tui.engine.constraints import (
    OutputConstraint,
    grammar_constraint,
    schema_constraint,
)
from vicuna_tui.engine.settings import (
    CHAT_FIELDS,
    GENERATION_FIELDS,
    LOAD_FIELDS,
    FieldSpec,
    GenerationSettings,
    LoadSettings,
    RemoteSettings,
)
from vicuna_tui.engine.templates import TEMPLATES


def _add_flag(group: argparse._ArgumentGroup, spec: FieldSpec, default: Any) -> None:
    """A setting's flag, from its declaration: a switch for a bool (absent: None, so
    config.toml decides), else a value that ``FieldSpec.parse`` checks later."""
    if spec.secret:
        return
    names = (spec.flag, *spec.flags[1:])
    if spec.kind is bool:
        group.add_argument(
            *names,
            dest=spec.name,
            action="store_const",
            const=spec.switch,
            help=spec.switch_help or spec.help,
        )
    elif spec.kind is list:
        group.add_argument(
            *names, dest=spec.name, action="append", help=f"{spec.help} (repeatable)"
        )
    else:
        group.add_argument(
            *names, dest=spec.name, choices=spec.choices or None, help=spec.flag_help(default)
        )


def _add_flags(
    group: argparse._ArgumentGroup, specs: Mapping[str, FieldSpec], defaults: Mapping[str, Any]
) -> None:
    for spec in specs.values():
        _add_flag(group, spec, defaults.get(spec.name))


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    # Each flag, its help and its default come from the setting's declaration.
    g = parser.add_argument_group("model and device")
    _add_flags(g, LOAD_FIELDS, vars(LoadSettings()))
    g.add_argument("--profile", help="a [profiles.NAME] section of config.toml")
    add_remote_flags(parser)


def add_remote_flags(parser: argparse.ArgumentParser) -> None:
    r = parser.add_argument_group("remote server (OpenAI-compatible)")
    defaults = vars(RemoteSettings(""))
    _add_flags(r, REMOTE_FIELDS, {**defaults, "remote_model": defaults["model"]})


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("prompt and sampling")
    others = ", ".join(("tokenizer", *TEMPLATES))
    _add_flags(g, CHAT_FIELDS, {"template": f"auto; others: {others}"})
    _add_flags(g, GENERATION_FIELDS, vars(GenerationSettings()))


def add_constraint_flags(parser: argparse.ArgumentParser) -> None:
    """Output that must parse (-p, the pipe, the line chat and bench)."""
    c = parser.add_argument_group("output that must parse (llama.cpp, or a server's json_schema)")
    held = c.add_mutually_exclusive_group()
    held.add_argument(
        "--json-schema",
        metavar="FILE|JSON",
        help="every reply is JSON valid under this schema (checked before it is printed)",
    )
    held.add_argument(
        "--grammar", metavar="FILE", help="every reply follows this GBNF grammar (llama.cpp)"
    )


def constraint_from_args(args: argparse.Namespace) -> OutputConstraint | None:
    """The schema or grammar the flags name, read and bounded; None without either."""
    if args.json_schema:
        return schema_constraint(args.json_schema)
    if args.grammar:
        return grammar_constraint(args.grammar)
    return None
