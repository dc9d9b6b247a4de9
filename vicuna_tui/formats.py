"""Conversations in and out: our JSON, FastChat's ``!!save`` JSON, ShareGPT and Markdown.

Imports are checked whole before anything is written, so a broken file imports
nothing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from vicuna_tui import bounded, locations
from vicuna_tui.engine.templates import ASSISTANT, TEMPLATES, USER
from vicuna_tui.errors import VicunaError
from vicuna_tui.store import Conversation, SavedMessage, make_title, now
from vicuna_tui.textsafe import json_text, terminal_safe

OUR_FORMAT = "vicuna-tui/1"
EXPORT_FORMATS = ("md", "json", "fastchat", "sharegpt")


class FormatError(VicunaError):
    """A file that cannot be read as a conversation."""


def _roles(template: str | None) -> tuple[str, str]:
    known = TEMPLATES.get(template or "")
    return known.roles if known else ("USER", "ASSISTANT")


def to_fastchat(conv: Conversation) -> dict[str, Any]:
    """FastChat's ``Conversation.dict()`` as ``!!save`` writes it."""
    template = TEMPLATES.get(conv.template or "")
    roles = _roles(conv.template)
    few_shot = [list(pair) for pair in template.few_shot] if template else []
    messages = few_shot + [
        [roles[0] if m.role == USER else roles[1], m.content] for m in conv.messages
    ]
    system = conv.system_message
    if system is None:
        system = template.system_message if template else ""
    return {
        "template_name": conv.template or "vicuna_v1.1",
        "system_message": system,
        "roles": list(roles),
        "messages": messages,
        "offset": len(few_shot),
    }


def to_json(conv: Conversation, *, all_branches: bool = False) -> dict[str, Any]:
    """Our JSON: the branch shown, or with ``all_branches`` every message of the tree
    (each names its ``parent``; the import rebuilds the tree)."""
    meta = {
        f.name: getattr(conv, f.name)
        for f in dataclasses.fields(Conversation)
        if f.name not in ("messages", "message_count", "tree")
    }
    messages = (conv.tree or conv.messages) if all_branches else conv.messages
    data: dict[str, Any] = {
        "format": OUR_FORMAT,
        "conversation": meta,
        "messages": [
            {k: v for k, v in dataclasses.asdict(m).items() if k not in ("id", "position")}
            for m in messages
        ],
    }
    if all_branches:
        data["branches"] = True
    return data


def to_sharegpt(conv: Conversation) -> dict[str, Any]:
    turns = []
    if conv.system_message:
        turns.append({"from": "system", "value": conv.system_message})
    turns += [
        {"from": "human" if m.role == USER else "gpt", "value": m.content} for m in conv.messages
    ]
    return {"id": conv.id, "conversations": turns}


def to_markdown(conv: Conversation) -> str:
    """Markdown for people: no control character but newline and tab, wherever it goes
    (a file is often shown with cat); the JSON formats keep the exact text."""
    return terminal_safe(_markdown(conv))


def _markdown(conv: Conversation) -> str:
    lines = [f"# {conv.title}", ""]
    meta = [f"- id: `{conv.id}`", f"- created: {conv.created_at}"]
    if conv.model_name or conv.model_path:
        meta.append(f"- model: {conv.model_name or conv.model_path}")
    if conv.template:
        meta.append(f"- template: {conv.template}")
    lines += [*meta, ""]
    if conv.system_message:
        lines += ["**System:**", "", conv.system_message, ""]
    for m in conv.messages:
        label = "User" if m.role == USER else "Assistant"
        note = f" _({m.finish_reason})_" if m.finish_reason in ("cancelled", "error") else ""
        lines += [f"**{label}:**{note}", "", m.content, ""]
    return "\n".join(lines)


def write_private(path: Path, text: str) -> None:
    """Write an export readable by the user alone (0600), whatever the umask."""
    with locations.open_private(path) as handle:
        handle.write(text)


def write_output(path: Path, text: str, *, replace: bool) -> None:
    """Write a file the user named (checked first with ``writable.output_problem``):
    0600 when new; an existing one, with ``replace``, gives way to a new file that keeps
    its mode (never another's file rewritten in place)."""
    mode = None
    if replace and path.exists():
        mode = path.stat().st_mode & 0o777
        path.unlink()
    write_private(path, text)
    if mode is not None:
        path.chmod(mode)


