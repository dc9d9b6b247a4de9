"""``vicuna-tui sessions check | repair | backups | restore``: the database's care."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from vicuna_tui import locations
from vicuna_tui.commands.console import confirmed, out
from vicuna_tui.store import backups, salvage

ACTIONS = ("check", "repair", "backups", "restore")


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        return _check()
    if args.action == "repair":
        return _repair(args.yes)
    if args.action == "backups":
        return _list_backups()
    return _restore(args.backup, args.yes)


def _counts(path: Path) -> str:
    try:
        conversations, messages = backups.counts(path)
    except sqlite3.Error:
        return "unreadable"
    return f"{conversations} conversations, {messages} messages"


def _backup_line() -> str | None:
    available = backups.backups()
    if not available:
        return None
    newest = available[0]
    return (
        f"the backup of {newest.label} holds {_counts(newest.path)}: "
        "`vicuna-tui sessions restore` brings it back"
    )


def _sound(report: salvage.CheckReport, missing: str, fine: str) -> bool:
    """Says so and returns True when there is no database, or it is not damaged."""
    if not report.exists or report.ok:
        out(f"{report.path}{missing if not report.exists else fine}")
        return True
    return False


def _check() -> int:
    report = salvage.check()
    counts = f"{report.conversations} conversations, {report.messages} messages"
    if _sound(report, ": no database yet (it is created with the first chat)", f": ok ({counts})"):
        return 0
    out(f"{report.path}: damaged")
    for problem in report.problems[:20]:
        out(f"  {problem}")
    out("  hint: run `vicuna-tui sessions repair` to save every readable conversation into a")
    out("  new file (the damaged one is kept)")
    line = _backup_line()
    if line:
        out(f"  or: {line}")
    return 1


def _repair(yes: bool) -> int:
    path = locations.database_path()
    report = salvage.check(path)
    fine = f" is not damaged ({report.conversations} conversations): nothing to repair"
    if _sound(report, ": no database yet, nothing to repair", fine):
        return 0
    question = (
        f"Repair {path}? Every readable conversation goes into a new file; the damaged "
        "one is kept beside it. Close other vicuna-tui windows first."
    )
    if not confirmed(yes, question, f"not repairing {path}"):
        out("not repaired")
        return 1
    result = salvage.repair(path)
    out(
        f"saved {result.conversations} conversations and {result.messages} messages "
        f"into a new {result.path}"
    )
    if result.battles or result.evaluation_files:
        out(
            f"  and {result.battles} arena battles (with their votes) and "
            f"{result.evaluation_files} judgment files listed"
        )
    if not result.readable:
        out("  nothing in the file could be read as a SQLite database")
    elif result.header_rebuilt:
        out("  the file's header did not match the rest of it and was rebuilt to read it")
    if result.short_by:
        out(
            f"  the file is cut short: {result.short_by:,} bytes are missing from its end, "
            "and what they held cannot be counted"
        )
    if result.orphans:
        out(
            f"  {result.orphans} conversations were rebuilt from their messages "
            "(their titles end in “(recovered)”)"
        )
    _say_lost(result)
    if result.kept_at:
        out(f"the damaged file is kept at {result.kept_at}")
    line = _backup_line()
    if line:
        out(f"{line} (if it has more than the repair saved)")
    return 0


def _say_lost(result: salvage.RepairReport) -> None:
    lost = _lost(result)
    missing = result.missing_conversations + result.missing_messages
    if lost:
        out(f"lost: {lost} could not be read")
    elif result.readable and not result.short_by and not missing:
        out("lost: nothing that SQLite could still reach")
    if missing:
        out(
            f"missing: {result.missing_conversations} conversation rows and "
            f"{result.missing_messages} message rows below the newest ones: deleted "
            "earlier, or lost to the damage (`sessions backups` lists copies that may "
            "hold them)"
        )


def _lost(result: salvage.RepairReport) -> str:
    """The rows a repair could not read, in words ('' when none)."""
    parts = []
    if result.unreadable_conversations or result.unreadable_messages:
        parts.append(
            f"{result.unreadable_conversations} conversation rows and "
            f"{result.unreadable_messages} message rows"
        )
    if result.unreadable_battles:
        parts.append(f"{result.unreadable_battles} arena battle rows")
    return ", and ".join(parts)


def _list_backups() -> int:
    available = backups.backups()
    if not available:
        out(f"no backups yet in {locations.backup_dir()} (one is taken a day while you chat)")
        return 0
    for backup in available:
        out(f"{backup.path.name}  {backup.label}  {_counts(backup.path)}")
    return 0


def _restore(name: str | None, yes: bool) -> int:
    backup = backups.find(name)
    target = locations.database_path()
    question = (
        f"Restore the backup of {backup.label} ({_counts(backup.path)}) over {target}? "
        "The current file is kept beside it."
    )
    if not confirmed(yes, question, "not restoring"):
        out("not restored")
        return 1
    kept = backups.restore(backup, target)
    out(f"restored the backup of {backup.label}: {_counts(target)}")
    if kept:
        out(f"the file it replaced is kept at {kept}")
    return 0
