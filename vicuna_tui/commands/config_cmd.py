"""``vicuna-tui config show|path|set|unset``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vicuna_tui import config as config_mod
from vicuna_tui import locations


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vicuna-tui config", description="Settings file.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("show", help="print the settings in effect from config.toml")
    sub.add_parser("path", help="print where config.toml is")
    p = sub.add_parser("set", help="set KEY (e.g. temperature, profiles.NAME.KEY, keys.ACTION)")
    p.add_argument("key")
    p.add_argument("value")
    p = sub.add_parser("unset", help="remove KEY")
    p.add_argument("key")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    path = locations.config_path()
    if args.action == "path":
        print(path)
        return 0
    if args.action == "show":
        cfg = config_mod.load(path)
        if cfg.error is not None:
            print(f"error: {cfg.error}", file=sys.stderr)
            return 2
        import tomli_w

        shown = config_mod.show(cfg)
        print(f"# {path}" + ("" if path.exists() else " (not created yet: built-in defaults)"))
        if shown:
            print(tomli_w.dumps(shown), end="")
        return 0
    if args.action == "set":
        value = config_mod.set_value(args.key, args.value, path)
        masked = "********" if args.key.split(".")[-1] in config_mod.SECRET_KEYS else value
        print(f"{args.key} = {masked!r}  ({path})")
        return 0
    config_mod.set_value(args.key, None, path)
    print(f"removed {args.key}  ({path})")
    return 0