def export(conv: Conversation, fmt: str, *, all_branches: bool = False) -> str:
    if all_branches:
        if fmt != "json":
            raise FormatError(
                "--all-branches needs --format json (the other formats hold one branch)",
                "add --format json",
            )
        return json_text(to_json(conv, all_branches=True)) + "\n"
    if fmt == "md":
        return to_markdown(conv)
    data = {"json": to_json, "fastchat": to_fastchat, "sharegpt": to_sharegpt}.get(fmt)
    if data is None:
        raise FormatError(
            f"unknown export format {fmt!r}", "use one of: " + ", ".join(EXPORT_FORMATS)
        )
    return json_text(data(conv)) + "\n"


# --- import -------------------------------------------------------------------------------


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FormatError(
            f"{where} must be text, not {type(value).__name__}", "fix the file, or export it again"
        )
    return value


def _alternating(pairs: list[tuple[str, str]], where: str) -> list[tuple[str, str]]:
    expected = USER
    for index, (role, _) in enumerate(pairs):
        if role != expected:
            raise FormatError(
                f"{where}: message {index + 1} should be from the {expected}, not the {role}",
                "messages must alternate user, assistant, user, ...",
            )
        expected = ASSISTANT if expected == USER else USER
    return pairs


def from_fastchat(data: dict[str, Any], where: str) -> tuple[Conversation, list[SavedMessage]]:
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise FormatError(
            f"{where}: 'messages' must be a list of [role, text] pairs",
            "is this a FastChat !!save file?",
        )
    roles = data.get("roles") or ["USER", "ASSISTANT"]
    if not (isinstance(roles, list) and len(roles) == 2 and all(isinstance(r, str) for r in roles)):
        raise FormatError(f"{where}: 'roles' must be two names", 'e.g. ["USER", "ASSISTANT"]')
    offset = data.get("offset", 0)
    if not isinstance(offset, int) or offset < 0 or offset > len(messages):
        raise FormatError(
            f"{where}: 'offset' must be a count of leading example messages",
            "FastChat writes 0, or 2 for one_shot",
        )
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(messages[offset:], start=offset):
        if not (isinstance(item, list) and len(item) == 2):
            raise FormatError(
                f"{where}: message {index + 1} is not a [role, text] pair",
                "fix the file, or save it again with !!save",
            )
        role, text = item
        if text is None and index == len(messages) - 1:
            continue  # the empty slot FastChat leaves for a reply
        if role not in roles:
            raise FormatError(
                f"{where}: message {index + 1} has role {role!r}, not one of {roles}",
                "fix the role names",
            )
        pairs.append((USER if role == roles[0] else ASSISTANT, _text(text, f"message {index + 1}")))
    _alternating(pairs, where)
    template = data.get("template_name")
    system = data.get("system_message")
    conv = Conversation(
        id="",
        title=make_title(pairs[0][1]) if pairs else "Imported chat",
        created_at=now(),
        updated_at=now(),
        template=template if isinstance(template, str) else None,
        system_message=system if isinstance(system, str) else None,
    )
    return conv, [
        SavedMessage(role=r, content=t, finish_reason="stop" if r == ASSISTANT else None)
        for r, t in pairs
    ]


def from_ours(data: dict[str, Any], where: str) -> tuple[Conversation, list[SavedMessage]]:
    meta = data.get("conversation")
    items = data.get("messages")
    if not isinstance(meta, dict) or not isinstance(items, list):
        raise FormatError(
            f"{where}: needs 'conversation' and 'messages'",
            "export it again with `vicuna-tui sessions export ID --format json`",
        )
    fields = {f.name for f in dataclasses.fields(Conversation)} - {
        "messages",
        "message_count",
        "tree",
    }
    conv_data = {k: v for k, v in meta.items() if k in fields}
    conv_data.setdefault("id", "")
    conv_data.setdefault("title", "Imported chat")
    conv_data.setdefault("created_at", now())
    conv_data.setdefault("updated_at", now())
    for key in ("generation", "load"):
        if not isinstance(conv_data.get(key, {}), dict):
            raise FormatError(f"{where}: conversation.{key} must be an object", "fix the file")
    try:
        conv = Conversation(**conv_data)
    except TypeError as exc:
        raise FormatError(f"{where}: bad conversation fields ({exc})", "fix the file") from None
    msg_fields = {f.name for f in dataclasses.fields(SavedMessage)} - {"id", "position"}
    messages = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise FormatError(f"{where}: message {index + 1} must be an object", "fix the file")
        role = item.get("role")
        if role not in (USER, ASSISTANT):
            raise FormatError(
                f"{where}: message {index + 1} has role {role!r}",
                "roles are 'user' and 'assistant'",
            )
        _text(item.get("content"), f"message {index + 1} content")
        messages.append(SavedMessage(**{k: v for k, v in item.items() if k in msg_fields}))
    return conv, messages


