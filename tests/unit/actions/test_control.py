"""mdbackup.actions.control: `pause`, `resume` and `retry` on a real state database."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mdbackup.actions.control import pause, resume, retry
from mdbackup.backup import Backup
from mdbackup.config import Config
from mdbackup.exitcodes import ExitCode
from mdbackup.statuses import PathStatus
from tests.support.backup import make_config

NO_ARGS = argparse.Namespace()


@pytest.fixture
def config(repo: Path, store: Path) -> Config:
    return make_config(repo, max_file_size=10)


def paused(config: Config) -> bool:
    backup = Backup.open(config)
    try:
        return backup.paused()
    finally:
        backup.close()


def test_pause_then_resume(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert pause(config, NO_ARGS) == ExitCode.OK
    assert capsys.readouterr().out == "paused: changes are recorded, nothing is committed\n"
    assert paused(config)
    assert resume(config, NO_ARGS) == ExitCode.OK
    assert capsys.readouterr().out == "resumed\n"
    assert not paused(config)


def test_retry_makes_failed_paths_pending_again(
    config: Config, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (store / "big.md").write_text("larger than ten bytes\n")
    backup = Backup.open(config)
    try:
        backup.recover(reason="test")
        assert backup.snapshot(all_paths=True).counts[PathStatus.FAILED.value] == 1
    finally:
        backup.close()
    capsys.readouterr()  # the pass's log lines (structlog's default goes to stdout)
    assert retry(config, NO_ARGS) == ExitCode.OK
    assert capsys.readouterr().out == "retry: 1 failed path(s) pending again\n"
    backup = Backup.open(config)
    try:
        counts = backup.snapshot(all_paths=True).counts
    finally:
        backup.close()
    assert (counts[PathStatus.FAILED.value], counts[PathStatus.PENDING.value]) == (0, 1)


def test_retry_with_nothing_failed_says_so(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert retry(config, NO_ARGS) == ExitCode.OK
    assert capsys.readouterr().out == "retry: 0 failed path(s) pending again\n"
