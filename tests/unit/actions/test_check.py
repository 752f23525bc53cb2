"""mdbackup.actions.check: config, repository and remote checked in process, nothing committed."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mdbackup.actions.check import check
from mdbackup.exitcodes import ExitCode
from tests.support.backup import make_config
from tests.support.git import commit_count, git

NO_ARGS = argparse.Namespace()
PUSH = "[push]\nenabled = true\n"


@pytest.fixture(autouse=True)
def no_ca_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """`check` hands SSL_CERT_FILE/DIR to libgit2 (process-wide): none of the caller's."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def run_check(repo: Path, body: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    config = make_config(repo, body)
    capsys.readouterr()
    code = check(config, NO_ARGS)
    return code, capsys.readouterr().out.splitlines()


def test_push_disabled(repo: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commits = commit_count(repo)
    code, lines = run_check(repo, "", capsys)
    assert code == ExitCode.OK
    assert lines == [
        f"config: ok ({repo.parent / 'config.toml'})",
        f"repository: ok ({repo}, branch main)",
        "remote: push disabled",
    ]
    assert commit_count(repo) == commits


def test_busy_git_is_mentioned_but_not_a_failure(
    repo: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / ".git/index.lock").write_text("")
    code, lines = run_check(repo, "", capsys)
    assert code == ExitCode.OK
    assert "busy now: another process holds index.lock, commits wait until it is done" in lines[1]
    assert (repo / ".git/index.lock").exists()


def test_detached_head_fails(repo: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    git(repo, "checkout", "-q", "--detach")
    code, lines = run_check(repo, PUSH, capsys)
    assert code == ExitCode.FAILED
    assert lines[-1] == f"repository: {repo}: HEAD is detached; check out a branch to resume backups"


def test_a_reachable_remote(
    repo: Path, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    code, lines = run_check(repo, PUSH, capsys)
    assert (code, lines[-1]) == (
        ExitCode.OK,
        "remote: ok (origin, main not there yet (the first push creates it))",
    )
    git(repo, "push", "-q", "origin", "main")
    head = git(repo, "rev-parse", "HEAD").strip()
    code, lines = run_check(repo, PUSH, capsys)
    assert (code, lines[-1]) == (ExitCode.OK, f"remote: ok (origin, main at {head[:12]})")


def test_a_missing_remote_fails(repo: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_check(repo, PUSH, capsys)
    assert code == ExitCode.FAILED
    assert lines[-1].startswith("remote: ") and "origin" in lines[-1]