def from_sharegpt(data: dict[str, Any], where: str) -> tuple[Conversation, list[SavedMessage]]:
    turns = data.get("conversations")
    if not isinstance(turns, list):
        raise FormatError(f"{where}: 'conversations' must be a list", "is this ShareGPT?")
    system = None
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(turns):
        if not isinstance(item, dict):
            raise FormatError(f"{where}: turn {index + 1} must be an object", "fix the file")
        who = item.get("from")
        text = _text(item.get("value"), f"{where}: turn {index + 1} value")
        if who == "system":
            system = text
        elif who in ("human", "user"):
            pairs.append((USER, text))
        elif who in ("gpt", "assistant", "chatgpt", "bard"):
            pairs.append((ASSISTANT, text))
        else:
            raise FormatError(
                f"{where}: turn {index + 1} is from {who!r}", "expected human, gpt or system"
            )
    _alternating(pairs, where)
    conv = Conversation(
        id="",
        title=make_title(pairs[0][1]) if pairs else "Imported chat",
        created_at=now(),
        updated_at=now(),
        system_message=system,
    )
    return conv, [SavedMessage(role=r, content=t) for r, t in pairs]


Parsed = tuple[Conversation, list[SavedMessage]]
NOT_KNOWN = "import takes our JSON, FastChat !!save JSON or ShareGPT JSON"


def read_conversation(path: Path) -> Parsed:
    """Parse a file of one conversation (our JSON, FastChat or ShareGPT) without
    writing anything."""
    found, skipped = read_conversations(path)
    if len(found) + len(skipped) > 1:
        raise FormatError(
            f"{path} holds {len(found) + len(skipped)} conversations; this takes one",
            f"import them all with `vicuna-tui sessions import {path}`",
        )
    if skipped:
        raise skipped[0][1]
    return found[0]


def read_conversations(path: Path) -> tuple[list[Parsed], list[tuple[int, FormatError]]]:
    """Parse a conversation file, or a list of them (a ShareGPT dataset): those that
    parse, and the place (from 1) and fault of those that do not."""
    try:
        raw = bounded.read_text(path, limit=bounded.DATASET_LIMIT, what="conversation file")
    except bounded.InputError as exc:
        raise FormatError(exc.message, exc.hint) from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path} is not valid JSON: {exc}", NOT_KNOWN) from None
    except RecursionError:  # e.g. an array 10,000 levels deep
        raise FormatError(
            f"{path} nests its JSON too deeply to be a conversation", NOT_KNOWN
        ) from None
    if isinstance(data, dict):
        return [_one(data, str(path))], []
    if not isinstance(data, list) or not data:
        raise FormatError(f"{path} does not hold a conversation object", NOT_KNOWN)
    found: list[Parsed] = []
    skipped: list[tuple[int, FormatError]] = []
    for index, item in enumerate(data, start=1):
        where = f"{path} [conversation {index}]" if len(data) > 1 else str(path)
        try:
            if not isinstance(item, dict):
                raise FormatError(f"{where} is not a conversation object", NOT_KNOWN)
            found.append(_one(item, where))
        except FormatError as exc:
            skipped.append((index, exc))
    return found, skipped


def _one(data: dict[str, Any], where: str) -> Parsed:
    if data.get("format") == OUR_FORMAT:
        return from_ours(data, where)
    if "template_name" in data or ("messages" in data and "roles" in data):
        return from_fastchat(data, where)
    if "conversations" in data:
        return from_sharegpt(data, where)
    raise FormatError(f"{where} is not a conversation file vicuna-tui knows", NOT_KNOWN)
