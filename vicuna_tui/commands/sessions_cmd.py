"""``vicuna-tui sessions ...``: list, show, search, rename, delete, export, import, and
the database's care: check, repair, backups, restore.

None of these imports torch.  IDs may be shortened to any unambiguous prefix.  The
reading actions work on a read-only folder or file too.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vicuna_tui import formats, writable
from vicuna_tui.commands import sessions_care as care
from vicuna_tui.commands.console import confirmed, say
from vicuna_tui.commands.console import out as _out
from vicuna_tui.engine.events import rate_text
from vicuna_tui.errors import SettingsError
from vicuna_tui.store import ALL_RUNS, ARENA_RUN, AllRuns, Conversation, Store, tree
from vicuna_tui.textsafe import json_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vicuna-tui sessions", description="Saved conversations.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="list conversations, newest first")
    p.add_argument("--json", action="store_true", help="one JSON array")
    p.add_argument("-n", "--limit", type=int, help="show at most N")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run", help="the conversations of one bench run")
    which.add_argument(
        "--all", action="store_true", help="bench runs' conversations too, with their run"
    )
    p = sub.add_parser("show", help="print a conversation")
    p.add_argument("id", help="id, unambiguous prefix, or last")
    p = sub.add_parser("search", help="full-text search over every message")
    p.add_argument("text", nargs="+")
    p.add_argument(
        "-n", "--limit", type=_positive, default=50, help="show at most N hits (default 50)"
    )
    p.add_argument(
        "--from", dest="start", type=_positive, default=1, help="start at hit N (default 1)"
    )
    p = sub.add_parser("rename", help="give a conversation a new title")
    p.add_argument("id")
    p.add_argument("title", nargs="+")
    p = sub.add_parser("delete", help="delete a conversation")
    p.add_argument("id")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p = sub.add_parser("export", help="write a conversation as md, json, fastchat or sharegpt")
    p.add_argument("id")
    p.add_argument("--format", choices=formats.EXPORT_FORMATS, default="md")
    p.add_argument("-o", "--output", help="file to write (default, or -: stdout)")
    p.add_argument("--force", action="store_true", help="replace the --output file if it exists")
    p.add_argument(
        "--all-branches", action="store_true", help="json: every branch, not only the one shown"
    )
    p = sub.add_parser("import", help="import a FastChat !!save, ShareGPT or vicuna-tui JSON")
    p.add_argument("file")
    sub.add_parser("check", help="check the database for damage (SQLite's integrity check)")
    p = sub.add_parser(
        "repair", help="save every readable conversation of a damaged database into a new one"
    )
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    sub.add_parser("backups", help="list the daily backups")
    p = sub.add_parser("restore", help="bring back a backup (the newest unless named)")
    p.add_argument("backup", nargs="?", help="a name from `sessions backups`, or a file")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    return parser


READING = ("list", "show", "search", "export")


def _summary(conv: Conversation, branches: int) -> dict[str, Any]:
    return {
        "id": conv.id,
        "title": conv.title,
        "created_at": conv.created_at,
        "updated_at": conv.updated_at,
        "messages": conv.message_count,
        "branches": branches,
        "model": conv.model_name or conv.model_path,
        "backend": conv.backend,
        "replay_of": conv.replay_of,
        "run": conv.run,
    }


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if args.action in care.ACTIONS:
        return care.run(args)
    opener = Store.for_reading if args.action in READING else Store
    with opener() as store:
        return _run(args, store)


def _run(args: argparse.Namespace, store: Store) -> int:
    return ACTION_RUNNERS[args.action](args, store)


def _list(args: argparse.Namespace, store: Store) -> int:
    run: str | AllRuns | None = ALL_RUNS if args.all else args.run
    conversations = store.listing.conversations(limit=args.limit, run=run)
    branches = store.listing.branch_counts()
    if args.json:
        summaries = [_summary(c, branches.get(c.id, 1)) for c in conversations]
        sys.stdout.write(json_text(summaries) + "\n")
        return 0
    if not conversations:
        _out(
            f"no conversations in the run {args.run!r}"
            if args.run
            else "no saved conversations yet"
        )
    for conv in conversations:
        when = conv.updated_at[:16].replace("T", " ")
        model = conv.model_name or conv.model_path or "?"
        tag = f"[{conv.run}] " if args.all and conv.run else ""
        count = branches.get(conv.id, 1)
        forks = f"  ({count} branches)" if count > 1 else ""
        _out(
            f"{conv.short_id}  {when}  {conv.message_count:>3} msgs  {model[:24]:<24}  "
            f"{tag}{conv.title}{forks}"
        )
    if run is None:  # people's own chats; say what the bench runs and the arena hold
        runs = store.listing.runs()
        arena = runs.pop(ARENA_RUN, 0)
        if runs:
            _out("")
            _out(f"and {sum(runs.values())} bench conversation(s), kept apart:")
            for name, count in runs.items():
                _out(f"  {count:>4}  {name}   (vicuna-tui sessions list --run {shlex.quote(name)})")
        if arena:
            _out("")
            _out(
                f"and {arena} arena chat(s), two to a battle: vicuna-tui sessions list "
                f"--run {ARENA_RUN}; the votes: vicuna-tui arena results"
            )
    return 0


def _show(args: argparse.Namespace, store: Store) -> int:
    conv = store.get(store.resolve(args.id))
    _out(f"# {conv.title}   ({conv.id})")
    _out(f"model: {conv.model_name or conv.model_path or '?'}   template: {conv.template}")
    if conv.replay_of:
        _out(f"replay of: {conv.replay_of}")
    if conv.run == ARENA_RUN:
        _out("arena: one side of a battle (the votes: vicuna-tui arena results)")
    elif conv.run:
        _out(f"bench run: {conv.run}")
    for message in conv.messages:
        _out("")
        label = "USER" if message.role == "user" else "ASSISTANT"
        mark = (
            f" [{message.finish_reason}]"
            if message.finish_reason in ("cancelled", "error", "length")
            else ""
        )
        which = tree.siblings(conv.tree, message) if conv.tree else [message]
        if len(which) > 1:
            mark += f" (branch {which.index(message) + 1} of {len(which)})"
        _out(f"{label}{mark}: {message.content}")
        if message.role == "assistant" and message.new_tokens:
            rate = f", {rate_text(message.tokens_per_second)}" if message.tokens_per_second else ""
            _out(f"  ({message.new_tokens} tokens{rate})")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _search(args: argparse.Namespace, store: Store) -> int:
    words = " ".join(args.text)
    found = store.search.messages(words, limit=args.limit + 1, offset=args.start - 1)
    hits = found[: args.limit]
    if not hits:
        _out("no matches" if args.start == 1 else f"no matches from hit {args.start} on")
        return 1
    for hit in hits:
        _out(f"{hit.conversation_id[:8]}  #{hit.position:<3} {hit.role:<9}  {hit.title}")
        _out(f"    {' '.join(hit.snippet.split())}")
    if len(found) > args.limit:  # said on stderr: stdout stays the hits alone
        last = args.start + len(hits) - 1
        more = shlex.join(["vicuna-tui", "sessions", "search", *args.text, "--from", str(last + 1)])
        say(
            sys.stderr, f"stopped at {len(hits)} hits ({args.start}–{last}); there are more: {more}"
        )
    return 0


def _rename(args: argparse.Namespace, store: Store) -> int:
    conv_id = store.resolve(args.id)
    store.rename(conv_id, " ".join(args.title))
    _out(f"renamed {conv_id[:8]}: {store.get(conv_id).title}")
    return 0


def _delete(args: argparse.Namespace, store: Store) -> int:
    conv = store.get(store.resolve(args.id))
    question = f"Delete {conv.short_id} “{conv.title}” ({conv.message_count} messages)?"
    if not confirmed(args.yes, question, f"not deleting {conv.short_id}"):
        _out("kept")
        return 1
    store.delete(conv.id)
    _out(f"deleted {conv.short_id}")
    return 0


def _export(args: argparse.Namespace, store: Store) -> int:
    path = Path(args.output).expanduser() if args.output not in (None, "-") else None
    if path is not None:
        refused = writable.output_problem(path, replace=args.force)
        if refused:
            raise SettingsError(f"not exporting: {refused[0]}", refused[1])
    conv = store.get(store.resolve(args.id))
    text = formats.export(conv, args.format, all_branches=args.all_branches)
    if path is not None:
        try:
            formats.write_output(path, text, replace=args.force)
        except OSError as exc:
            problem = writable.os_error_problem(exc, path)
            raise SettingsError(f"not exported: {problem}", writable.fix_for(problem)) from None
        _out(f"wrote {path}")
    else:
        sys.stdout.write(text)
    return 0


SKIPS_SHOWN = 10  # faults named one by one; past that, counted


def _import(args: argparse.Namespace, store: Store) -> int:
    """One conversation, or every one of a list (a ShareGPT dataset): those that do not
    parse are skipped and named, the rest imported."""
    path = Path(args.file).expanduser()
    found, skipped = formats.read_conversations(path)
    if not found:
        raise skipped[0][1]
    # our JSON names each message's parent: its tree comes back as it was (all in one
    # transaction: a dataset comes in whole or not at all)
    made = store.imports.many(
        [(conv, messages, any(m.parent for m in messages)) for conv, messages in found]
    )
    if len(found) == 1:
        conv, messages = found[0]
        _out(f"imported {len(messages)} messages as {made[0][:8]} “{conv.title}”")
    else:
        total = sum(len(messages) for _, messages in found)
        _out(f"imported {len(found)} conversations ({total} messages) from {path}")
    for _, fault in skipped[:SKIPS_SHOWN]:
        say(sys.stderr, f"skipped: {fault.message} ({fault.hint})")
    if len(skipped) > SKIPS_SHOWN:
        say(sys.stderr, f"skipped {len(skipped) - SKIPS_SHOWN} more that did not parse")
    return 0


ACTION_RUNNERS: dict[str, Callable[[argparse.Namespace, Store], int]] = {
    "list": _list,
    "show": _show,
    "search": _search,
    "rename": _rename,
    "delete": _delete,
    "export": _export,
    "import": _import,
}
