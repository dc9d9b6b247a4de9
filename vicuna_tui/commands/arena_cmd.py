"""``vicuna-tui arena``: two models side by side in the TUI, blind votes, and
``vicuna-tui arena results``: the leaderboard from every vote."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from vicuna_tui import runtime
from vicuna_tui.arena.battle import differences, setting_words
from vicuna_tui.arena.fit import check_fit, share_cores
from vicuna_tui.arena.ratings import BOOTSTRAP_ROUNDS
from vicuna_tui.arena.results import HEADERS, as_json, standings, table_rows
from vicuna_tui.arena.sides import describe_side, split_sides
from vicuna_tui.commands.console import out, say
from vicuna_tui.commands.flags import add_generation_flags, add_model_flags
from vicuna_tui.errors import SettingsError
from vicuna_tui.store import Store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicuna-tui arena",
        description="Two models answer the same prompts side by side; you vote which is "
        "better, blind. Each side begins with --model-path, --endpoint or --profile; the "
        "flags after it are that side's, the flags before the first side are both sides'.",
        epilog="vicuna-tui arena results [--json] prints the leaderboard.",
    )
    add_model_flags(parser)
    add_generation_flags(parser)
    arena = parser.add_argument_group("arena")
    arena.add_argument(
        "--no-blind",
        dest="blind",
        action="store_false",
        help="show the models' names from the start (default: hidden until you vote)",
    )
    arena.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="load one model at a time, each for its turn (when the two do not fit in memory)",
    )
    arena.add_argument("--no-save", action="store_true", help="save neither chats nor votes")
    arena.add_argument("--debug", action="store_true", help="tracebacks and llama.cpp's log")
    return parser


@dataclass
class ArenaPlan:
    """What the command line asks for: each side's settings (cores shared), the flags
    that are not a side's, each side's own flags, and whether the two are the same."""

    sides: list[runtime.Resolved]
    args: argparse.Namespace
    chunks: list[list[str]]
    same: bool


def plan(argv: Sequence[str]) -> ArenaPlan:
    shared, chunks = split_sides(argv)
    parser = _parser()
    spaces = [parser.parse_args([*shared, *chunk]) for chunk in chunks]
    sides = share_cores([runtime.resolve(space) for space in spaces])
    same = chunks[0] == chunks[1] or vars(spaces[0]) == vars(spaces[1])
    return ArenaPlan(sides, spaces[0], chunks, same)


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "results":
        return _results(argv[1:])
    if any(a in ("-h", "--help") for a in argv):
        _parser().print_help()
        return 0
    arena = plan(argv)
    sides, args = arena.sides, arena.args
    for warning in dict.fromkeys(w for side in sides for w in side.warnings):
        say(sys.stderr, f"warning: {warning}")
    first, second = (setting_words(s.generation, s.template, s.system_message) for s in sides)
    differ = differences(first, second, names=("first", "second"))
    if differ:
        say(
            sys.stderr,
            f"warning: the two sides' settings differ ({'; '.join(differ)}), so a vote "
            "weighs them as well as the models; give the flags before the first side to "
            "share them",
        )
    one_at_a_time = args.one_at_a_time or _ask_one_at_a_time(sides)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise SettingsError(
            "the arena needs a terminal on stdin and stdout",
            "run it in a terminal; `vicuna-tui arena results` prints the leaderboard anywhere",
        )
    if arena.same:
        say(sys.stderr, "warning: both sides are the same model with the same settings")
    runtime.apply_gpus(sides[0].load)
    store, problem = runtime.open_store(args.no_save)
    if problem is not None:
        say(sys.stderr, f"warning: not saving the battles: {problem.message}")
    from vicuna_tui.tui.arena_app import ArenaApp

    try:
        return ArenaApp(
            sides,
            store,
            blind=args.blind,
            one_at_a_time=one_at_a_time,
            debug=args.debug,
            labels=[describe_side(c) for c in arena.chunks],
            not_saving=problem.message if problem is not None else None,
        ).run_arena()
    finally:
        if store is not None:
            store.close()


def _ask_one_at_a_time(sides: Sequence[runtime.Resolved]) -> bool:
    """Say so when the two models will not fit in memory together, and offer to run
    them one after the other."""
    fit = check_fit([s.load if s.remote is None else None for s in sides])
    if fit.fits:
        return False
    question = (
        f"The two models may not fit in memory at once: {fit.describe()}. "
        "Run them one after the other (each loads for its turn, slower)? [Y/n] "
    )
    if not sys.stdin.isatty():
        raise SettingsError(
            f"the two models may not fit in memory at once: {fit.describe()}",
            "add --one-at-a-time to load them one after the other",
        )
    answer = input(question).strip().lower()
    return answer in ("", "y", "yes")


def _results(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="vicuna-tui arena results",
        description="The leaderboard from every arena vote: wins, losses, ties, win rate, "
        "and a Bradley–Terry rating (Elo scale) with a 95% bootstrap interval.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument(
        "--rounds",
        type=int,
        default=BOOTSTRAP_ROUNDS,
        help=f"bootstrap rounds for the interval ({BOOTSTRAP_ROUNDS})",
    )
    parser.add_argument(
        "--include-named",
        action="store_true",
        help="count named votes (--no-blind) too; by default only blind votes are rated, "
        "as Chatbot Arena rates anonymous votes only",
    )
    args = parser.parse_args(list(argv))
    if args.rounds < 0:
        raise SettingsError("--rounds must be 0 or more", "e.g. --rounds 1000")
    with Store.for_reading() as store:
        results = standings(store, rounds=args.rounds, include_named=args.include_named)
    rows = results.rows
    if args.json:
        out(json.dumps(as_json(results), ensure_ascii=False))
        return 0
    if not rows:
        out("No arena votes yet: `vicuna-tui arena --model-path A --model-path B`, then vote.")
        if results.same_model or results.named:
            out(results.summary() + ".")
        return 0
    cells = [HEADERS, *table_rows(rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    for row in cells:
        out(
            "  ".join(
                c.ljust(w) if i == 1 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    out(
        f"{results.summary()}. rating: Bradley–Terry, ties count half; 95% interval from "
        f"{args.rounds} bootstrap rounds; rank: by the intervals (1 + the models wholly "
        "above); win rate: wins ÷ (wins + losses), ties out, as FastChat; elo: online, K=4."
    )
    return 0
