"""Output that must parse: a JSON schema or a GBNF grammar that a reply is held to.

A schema or grammar comes from the user (a file, or JSON text on the command line) and
is untrusted: its size, its depth and every repetition count in it are bounded before
llama.cpp turns it into a sampler, so that it cannot hold the machine.  llama.cpp
enforces it while sampling; a server is asked to (``response_format``), and the front
end checks every reply against the schema before printing, so a server that ignored it
fails clearly.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicuna_tui.bounded import MiB, read_text
from vicuna_tui.errors import SettingsError, VicunaError

MAX_BYTES = MiB  # a schema or a grammar is a few KiB
MAX_DEPTH = 32  # nested schemas
MAX_REPEAT = 10_000  # the largest count a schema or grammar may ask for

JSON_SCHEMA = "json_schema"
GRAMMAR = "grammar"

_COUNT_KEYS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
_REPEAT = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")


class ConstraintError(VicunaError):
    """A reply that does not hold to its schema (or was cut before it could)."""


@dataclass(frozen=True)
class OutputConstraint:
    """What every reply must be: JSON valid under ``schema`` (``kind`` JSON_SCHEMA), or
    text of the GBNF ``grammar`` (GRAMMAR).  ``source`` names it in messages."""

    kind: str
    source: str
    schema: Any = None
    grammar: str = ""

    def record(self) -> dict[str, Any]:
        """As saved with each reply it shaped."""
        return {self.kind: self.schema if self.kind == JSON_SCHEMA else self.grammar}


# -- reading what the user gave ------------------------------------------------------------


def schema_constraint(value: str) -> OutputConstraint:
    """``--json-schema FILE|JSON``: a schema as JSON text (it starts with ``{``) or in a
    file; refused with a clear message when it cannot be read, is not a schema, or
    asks for more than the bounds allow."""
    text = value.strip()
    if text.startswith("{"):
        source = "the --json-schema text"
        if len(text.encode()) > MAX_BYTES:
            raise SettingsError(
                f"{source} is larger than {MAX_BYTES // MiB} MiB", "a schema is a few KiB"
            )
    else:
        source = value
        text = read_text(Path(value).expanduser(), limit=MAX_BYTES, what="JSON schema")
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"{source} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
            'give a JSON schema, e.g. --json-schema \'{"type": "object"}\'',
        ) from None
    if not isinstance(schema, dict):
        raise SettingsError(
            f"{source} is not a JSON schema (an object was expected)",
            'give an object, e.g. {"type": "object", "properties": {...}}',
        )
    _check_schema(schema, source, 0)
    return OutputConstraint(JSON_SCHEMA, source, schema=schema)


def grammar_constraint(path: str) -> OutputConstraint:
    """``--grammar FILE``: a GBNF grammar (llama.cpp's format), bounded in size and in
    every repetition count it asks for."""
    text = read_text(Path(path).expanduser(), limit=MAX_BYTES, what="grammar")
    if not re.search(r"^\s*root\s*::=", text, re.MULTILINE):
        raise SettingsError(
            f"{path} has no root rule",
            "a GBNF grammar starts from `root ::= ...` (see llama.cpp's grammars/README.md)",
        )
    for match in _REPEAT.finditer(text):
        counts = [int(g) for g in match.groups() if g]
        if max(counts) > MAX_REPEAT:
            raise SettingsError(
                f"{path} repeats a rule {max(counts)} times ({match.group(0)})",
                f"keep repetition counts at {MAX_REPEAT} or less",
            )
    return OutputConstraint(GRAMMAR, path, grammar=text)


def _check_schema(schema: Any, source: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise SettingsError(
            f"{source} nests schemas more than {MAX_DEPTH} deep", "flatten it ($defs help)"
        )
    if isinstance(schema, list):
        for item in schema:
            _check_schema(item, source, depth + 1)
        return
    if not isinstance(schema, dict):
        return
    for key in _COUNT_KEYS:
        value = schema.get(key)
        if isinstance(value, (int, float)) and value > MAX_REPEAT:
            raise SettingsError(
                f"{source} asks for {key} {value}", f"keep {key} at {MAX_REPEAT} or less"
            )
    for value in schema.values():
        if isinstance(value, (dict, list)):
            _check_schema(value, source, depth + 1)


# -- checking a reply ------------------------------------------------------------------------


def check_reply(constraint: OutputConstraint, text: str, finish_reason: str) -> Any:
    """The reply's JSON value when it holds to the schema; ConstraintError otherwise.
    (A grammar is llama.cpp's to enforce: only a reply cut short is refused.)"""
    if finish_reason == "length":
        raise ConstraintError(
            f"the reply was cut at the token limit before it completed {constraint.source}",
            "raise --max-new-tokens",
        )
    if constraint.kind != JSON_SCHEMA:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConstraintError(
            f"the reply is not JSON ({exc.msg} at character {exc.pos})",
            "the model or server did not hold to the schema: a server must support "
            "response_format json_schema; locally, run the model on llama.cpp",
        ) from None
    problems = schema_problems(constraint.schema, value)
    if problems:
        raise ConstraintError(
            f"the reply does not match {constraint.source}: {problems[0]}",
            "the model or server did not hold to the schema: a server must support "
            "response_format json_schema; locally, run the model on llama.cpp",
        )
    return value


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_problems(schema: Any, value: Any) -> list[str]:
    """Where ``value`` breaks ``schema`` (the keywords llama.cpp enforces: types,
    properties, required, additionalProperties, items, prefixItems, enum, const, the
    count and range bounds, pattern, anyOf/oneOf/allOf, local $refs), each as
    "PATH: why"; [] when it holds."""
    problems: list[str] = []
    _validate(schema, value, "$", schema, problems, 0)
    return problems


def _validate(
    schema: Any, value: Any, path: str, root: Any, problems: list[str], depth: int
) -> None:
    if depth > 4 * MAX_DEPTH:  # a $ref that leads back to itself
        problems.append(f"{path}: the schema refers to itself too deeply")
        return
    if schema is True or schema == {}:
        return
    if schema is False:
        problems.append(f"{path}: no value is allowed here")
        return
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(root, ref)
        if target is None:
            problems.append(f"{path}: the schema's $ref {ref!r} leads nowhere")
        else:
            _validate(target, value, path, root, problems, depth + 1)
    before = len(problems)
    _check_type(schema, value, path, problems)
    if len(problems) > before:
        return  # the rest would only repeat it
    _check_values(schema, value, path, problems)
    if isinstance(value, dict):
        _check_object(schema, value, path, root, problems, depth)
    elif isinstance(value, list):
        _check_array(schema, value, path, root, problems, depth)
    elif isinstance(value, str):
        _check_string(schema, value, path, problems)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_number(schema, value, path, problems)
    _check_choices(schema, value, path, root, problems, depth)


def _check_values(schema: dict[str, Any], value: Any, path: str, problems: list[str]) -> None:
    if "const" in schema and not _same(value, schema["const"]):
        problems.append(f"{path}: must be {json.dumps(schema['const'])}")
    if "enum" in schema and not any(_same(value, v) for v in schema["enum"]):
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        problems.append(f"{path}: must be one of {allowed}")


def _check_choices(
    schema: dict[str, Any], value: Any, path: str, root: Any, problems: list[str], depth: int
) -> None:
    for sub in schema.get("allOf", []):
        _validate(sub, value, path, root, problems, depth + 1)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            held = [o for o in options if not _fails(o, value, path, root, depth)]
            if not held or (key == "oneOf" and len(held) > 1):
                want = "exactly one" if key == "oneOf" else "one"
                problems.append(f"{path}: must match {want} of its {len(options)} choices")


def _fails(schema: Any, value: Any, path: str, root: Any, depth: int) -> bool:
    found: list[str] = []
    _validate(schema, value, path, root, found, depth + 1)
    return bool(found)


def _check_type(schema: dict[str, Any], value: Any, path: str, problems: list[str]) -> None:
    wanted = schema.get("type")
    if wanted is None:
        return
    names = wanted if isinstance(wanted, list) else [wanted]
    for name in names:
        kinds = _TYPES.get(name)
        if kinds is None:
            return  # a type we do not know: not ours to refuse
        if isinstance(value, bool) and name not in ("boolean",):
            continue
        if isinstance(value, kinds):
            if name == "integer" and isinstance(value, float) and not value.is_integer():
                continue
            return
        if name == "integer" and isinstance(value, float) and value.is_integer():
            return
    problems.append(f"{path}: must be {' or '.join(names)}, not {_kind(value)}")


def _check_object(
    schema: dict[str, Any],
    value: dict[str, Any],
    path: str,
    root: Any,
    problems: list[str],
    depth: int,
) -> None:
    properties = schema.get("properties") or {}
    for name in schema.get("required", []):
        if name not in value:
            problems.append(f"{path}: {name!r} is missing")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        where = f"{path}.{name}"
        if name in properties:
            _validate(properties[name], item, where, root, problems, depth + 1)
        elif extra is False:
            problems.append(f"{path}: {name!r} is not one of its properties")
        elif isinstance(extra, dict):
            _validate(extra, item, where, root, problems, depth + 1)
    _bounds(len(value), schema, "minProperties", "maxProperties", "properties", path, problems)


def _check_array(
    schema: dict[str, Any], value: list[Any], path: str, root: Any, problems: list[str], depth: int
) -> None:
    prefix = schema.get("prefixItems")
    items = schema.get("items")
    if isinstance(items, list):  # the older spelling of prefixItems
        prefix, items = items, schema.get("additionalItems")
    prefix = prefix if isinstance(prefix, list) else []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if index < len(prefix):
            _validate(prefix[index], item, where, root, problems, depth + 1)
        elif items is not None:
            _validate(items, item, where, root, problems, depth + 1)
    _bounds(len(value), schema, "minItems", "maxItems", "items", path, problems)


def _check_string(schema: dict[str, Any], value: str, path: str, problems: list[str]) -> None:
    _bounds(len(value), schema, "minLength", "maxLength", "characters", path, problems)
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                problems.append(f"{path}: must match the pattern {pattern!r}")
        except re.error:
            pass  # a pattern Python cannot read is llama.cpp's to enforce


def _check_number(schema: dict[str, Any], value: float, path: str, problems: list[str]) -> None:
    if not math.isfinite(value):
        problems.append(f"{path}: must be a finite number")
        return
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, (int, float)) and value < low:
        problems.append(f"{path}: must be at least {low}")
    if isinstance(high, (int, float)) and value > high:
        problems.append(f"{path}: must be at most {high}")
    low, high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(low, (int, float)) and not isinstance(low, bool) and value <= low:
        problems.append(f"{path}: must be more than {low}")
    if isinstance(high, (int, float)) and not isinstance(high, bool) and value >= high:
        problems.append(f"{path}: must be less than {high}")


def _bounds(
    count: int,
    schema: dict[str, Any],
    low_key: str,
    high_key: str,
    what: str,
    path: str,
    problems: list[str],
) -> None:
    low, high = schema.get(low_key), schema.get(high_key)
    if isinstance(low, int) and count < low:
        problems.append(f"{path}: needs at least {low} {what}, has {count}")
    if isinstance(high, int) and count > high:
        problems.append(f"{path}: allows at most {high} {what}, has {count}")


def _resolve(root: Any, ref: str) -> Any:
    """A local reference (``#/$defs/name``, ``#/definitions/name``, ``#``); None for one
    that leads nowhere or elsewhere."""
    if not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 and 1.0 alike, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _kind(value: Any) -> str:
    for name, kinds in _TYPES.items():
        if (
            name != "number"
            and isinstance(value, kinds)
            and not (isinstance(value, bool) and name != "boolean")
        ):
            return name
    return "number" if isinstance(value, float) else type(value).__name__


def engines_that_hold() -> frozenset[str]:
    """The local engines that can hold a reply to a schema or grammar: llama.cpp always,
    transformers where xgrammar is installed (the ``grammar`` extra)."""
    import importlib.util

    held = {"llamacpp"}
    if importlib.util.find_spec("xgrammar") is not None:
        held.add("transformers")
    return frozenset(held)
