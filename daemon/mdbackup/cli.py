"""Command line: parse arguments, set up logging, load the config, run one action.

Each command is a module of `daemon.actions`; `COMMANDS` maps names to them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mdbackup import __version__, logs
from mdbackup.actions import check, control, run, status
from mdbackup.config import Config, ConfigError, Overrides, find_config_file, load_config
from mdbackup.exitcodes import ExitCode

Action = Callable[[Config, argparse.Namespace], int]

COMMANDS: dict[str, Action] = {
    "run": run.run,
    "status": status.status,
    "retry": control.retry,
    "pause": control.pause,
    "resume": control.resume,
    "check": check.check,
}


class _Parser(argparse.ArgumentParser):
    """argparse that exits with the contract's usage code (2) and a one-line error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(ExitCode.USAGE, f"mdbackup: {message} (see mdbackup --help)\n")


def _global_options(*, in_command: bool) -> _Parser:
    """Options accepted before the command and after it (`mdbackup run --verbose`).

    A `_Parser` like the command parsers it is a parent of (argparse only copies its
    arguments; its own `error` is never called).
    """
    default = argparse.SUPPRESS if in_command else None
    options = _Parser(add_help=False)
    options.add_argument(
        "--config",
        type=Path,
        default=default,
        help="config file (default: $MDBACKUP_CONFIG, then $XDG_CONFIG_HOME/mdbackup/config.toml)",
    )
    options.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS if in_command else False,
        help="log debug events",
    )
    options.add_argument(
        "--log-format",
        choices=["auto", "console", "json"],
        default=default,
        help="log renderer (default: [log] format, auto)",
    )
    return options


RUN_OPTIONS = ("repo", "store", "push")
"""The options of `run`, also taken before a command so that `mdbackup --once --repo DIR` works."""


def _run_options(parser: argparse.ArgumentParser) -> None:
    """Add `--repo`, `--store`, `--push`/`--no-push`; unset unless given (`_normalise` fills them)."""
    parser.add_argument("--repo", type=Path, default=argparse.SUPPRESS, help="the git working tree")
    parser.add_argument("--store", default=argparse.SUPPRESS, help="the store folder, relative to the repo")
    push = parser.add_mutually_exclusive_group()
    push.add_argument("--push", action="store_true", default=argparse.SUPPRESS, dest="push")
    push.add_argument("--no-push", action="store_false", default=argparse.SUPPRESS, dest="push")


def build_parser() -> argparse.ArgumentParser:
    """The `mdbackup` parser: global options, `--once`, `--version` and one subparser per command."""
    parser = _Parser(
        prog="mdbackup",
        description="Keep a markdown store backed up in git.",
        parents=[_global_options(in_command=False)],
    )
    parser.add_argument("--once", action="store_true", help="the same as `run --once`")
    parser.add_argument("--version", action="version", version=f"mdbackup {__version__}")
    _run_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    in_command = [_global_options(in_command=True)]

    run_parser = commands.add_parser(
        "run", parents=in_command, help="the daemon; with --once: one pass, then exit"
    )
    run_parser.add_argument(
        "--once", action="store_true", dest="run_once", help="one pass (scan, commit, push), then exit"
    )
    _run_options(run_parser)

    status_parser = commands.add_parser(
        "status", parents=in_command, help="pending, failed, last commit, push state"
    )
    status_parser.add_argument("--json", action="store_true", help="machine-readable")
    status_parser.add_argument("--all", action="store_true", help="list every tracked path")

    for name, text in (
        ("retry", "failed paths and a failed push become pending again now"),
        ("pause", "keep recording changes but commit nothing"),
        ("resume", "commit again, including what piled up"),
        ("check", "validate config, repository and remote; commit nothing"),
    ):
        commands.add_parser(name, parents=in_command, help=text)
    return parser


def _normalise(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Fill in what a command's own parser did not set (`mdbackup --once`, bare `mdbackup`);
    refuse `run`'s options with another command."""
    command = args.command or "run"
    given = [f"--{name}" for name in RUN_OPTIONS if hasattr(args, name)]
    if command != "run" and given:
        parser.error(f"{', '.join(given)} belongs to `run`, not to `{command}`")
    defaults = {"run_once": False, "repo": None, "store": None, "push": None, "json": False, "all": False}
    for key, value in defaults.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    args.command = command
    args.once = bool(args.once or args.run_once)
    return args


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line as a namespace with every option set (exits 2 on a usage error)."""
    parser = build_parser()
    return _normalise(parser.parse_args(argv), parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = Overrides(repo=args.repo, store=args.store, push=args.push)
    try:
        path = find_config_file(explicit=args.config, environ=os.environ)
        config = load_config(path, overrides=overrides, cwd=Path.cwd())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return ExitCode.USAGE
    logs.configure(
        level="debug" if args.verbose else config.log.level,
        fmt=args.log_format or config.log.format,
    )
    return int(COMMANDS[args.command](config, args))
