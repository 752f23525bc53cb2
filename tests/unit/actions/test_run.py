"""mdbackup.actions.run: `run --once` in process (the daemon itself: tests/e2e/test_daemon.py)."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdbackup.actions.run import _space_hint, run, run_once
from mdbackup.backup import Backup
from mdbackup.exitcodes import ExitCode
from mdbackup.git.layout import lock_path
from mdbackup.lock import RepositoryLock
from tests.support.backup import make_config
from tests.support.git import commit_count, head_files

ONCE = argparse.Namespace(once=True, repo=None, store=None, push=None)


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` reads MDBACKUP_CRASH_AT and SSL_CERT_FILE/DIR: none of the caller's."""
    for name in ("MDBACKUP_CRASH_AT", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def backup(repo: Path, store: Path) -> Iterator[Backup]:
    b = Backup.open(make_config(repo, max_file_size=100))
    yield b
    b.close()


def test_run_once_commits_what_changed(backup: Backup, repo: Path, store: Path) -> None:
    (store / "a.md").write_text("a\n")
    assert run_once(backup) == ExitCode.OK
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_run_once_while_paused_commits_nothing(
    backup: Backup, repo: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup.set_paused(True)
    (store / "a.md").write_text("a\n")
    commits = commit_count(repo)
    assert run_once(backup) == ExitCode.OK
    assert commit_count(repo) == commits
    assert "mdbackup: paused; nothing committed (run `mdbackup resume`)" in capsys.readouterr().err


def test_run_once_with_git_busy_exits_75(
    backup: Backup, repo: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / ".git/index.lock").write_text("")
    (store / "a.md").write_text("a\n")
    assert run_once(backup) == ExitCode.BUSY
    assert "git is busy (another process holds index.lock)" in capsys.readouterr().err
    assert "notes/a.md" not in head_files(repo)


def test_run_once_with_a_failed_path_exits_1_and_commits_the_rest(
    backup: Backup, repo: Path, store: Path
) -> None:
    (store / "big.md").write_text("x" * 101)
    (store / "small.md").write_text("small\n")
    assert run_once(backup) == ExitCode.FAILED
    assert set(head_files(repo)) == {"README.txt", "notes/small.md"}


def test_run_with_once_takes_the_lock(repo: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(repo)
    (store / "a.md").write_text("a\n")
    with RepositoryLock.acquire(lock_path(repo / ".git")):
        assert run(config, ONCE) == ExitCode.BUSY
    assert "mdbackup: " in capsys.readouterr().err
    assert "notes/a.md" not in head_files(repo)
    assert run(config, ONCE) == ExitCode.OK
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_run_on_a_repository_that_went_away_is_a_usage_error(
    repo: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(repo)
    shutil.rmtree(repo / ".git")
    assert run(config, ONCE) == ExitCode.USAGE
    assert capsys.readouterr().err.startswith("mdbackup: --repo: ")


def test_space_hint_only_for_a_full_disk(tmp_path: Path) -> None:
    assert _space_hint(tmp_path) == ""  # a test machine has more than 1 MiB free
    assert _space_hint(tmp_path / "missing") == ""  # cannot tell: no hint
