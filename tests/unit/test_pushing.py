"""mdbackup.pushing: credentials from [auth], and when the Pusher pushes and what state it
leaves, against a bare repository on disk and a clock that moves only when told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from mdbackup import logs
from mdbackup.crashpoints import no_step
from mdbackup.git.repo import open_repository
from mdbackup.pushing import Pusher, credentials
from mdbackup.state.db import StateDB
from mdbackup.state.repository import RepositoryState
from mdbackup.statuses import PushStatus
from tests.support.backup import FakeClock, make_config
from tests.support.git import git

PUSH = "[push]\nenabled = true\nretry_min = 5\nretry_max = 60\n"


@pytest.fixture
def forget_secrets() -> Iterator[None]:
    before = set(logs._secrets)
    yield
    logs._secrets.intersection_update(before)


@pytest.fixture
def bare(repo: Path, tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(path))
    return path


class World:
    """A Pusher on `repo` with its own state database and clock."""

    def __init__(self, repo: Path, body: str, clock: FakeClock) -> None:
        self.db = StateDB(repo.parent / "state.db")
        self.state = RepositoryState(self.db)
        self.clock = clock
        self.pusher = Pusher(
            config=make_config(repo, body),
            repo=open_repository(repo),
            state=self.state,
            clock=clock,
            step=no_step,
        )


@pytest.fixture
def world(repo: Path, store: Path) -> Iterator[World]:
    w = World(repo, PUSH, FakeClock())
    yield w
    w.db.close()


def remote_head(bare: Path) -> str | None:
    return git(bare, "rev-parse", "--verify", "-q", "refs/heads/main", check=False).strip() or None


def test_credentials_from_auth_and_the_environment(repo: Path, store: Path, forget_secrets: None) -> None:
    config = make_config(
        repo,
        '[auth]\nssh_key = "~/.ssh/mine"\nssh_passphrase_env = "PASS"\ntoken_env = "TOK"\nusername = "me"\n',
    )
    creds = credentials(config, {"PASS": "pass-unit-push", "TOK": "tok-unit-push", "SSH_AUTH_SOCK": "/s"})
    assert (creds.ssh_passphrase, creds.token, creds.username, creds.ssh_agent) == (
        "pass-unit-push",
        "tok-unit-push",
        "me",
        True,
    )
    assert creds.ssh_key is not None and creds.ssh_key.name == "mine" and "~" not in str(creds.ssh_key)
    home = Path(pygit2.settings.homedir or Path.home())
    assert creds.default_keys == (home / ".ssh/id_ed25519", home / ".ssh/id_rsa")
    assert logs.scrub("tok-unit-push pass-unit-push") == "*** ***"  # registered before anything logs


def test_credentials_defaults(repo: Path, store: Path) -> None:
    creds = credentials(make_config(repo), {})
    assert (creds.ssh_key, creds.ssh_passphrase, creds.token, creds.username, creds.ssh_agent) == (
        None,
        None,
        None,
        "git",
        False,
    )


def test_push_disabled_is_never_due(repo: Path, store: Path) -> None:
    w = World(repo, "", FakeClock())
    try:
        w.pusher.committed()
        assert w.pusher.deadline() is None and w.pusher.summary() is None
        assert w.pusher.push_if_due() is True
        assert w.state.push_state().status is PushStatus.DISABLED
    finally:
        w.db.close()


def test_a_commit_makes_a_push_due_and_it_lands(world: World, repo: Path, bare: Path) -> None:
    git(repo, "remote", "add", "origin", str(bare))
    world.pusher.committed()
    assert world.state.push_state().status is PushStatus.PENDING
    assert world.pusher.deadline() == 0.0
    assert world.pusher.push_if_due() is True
    assert remote_head(bare) == git(repo, "rev-parse", "HEAD").strip()
    state = world.state.push_state()
    assert (state.status, state.last_push_at, state.ahead) == (PushStatus.SUCCESS, world.clock.now, 0)
    # success: the pusher only looks again, every retry_min, whether the branch moved by hand
    assert world.pusher.deadline() == world.clock.now + 5 and world.pusher.summary() == "success"
    assert (state.enabled, state.remote, state.branch, state.recorded_at) == (
        True,
        "origin",
        "main",
        world.clock.now,
    )
    assert world.pusher.check().remote_before == remote_head(bare)


def test_push_state_goes_stale_a_manual_commit_is_pushed_within_retry_min(
    world: World, repo: Path, store: Path, bare: Path
) -> None:
    """Why: "Push state goes stale": after a commit by hand the daemon pushed it only with
    its own next commit."""
    git(repo, "remote", "add", "origin", str(bare))
    assert world.pusher.push_if_due(force=True) is True
    (store / "by-hand.md").write_text("by hand\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "by hand")
    assert world.pusher.push_if_due() is True and remote_head(bare) != git(repo, "rev-parse", "HEAD").strip()
    world.clock.now += 5  # one retry_min later: due, and the moved head is pushed
    assert world.pusher.deadline() is not None and world.pusher.deadline() <= world.clock.now
    assert world.pusher.push_if_due() is True
    assert remote_head(bare) == git(repo, "rev-parse", "HEAD").strip()
    assert world.state.push_state().head == remote_head(bare)


def test_a_failed_push_backs_off_then_retries(world: World, repo: Path, bare: Path) -> None:
    world.pusher.committed()  # no remote "origin" yet
    assert world.pusher.push_if_due() is False
    state = world.state.push_state()
    assert (state.status, state.attempts, state.next_attempt_at) == (
        PushStatus.FAILED,
        1,
        world.clock.now + 5,
    )
    assert state.last_error and "origin" in state.last_error
    assert world.pusher.summary() == f"failed ({state.last_error})"
    world.pusher.committed()  # a new commit keeps the backoff
    assert world.pusher.deadline() == world.clock.now + 5
    assert (
        world.pusher.push_if_due() is False and world.state.push_state().attempts == 1
    )  # not due: not tried
    world.clock.now += 5
    assert world.pusher.push_if_due() is False
    assert (world.state.push_state().attempts, world.pusher.deadline()) == (2, world.clock.now + 10)
    git(repo, "remote", "add", "origin", str(bare))
    assert world.pusher.push_if_due(force=True) is True  # `retry` or a flush does not wait
    assert world.state.push_state().status is PushStatus.SUCCESS


def test_a_detached_head_fails_the_push(world: World, repo: Path, bare: Path) -> None:
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "checkout", "-q", "--detach")
    assert world.pusher.push_if_due(force=True) is False
    assert "HEAD is detached" in (world.state.push_state().last_error or "")


def test_a_malformed_known_hosts_line_is_logged_once_with_file_and_line(
    world: World, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The host-key check skips a line it cannot parse; the push says so, once, naming it."""
    known_hosts = Path(pygit2.settings.homedir or Path.home()) / ".ssh" / "known_hosts"
    if known_hosts.exists():
        pytest.skip("this machine's own known_hosts is not ours to change")
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    try:
        known_hosts.write_text("this-line-is-not-a-known-hosts-entry\n")
        git(repo, "remote", "add", "origin", "ssh://git@127.0.0.1:1/nowhere.git")  # refused at once
        world.pusher.committed()
        assert world.pusher.push_if_due(force=True, timeout=5) is False
        assert world.pusher.push_if_due(force=True, timeout=5) is False
    finally:
        known_hosts.unlink()
    out = capsys.readouterr().out
    assert out.count("known_hosts_line_skipped") == 1 and f"{known_hosts}:1" in out, out
