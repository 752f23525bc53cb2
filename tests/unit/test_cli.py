"""mdbackup.cli in process: argument parsing and the command table (as a user runs it:
tests/e2e/test_once.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mdbackup import __version__
from mdbackup.actions import check, control, run, status
from mdbackup.cli import COMMANDS, build_parser, main, parse_args
from mdbackup.exitcodes import ExitCode


def parse(*argv: str) -> argparse.Namespace:
    return parse_args(list(argv))


def test_every_command_has_its_action() -> None:
    assert {
        "run": run.run,
        "status": status.status,
        "retry": control.retry,
        "pause": control.pause,
        "resume": control.resume,
        "check": check.check,
    } == COMMANDS


def test_bare_mdbackup_is_the_daemon() -> None:
    args = parse()
    assert (args.command, args.once, args.repo, args.store, args.push) == ("run", False, None, None, None)
    assert (args.json, args.all, args.verbose, args.config, args.log_format) == (
        False,
        False,
        False,
        None,
        None,
    )


@pytest.mark.parametrize("argv", [["--once"], ["run", "--once"]])
def test_once_before_or_after_the_command(argv: list[str]) -> None:
    args = parse(*argv)
    assert (args.command, args.once) == ("run", True)


def test_run_options() -> None:
    args = parse("run", "--repo", "r", "--store", "notes", "--no-push", "--verbose", "--log-format", "json")
    assert (args.repo, args.store, args.push, args.verbose, args.log_format) == (
        Path("r"),
        "notes",
        False,
        True,
        "json",
    )
    assert parse("run", "--push").push is True


def test_global_options_before_the_command_are_kept() -> None:
    args = parse("--config", "c.toml", "--verbose", "status", "--json", "--all")
    assert (args.command, args.config, args.verbose, args.json, args.all) == (
        "status",
        Path("c.toml"),
        True,
        True,
        True,
    )


@pytest.mark.parametrize(
    "argv",
    [["frobnicate"], ["run", "--push", "--no-push"], ["status", "--repo", "x"], ["--log-format", "xml"]],
)
def test_usage_errors_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("mdbackup: ") and err.endswith("(see mdbackup --help)\n")
    assert err.count("\n") == 1


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"mdbackup {__version__}\n"


def test_a_bad_config_exits_2_naming_each_problem(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f'[store]\nrepo = "{repo}"\n[watch]\ndebounce = "soon"\n[bogus]\nx = 1\n')
    assert main(["--config", str(config), "status"]) == ExitCode.USAGE
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert any("'watch.debounce'" in line for line in err) and any("bogus" in line for line in err)


def test_once_takes_every_option_of_run_once() -> None:
    """`mdbackup --once --repo DIR` once failed with "invalid choice"."""
    short = parse("--once", "--repo", "/r", "--store", "notes", "--push")
    long = parse("run", "--once", "--repo", "/r", "--store", "notes", "--push")
    for args in (short, long):
        assert (args.command, args.once, args.repo, args.store, args.push) == (
            "run",
            True,
            Path("/r"),
            "notes",
            True,
        )
    assert parse("--once", "--no-push").push is False


def test_run_options_with_another_command_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("--repo", "/r", "status")
    assert exited.value.code == ExitCode.USAGE
    assert "--repo belongs to `run`" in capsys.readouterr().err
