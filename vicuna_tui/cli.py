"""The ``vicuna-tui`` command line.

Parsing and dispatch import nothing heavy: --help, --version, ``sessions`` and
``config`` never import torch.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from vicuna_tui import __version__
from vicuna_tui.commands.flags import (
    add_constraint_flags,
    add_generation_flags,
    add_model_flags,
)
from vicuna_tui.errors import VicunaError

SUBCOMMANDS = (
    "sessions",
    "config",
    "replay",
    "bench",
    "judge",
    "arena",
    "apply-delta",
    "make-delta",
)

EPILOG = """commands:
  vicuna-tui sessions list|show|search|rename|delete|export|import ...
  vicuna-tui config show|path|set ...
  vicuna-tui replay ID|FILE.jsonl [chat flags]
  vicuna-tui bench QUESTIONS.jsonl --model-id NAME [chat flags]
  vicuna-tui judge QUESTIONS.jsonl --mode single|pairwise-baseline|pairwise-all ...
  vicuna-tui judge show JUDGMENTS.jsonl [--json]
  vicuna-tui arena --model-path A --model-path B [--no-blind] [chat flags per side]
  vicuna-tui arena results [--json]
  vicuna-tui apply-delta --base PATH --delta PATH --target PATH
  vicuna-tui make-delta --base PATH --target PATH --delta PATH
Run `vicuna-tui COMMAND --help` for each one's flags."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicuna-tui",
        description="Chat with a local LLM (Vicuna, or any Hugging Face causal LM) in the "
        "terminal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vicuna-tui {__version__}")
    add_model_flags(parser)
    add_generation_flags(parser)
    add_constraint_flags(parser)
    ui = parser.add_argument_group("front end")
    ui.add_argument(
        "--style",
        choices=("tui", "simple", "rich"),
        help="tui on a terminal (default), simple line chat, or rich Markdown",
    )
    ui.add_argument(
        "--multiline",
        action="store_true",
        help="simple/rich: multi-line input, ended by Ctrl-D on an empty line",
    )
    ui.add_argument("-p", "--prompt", help="answer one prompt and exit ('-' reads stdin)")
    ui.add_argument(
        "--json",
        action="store_true",
        help="with -p or a pipe: one JSON object per reply, with its stats",
    )
    ui.add_argument(
        "--logprobs",
        type=int,
        metavar="N",
        help="with --json: each token's log-probability and its N likeliest alternatives "
        "(OpenAI's logprobs shape, 1-20); with --debug: each reply's least likely tokens",
    )
    ui.add_argument("--resume", metavar="ID|last", help="reopen a saved conversation")
    ui.add_argument("--no-save", action="store_true", help="do not save this conversation")
    ui.add_argument("--stats", action="store_true", help="print each reply's stats to stderr")
    ui.add_argument(
        "--debug", action="store_true", help="show prompts, templates, stats and tracebacks"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from vicuna_tui import stdio

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    closed = stdio.reopen_closed()
    given = sys.stdout
    checked = stdio.CheckedOutput(given)
    try:
        if 1 in closed:
            raise stdio.closed_output_error()
        _check_home()
        sys.stdout = checked
        code = _dispatch(args)
        checked.flush()  # a full disk shows here, not as a traceback at exit
        return code
    except VicunaError as exc:
        if isinstance(exc, stdio.OutputError):
            stdio.drop_pending_output()
        if debug:
            import traceback

            traceback.print_exc()
        _error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        stdio.drop_pending_output()
        return 0
    except OSError as exc:
        import errno

        if exc.errno == errno.EIO:  # the terminal went away (SIGHUP): nothing to tell
            return 129
        return _unexpected(exc, debug)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a message, a log
        return _unexpected(exc, debug)
    finally:
        if sys.stdout is checked:
            sys.stdout = given


def _check_home() -> None:
    from vicuna_tui import locations
    from vicuna_tui.errors import SettingsError

    problem = locations.home_problem()
    if problem is not None:
        raise SettingsError(
            problem, f"set {locations.HOME_ENV} to a folder (it is made if missing), or unset it"
        )


def _error(message: str, hint: str = "") -> None:
    from vicuna_tui.textsafe import terminal_safe

    # Messages may quote a file name, an argument or stored text: nothing in them may
    # act on the terminal.  A standard error that cannot be written says nothing.
    with contextlib.suppress(OSError, ValueError):
        print(f"error: {terminal_safe(message)}", file=sys.stderr)
        if hint:
            print(f"  hint: {terminal_safe(hint)}", file=sys.stderr)


EXIT_BUG = 70  # EX_SOFTWARE: something we did not foresee


def _unexpected(exc: BaseException, debug: bool) -> int:
    """A failure no code of ours expected: one line for the user, the traceback in the
    log (and on the screen with --debug), never a wall of Python."""
    import traceback

    from vicuna_tui import locations

    text = "".join(traceback.format_exception(exc))
    where = None
    with contextlib.suppress(OSError):
        path = locations.log_dir() / "errors.log"
        locations.ensure_private_dir(path.parent)
        with locations.open_private(path, append=True) as log:
            log.write(f"vicuna-tui {__version__}, {' '.join(sys.argv)}\n{text}\n")
        where = path
    if debug:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(text)
    hint = "this is a bug in vicuna-tui; please report it"
    if where is not None:
        hint += f", with the traceback from {where}"
    if not debug:
        hint += " (--debug shows it here)"
    _error(f"unexpected failure: {type(exc).__name__}: {exc}", hint)
    return EXIT_BUG


def _dispatch(args: list[str]) -> int:
    if args and args[0] in SUBCOMMANDS:
        command, rest = args[0], args[1:]
        if command == "sessions":
            from vicuna_tui.commands import sessions_cmd

            return sessions_cmd.main(rest)
        if command == "config":
            from vicuna_tui.commands import config_cmd

            return config_cmd.main(rest)
        if command == "bench":
            from vicuna_tui.commands import bench_cmd

            return bench_cmd.main(rest)
        if command == "judge":
            from vicuna_tui.commands import judge_cmd

            return judge_cmd.main(rest)
        if command == "arena":
            from vicuna_tui.commands import arena_cmd

            return arena_cmd.main(rest)
        if command == "replay":
            from vicuna_tui.commands import replay_cmd

            return replay_cmd.main(rest)
        from vicuna_tui.commands import delta_cmd

        return delta_cmd.main(command, rest)

    parsed = build_parser().parse_args(args)
    from vicuna_tui.commands import chat_cmd

    return chat_cmd.main(parsed)
