"""mdbackup.git.push and .credentials against real remotes: bare repos, OpenSSH, smart HTTP.

The remote side is always inspected with the git CLI (`remote_ref`). libgit2
reads known_hosts from `<homedir>/.ssh/known_hosts`, where homedir is what HOME
was when pygit2 was imported; the `git_home` fixture points
`pygit2.settings.homedir` at a temp dir for each test and restores it after.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pygit2
import pytest

from mdbackup.git import hostkeys, layout, leftovers
from mdbackup.git import push as push_mod
from mdbackup.git.credentials import Credentials
from mdbackup.git.push import PushResult, check_remote, push_branch
from mdbackup.git.remote_errors import Diverged, parse_url
from tests.support.secrets import register
from tests.support.servers import (  # fixtures ssh_server, http_server: conftest
    init_bare,
    remote_ref,
    ssh_agent,
)

SIG = pygit2.Signature("mdbackup test", "t@example.com")
NO_CREDS = Credentials(ssh_key=None, ssh_passphrase=None, username="git", token=None, ssh_agent=False)


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def git_home(tmp_path: Path):
    """An empty HOME for libgit2 (known_hosts, global config), restored afterwards."""
    home = tmp_path / "githome"
    (home / ".ssh").mkdir(parents=True)
    old = pygit2.settings.homedir
    pygit2.settings.homedir = str(home)
    try:
        yield home
    finally:
        pygit2.settings.homedir = old


def make_clone(path: Path, url: str | None, *, files: dict[str, str] | None = None) -> pygit2.Repository:
    """A non-bare repository on main with one commit and `origin` pointing at `url`."""
    repo = pygit2.init_repository(str(path), initial_head="main")
    commit(repo, files or {"a.md": "first\n"}, "initial")
    if url is not None:
        repo.remotes.create("origin", url)
    return repo


def commit(repo: pygit2.Repository, files: dict[str, str], message: str = "change") -> str:
    workdir = Path(repo.workdir)
    for name, text in files.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
        repo.index.add(name)
    repo.index.write()
    tree = repo.index.write_tree()
    parents = [] if repo.head_is_unborn else [repo.head.target]
    return str(repo.create_commit("refs/heads/main", SIG, SIG, message, tree, parents))


def git_fetch(repo: pygit2.Repository, url: str) -> None:
    """Fetch the remote's main into refs/remotes/origin/main with the git CLI (test side)."""
    subprocess.run(
        ["git", "-C", repo.workdir, "fetch", "-q", url, "+refs/heads/main:refs/remotes/origin/main"],
        check=True,
        capture_output=True,
    )


def push(repo: pygit2.Repository, creds: Credentials = NO_CREDS, **kw) -> PushResult:
    return push_branch(
        repo, remote_name="origin", local_branch="main", remote_branch="main", credentials=creds, **kw
    )


def head(repo: pygit2.Repository) -> str:
    return str(repo.references["refs/heads/main"].target)


# ----------------------------------------------------------------------------- local remotes


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_push_to_bare_repository(tmp_path: Path, form: str):
    bare = init_bare(tmp_path / "remote.git")
    url = str(bare) if form == "path" else bare.as_uri()
    repo = make_clone(tmp_path / "work", url)

    first = push(repo)
    assert first.ok and first.kind is None and first.error is None
    assert first.pushed_oid == head(repo) == remote_ref(bare)
    assert first.remote_before is None and first.commits == 1

    again = push(repo)
    assert again.ok and again.commits == 0 and again.remote_before == head(repo)

    before = head(repo)
    commit(repo, {"b.md": "two\n"})
    commit(repo, {"c.md": "three\n"})
    result = push(repo)
    assert result.ok and result.commits == 2 and result.remote_before == before
    assert remote_ref(bare) == head(repo)


def test_diverged_remote_is_never_overwritten(tmp_path: Path):
    bare = init_bare(tmp_path / "remote.git")
    mine = make_clone(tmp_path / "mine", str(bare))
    assert push(mine).ok

    # Another clone pushes first.
    subprocess.run(["git", "clone", "-q", str(bare), str(tmp_path / "other")], check=True)
    other = pygit2.Repository(str(tmp_path / "other"))
    theirs = commit(other, {"theirs.md": "from elsewhere\n"})
    subprocess.run(["git", "-C", str(tmp_path / "other"), "push", "-q", "origin", "main"], check=True)
    assert remote_ref(bare) == theirs

    commit(mine, {"mine.md": "mine\n"})

    # Their commit is not in my object database: diverged, count unknown.
    result = push(mine)
    assert not result.ok and result.kind == "diverged"
    assert result.error == f"remote has diverged: remote branch at {theirs[:12]} is not in the local branch"
    assert result.behind == -1 and result.remote_before == theirs
    assert remote_ref(bare) == theirs

    # Once their commits are known locally, they are counted.
    commit(other, {"theirs2.md": "more\n"})
    subprocess.run(["git", "-C", str(tmp_path / "other"), "push", "-q", "origin", "main"], check=True)
    theirs2 = remote_ref(bare)
    git_fetch(mine, str(bare))
    result = push(mine)
    assert not result.ok and result.kind == "diverged" and result.behind == 2
    assert result.remote_before == theirs2
    assert result.error == "remote has diverged: 2 commits not in local branch"
    assert remote_ref(bare) == theirs2


def test_negotiation_refuses_non_fast_forward_when_the_listing_was_stale(tmp_path: Path, monkeypatch):
    """Second line of defense: the remote moves between the listing and the push."""
    bare = init_bare(tmp_path / "remote.git")
    mine = make_clone(tmp_path / "mine", str(bare))
    assert push(mine).ok
    stale = remote_ref(bare)
    subprocess.run(["git", "clone", "-q", str(bare), str(tmp_path / "other")], check=True)
    other = pygit2.Repository(str(tmp_path / "other"))
    theirs = commit(other, {"theirs.md": "x\n"})
    subprocess.run(["git", "-C", str(tmp_path / "other"), "push", "-q", "origin", "main"], check=True)
    git_fetch(mine, str(bare))  # known locally, so only ancestry can stop it
    commit(mine, {"mine.md": "y\n"})

    real = push_mod._list_heads

    def stale_listing(*args, **kw):
        listed = real(*args, **kw)
        heads, url = listed
        return {**heads, "refs/heads/main": stale}, url

    monkeypatch.setattr(push_mod, "_list_heads", stale_listing)
    result = push(mine)
    assert not result.ok and result.kind == "diverged", result
    assert remote_ref(bare) == theirs


def test_push_negotiation_callback_rejects_rewinds(tmp_path: Path):
    repo = make_clone(tmp_path / "w", None)
    base = head(repo)
    ahead = commit(repo, {"b.md": "b\n"})
    side = str(repo.create_commit(None, SIG, SIG, "side", repo[base].tree_id, [base]))
    cb = push_mod._PushCallbacks(
        credentials=NO_CREDS, url=parse_url("/x"), deadline=time.monotonic() + 60, repo=repo
    )

    class Update:
        def __init__(self, src: str, dst: str):
            self.src_refname = self.dst_refname = "refs/heads/main"
            self.src, self.dst = pygit2.Oid(hex=src), pygit2.Oid(hex=dst)

    cb.push_negotiation([Update(base, ahead)])  # fast-forward: fine
    cb.push_negotiation([Update("0" * 40, ahead)])  # new branch: fine
    with pytest.raises(Diverged, match="1 commit not in local branch"):
        cb.push_negotiation([Update(ahead, side)])
    with pytest.raises(Diverged, match="is not in the local branch"):
        cb.push_negotiation([Update("1" * 40, ahead)])


def test_remote_moved_away_then_back(tmp_path: Path):
    bare = init_bare(tmp_path / "remote.git")
    for url in (str(bare), bare.as_uri()):
        repo_dir = tmp_path / f"w{len(url)}"
        repo = make_clone(repo_dir, url)
        bare.rename(tmp_path / "moved.git")
        result = push(repo)
        assert not result.ok and result.kind == "unreachable", result
        assert str(bare) in result.error and "\n" not in result.error
        checked = check_remote(repo, remote_name="origin", remote_branch="main", credentials=NO_CREDS)
        assert not checked.ok and checked.kind == "unreachable"
        (tmp_path / "moved.git").rename(bare)
        result = push(repo)
        assert result.ok, result
        assert remote_ref(bare) == head(repo)
        shutil.rmtree(bare)
        init_bare(bare)


def test_no_remote_and_no_branch(tmp_path: Path):
    bare = init_bare(tmp_path / "remote.git")
    repo = make_clone(tmp_path / "w", str(bare))
    result = push_branch(
        repo, remote_name="upstream", local_branch="main", remote_branch="main", credentials=NO_CREDS
    )
    assert (result.ok, result.kind, result.error) == (False, "no-remote", "no remote named 'upstream'")
    result = push_branch(
        repo, remote_name="origin", local_branch="nope", remote_branch="nope", credentials=NO_CREDS
    )
    assert not result.ok and result.kind == "no-branch" and "'nope'" in result.error
    assert (
        check_remote(repo, remote_name="upstream", remote_branch="main", credentials=NO_CREDS).kind
        == "no-remote"
    )
    assert remote_ref(bare) is None


def test_check_remote_reports_the_remote_branch(tmp_path: Path):
    bare = init_bare(tmp_path / "remote.git")
    repo = make_clone(tmp_path / "w", str(bare))
    result = check_remote(repo, remote_name="origin", remote_branch="main", credentials=NO_CREDS)
    assert result.ok and result.remote_before is None
    assert push(repo).ok
    result = check_remote(repo, remote_name="origin", remote_branch="main", credentials=NO_CREDS)
    assert result.ok and result.remote_before == head(repo)


def test_push_marks_the_tracking_ref_lock_while_it_writes(tmp_path: Path, monkeypatch):
    """The push lists the remote-tracking ref's lock in the leftovers marker while libgit2
    may write it; the marker is gone afterwards. A held lock is reported, never removed."""
    bare = init_bare(tmp_path / "remote.git")
    repo = make_clone(tmp_path / "w", str(bare))
    git_dir = Path(repo.path)
    marker = layout.state_dir(git_dir) / leftovers.MARKER_NAME
    lock = layout.ref_lock(git_dir, "refs/remotes/origin/main")
    seen: list[str] = []
    real = pygit2.Repository.create_reference_direct

    def spy(self, name, target, force, message=None):
        if name.startswith("refs/remotes/"):  # a path remote: the tracking ref is written by us
            seen.append(marker.read_text())
        return real(self, name, target, force, message=message)

    monkeypatch.setattr(pygit2.Repository, "create_reference_direct", spy)
    assert push(repo).ok
    marked = [line for text in seen for line in text.splitlines()]
    assert [json.loads(m)["lock"] if m.startswith("{") else m for m in marked] == [str(lock)]
    assert not marker.exists()

    commit(repo, {"b.md": "b\n"})
    lock.write_text("held by someone else\n")
    result = push(repo)
    assert result.ok and result.commits == 1 and remote_ref(bare) == head(repo)
    assert result.warning and "remote-tracking ref was not updated" in result.warning
    assert lock.exists() and not marker.exists()


# ----------------------------------------------------------------------------- ssh


def ssh_creds(server, **kw) -> Credentials:
    base = dict(ssh_key=server.client_key, ssh_passphrase=None, username="git", token=None, ssh_agent=False)
    base.update(kw)
    return Credentials(**base)


def test_ssh_push_with_key_file(ssh_server, git_home, tmp_path):
    ssh_server.write_known_hosts(git_home / ".ssh" / "known_hosts")
    repo = make_clone(tmp_path / "w", ssh_server.url)
    creds = ssh_creds(ssh_server)
    assert check_remote(repo, remote_name="origin", remote_branch="main", credentials=creds).ok
    result = push(repo, creds)
    assert result.ok, result
    assert remote_ref(ssh_server.bare) == head(repo)
    commit(repo, {"b.md": "b\n"})
    result = push(repo, creds)
    assert result.ok and result.commits == 1 and remote_ref(ssh_server.bare) == head(repo)


def test_ssh_push_with_hashed_known_hosts_and_default_key(ssh_server, git_home, tmp_path):
    ssh_server.write_known_hosts(git_home / ".ssh" / "known_hosts", hashed=True)
    repo = make_clone(tmp_path / "w", ssh_server.url)
    missing = tmp_path / "id_missing"
    creds = ssh_creds(
        ssh_server, ssh_key=None, default_keys=(missing, ssh_server.unauthorized_key, ssh_server.client_key)
    )
    result = push(repo, creds)
    assert result.ok, result
    assert remote_ref(ssh_server.bare) == head(repo)


def test_ssh_push_with_passphrase_key(ssh_server, git_home, tmp_path):
    ssh_server.write_known_hosts(git_home / ".ssh" / "known_hosts")
    repo = make_clone(tmp_path / "w", ssh_server.url)
    wrong = ssh_creds(ssh_server, ssh_key=ssh_server.passphrase_key, ssh_passphrase="not-the-passphrase-xyz")
    result = push(repo, wrong)
    assert not result.ok and result.kind == "auth", result
    assert "not-the-passphrase-xyz" not in result.error and "not-the-passphrase-xyz" not in repr(wrong)
    assert remote_ref(ssh_server.bare) is None

    missing = ssh_creds(ssh_server, ssh_key=ssh_server.passphrase_key, ssh_passphrase=None)
    result = push(repo, missing)
    assert not result.ok and result.kind == "auth"
    assert "passphrase-protected and no passphrase was given" in result.error

    good = ssh_creds(ssh_server, ssh_key=ssh_server.passphrase_key, ssh_passphrase=ssh_server.passphrase)
    result = push(repo, good)
    assert result.ok, result
    assert remote_ref(ssh_server.bare) == head(repo)


def test_ssh_push_with_agent(ssh_server, git_home, tmp_path, monkeypatch):
    ssh_server.write_known_hosts(git_home / ".ssh" / "known_hosts")
    repo = make_clone(tmp_path / "w", ssh_server.url)
    creds = ssh_creds(ssh_server, ssh_key=None, ssh_agent=True)
    with ssh_agent(ssh_server.passphrase_key, passphrase=ssh_server.passphrase) as sock:
        monkeypatch.setenv("SSH_AUTH_SOCK", sock)
        result = push(repo, creds)
    assert result.ok, result
    assert remote_ref(ssh_server.bare) == head(repo)


def test_ssh_agent_without_a_good_key_falls_back_to_the_key_file(ssh_server, git_home, tmp_path, monkeypatch):
    ssh_server.write_known_hosts(git_home / ".ssh" / "known_hosts")
    repo = make_clone(tmp_path / "w", ssh_server.url)
    creds = ssh_creds(ssh_server, ssh_agent=True)
    with ssh_agent(ssh_server.unauthorized_key) as sock:
        monkeypatch.setenv("SSH_AUTH_SOCK", sock)
        result = push(repo, creds)
    assert result.ok, result
    monkeypatch.delenv("SSH_AUTH_SOCK")  # an agent flag without an agent is harmless too
    commit(repo, {"b.md": "b\n"})
    assert push(repo, creds).ok
    assert remote_ref(ssh_server.bare) == head(repo)


def test_ssh_rejected_key_fails_fast_and_says_what_was_tried(ssh_server, git_home, tmp_path):
    ssh_server.write_known_hosts(git_home / ".ssh" / "known_hosts")
    repo = make_clone(tmp_path / "w", ssh_server.url)
    creds = ssh_creds(ssh_server, ssh_key=ssh_server.unauthorized_key)
    started = time.monotonic()
    result = push(repo, creds)
    assert time.monotonic() - started < 10
    assert not result.ok and result.kind == "auth"
    assert result.error.startswith(f"authentication failed for {ssh_server.url}")
    assert str(ssh_server.unauthorized_key) in result.error
    assert remote_ref(ssh_server.bare) is None


def test_ssh_unknown_host_key_is_refused(ssh_server, git_home, tmp_path):
    # no known_hosts at all in libgit2's HOME
    repo = make_clone(tmp_path / "w", ssh_server.url)
    result = push(repo, ssh_creds(ssh_server))
    assert not result.ok and result.kind == "host-key", result
    assert "unknown" in result.error and f"[127.0.0.1]:{ssh_server.port}" in result.error
    assert f"ssh-keyscan -p {ssh_server.port} 127.0.0.1" in result.error
    assert remote_ref(ssh_server.bare) is None

    # a known_hosts listing only other hosts
    (git_home / ".ssh" / "known_hosts").write_text(
        ssh_server.known_hosts_line.replace(f"[127.0.0.1]:{ssh_server.port}", "example.org") + "\n"
    )
    result = check_remote(repo, remote_name="origin", remote_branch="main", credentials=ssh_creds(ssh_server))
    assert not result.ok and result.kind == "host-key" and "unknown" in result.error


@pytest.mark.parametrize("hashed", [False, True])
def test_ssh_changed_host_key_is_refused(ssh_server, git_home, tmp_path, hashed):
    known_hosts = ssh_server.write_known_hosts(git_home / ".ssh" / "known_hosts", changed=True, hashed=hashed)
    repo = make_clone(tmp_path / "w", ssh_server.url)
    result = push(repo, ssh_creds(ssh_server))
    assert not result.ok and result.kind == "host-key", result
    assert "CHANGED" in result.error and "ssh-keygen -R" in result.error
    assert remote_ref(ssh_server.bare) is None
    # explicit known_hosts path in the credentials is the one named
    creds = ssh_creds(ssh_server, known_hosts=known_hosts)
    assert str(known_hosts) in push(repo, creds).error


# ----------------------------------------------------------------------------- http


def http_creds(server, token: str | None = None) -> Credentials:
    return Credentials(
        ssh_key=None,
        ssh_passphrase=None,
        username=server.username,
        token=server.token if token is None else token,
        ssh_agent=False,
    )


def test_http_push_with_token(http_server, git_home, tmp_path):
    repo = make_clone(tmp_path / "w", http_server.url)
    creds = http_creds(http_server)
    assert http_server.token not in repr(creds) and http_server.token not in str(creds)
    assert check_remote(repo, remote_name="origin", remote_branch="main", credentials=creds).ok
    result = push(repo, creds)
    assert result.ok, result
    assert remote_ref(http_server.bare) == head(repo)
    # a bigger pack, streamed with chunked transfer-encoding
    commit(repo, {"big.md": os.urandom(600_000).hex()})
    result = push(repo, creds)
    assert result.ok, result
    assert remote_ref(http_server.bare) == head(repo)
    assert http_server.chunked_requests >= 1
    checked = check_remote(repo, remote_name="origin", remote_branch="main", credentials=creds)
    assert checked.ok and checked.remote_before == head(repo)


def test_http_wrong_token_fails_fast_without_leaking_it(http_server, git_home, tmp_path):
    repo = make_clone(tmp_path / "w", http_server.url)
    wrong = "wrong-" + http_server.token[::-1]
    creds = http_creds(http_server, token=wrong)
    started = time.monotonic()
    result = push(repo, creds)
    elapsed = time.monotonic() - started
    assert elapsed < 10
    assert not result.ok and result.kind == "auth", result
    assert result.error.startswith(f"authentication failed for {http_server.url}")
    assert wrong not in result.error and http_server.token not in result.error
    assert http_server.auth_failures <= 3  # no replay storm
    assert remote_ref(http_server.bare) is None

    no_token = http_creds(http_server, token="")
    result = check_remote(repo, remote_name="origin", remote_branch="main", credentials=no_token)
    assert not result.ok and result.kind == "auth" and "none is configured" in result.error


def test_http_token_in_url_never_appears_in_errors(http_server, git_home, tmp_path):
    secret = "s3cr3t-in-url"
    url = http_server.url.replace("http://", f"http://{http_server.username}:{secret}@")
    repo = make_clone(tmp_path / "w", url)
    result = push(repo, http_creds(http_server, token=secret))
    assert not result.ok and result.kind == "auth"
    assert secret not in result.error


def test_http_hook_rejection_is_a_failure(http_server, git_home, tmp_path):
    repo = make_clone(tmp_path / "w", http_server.url)
    creds = http_creds(http_server)
    assert push(repo, creds).ok
    accepted = remote_ref(http_server.bare)
    http_server.install_declining_hook("no pushes on fridays")
    commit(repo, {"b.md": "b\n"})
    result = push(repo, creds)
    assert not result.ok and result.kind == "rejected", result
    assert "pre-receive hook declined" in result.error and "no pushes on fridays" in result.error
    assert result.remote_before == accepted
    assert remote_ref(http_server.bare) == accepted


def test_http_unreachable_and_missing_repository(http_server, git_home, tmp_path):
    port = http_server.port
    repo = make_clone(tmp_path / "w", f"http://127.0.0.1:{port}/nothere.git")
    result = push(repo, http_creds(http_server))
    assert not result.ok and result.kind == "unreachable" and "404" in result.error

    from tests.support.servers import free_port

    repo.remotes.set_url("origin", f"http://127.0.0.1:{free_port()}/remote.git")
    started = time.monotonic()
    result = push(repo, http_creds(http_server), timeout=5)
    assert time.monotonic() - started < 10
    assert not result.ok and result.kind == "unreachable" and "cannot reach" in result.error


def test_ssh_remote_moved_away_then_back(ssh_server, git_home, tmp_path):
    ssh_server.write_known_hosts(git_home / ".ssh" / "known_hosts")
    repo = make_clone(tmp_path / "w", ssh_server.url)
    creds = ssh_creds(ssh_server)
    moved = ssh_server.bare.with_name("moved.git")
    ssh_server.bare.rename(moved)
    result = push(repo, creds)
    assert not result.ok and result.kind == "unreachable", result
    assert "does not appear to be a git repository" in result.error
    moved.rename(ssh_server.bare)
    assert push(repo, creds).ok
    assert remote_ref(ssh_server.bare) == head(repo)


@pytest.mark.parametrize("scheme", ["ssh", "http"])
def test_silent_server_is_bounded_by_the_timeout(git_home, tmp_path, scheme):
    """A server that accepts the connection and never answers: unreachable after ~timeout."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
        port = silent.getsockname()[1]
        url = f"ssh://git@127.0.0.1:{port}/x.git" if scheme == "ssh" else f"http://127.0.0.1:{port}/x.git"
        repo = make_clone(tmp_path / "w", url)
        started = time.monotonic()
        result = push(repo, NO_CREDS, timeout=1.0)
        elapsed = time.monotonic() - started
    assert not result.ok and result.kind == "unreachable", result
    assert "timed out" in result.error.lower()
    assert elapsed < 5, elapsed


# ------------------------------------------------------------------------ known_hosts as OpenSSH reads it


def _pub(server) -> str:
    """`TYPE BASE64` of the test sshd's host key."""
    return server.known_hosts_line.split(None, 1)[1]


def _ssh_push(server, git_home: Path, tmp_path: Path, **creds) -> PushResult:
    repo = make_clone(tmp_path / "w", server.url)
    result = push(repo, ssh_creds(server, global_known_hosts=None, **creds))
    assert (remote_ref(server.bare) == head(repo)) is result.ok, result
    return result


@pytest.mark.parametrize("where", ["before", "after", "star"])
def test_ssh_revoked_host_key_is_refused(ssh_server, git_home, tmp_path, where):
    good = ssh_server.known_hosts_line
    revoked = f"@revoked {'*' if where == 'star' else ssh_server.host_pattern} {_pub(ssh_server)}"
    lines = [revoked, good] if where == "before" else [good, revoked]
    (git_home / ".ssh" / "known_hosts").write_text("\n".join(lines) + "\n")
    result = _ssh_push(ssh_server, git_home, tmp_path)
    assert not result.ok and result.kind == "host-key", result
    assert "REVOKED HOST KEY DETECTED" in result.error
    assert f"host key for {ssh_server.host_pattern} is marked as revoked" in result.error


def test_ssh_bracketed_entry_with_another_key_is_not_overridden_by_a_portless_line(
    ssh_server, git_home, tmp_path
):
    other = ssh_server.other_host_key_line()  # [127.0.0.1]:PORT with another key
    (git_home / ".ssh" / "known_hosts").write_text(f"{other}\n{ssh_server.host} {_pub(ssh_server)}\n")
    result = _ssh_push(ssh_server, git_home, tmp_path)
    assert not result.ok and result.kind == "host-key", result
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.error


def test_ssh_portless_line_vouches_when_no_bracketed_entry_exists(ssh_server, git_home, tmp_path):
    (git_home / ".ssh" / "known_hosts").write_text(f"{ssh_server.host} {_pub(ssh_server)}\n")
    assert _ssh_push(ssh_server, git_home, tmp_path).ok


@pytest.mark.parametrize("bad", ["bare-hostname", "long-line"])
def test_ssh_one_unparsable_known_hosts_line_does_not_break_every_push(ssh_server, git_home, tmp_path, bad):
    if bad == "bare-hostname":
        junk = "some-host-without-a-key"
    else:
        junk = ",".join(f"host{i}.example.org" for i in range(300)) + f" {_pub(ssh_server)}"
        assert len(junk) > 4096
    (git_home / ".ssh" / "known_hosts").write_text(f"{junk}\n{ssh_server.known_hosts_line}\n")
    result = _ssh_push(ssh_server, git_home, tmp_path)
    assert result.ok, result


@pytest.mark.parametrize("form", ["crlf", "wildcard"])
def test_ssh_crlf_file_or_wildcard_entry_gives_no_false_changed(ssh_server, git_home, tmp_path, form):
    if form == "crlf":
        text = f"# notes\r\n{ssh_server.known_hosts_line}\r\n"
    else:
        text = f"[127.0.0.*]:* {_pub(ssh_server)}\n"
    (git_home / ".ssh" / "known_hosts").write_bytes(text.encode())
    result = _ssh_push(ssh_server, git_home, tmp_path)
    assert result.ok, result


def test_ssh_global_known_hosts_is_read(ssh_server, git_home, tmp_path):
    global_file = tmp_path / "etc" / "ssh_known_hosts"
    ssh_server.write_known_hosts(global_file)
    repo = make_clone(tmp_path / "w", ssh_server.url)
    assert not push(repo, ssh_creds(ssh_server, global_known_hosts=None)).ok  # the user file is empty
    result = push(repo, ssh_creds(ssh_server, global_known_hosts=global_file))
    assert result.ok, result
    assert remote_ref(ssh_server.bare) == head(repo)


def test_ssh_host_key_is_read_from_libgit2(ssh_server, git_home, tmp_path, monkeypatch):
    """The check sees the server's own key (not only libssh2's verdict): if pygit2 ever stops
    leaving libgit2's git_cert_hostkey where hostkeys.py finds it, this fails first."""
    seen: list[object] = []
    real = hostkeys.server_key_from_callback

    def spy():
        key = real()
        seen.append(key)
        return key

    monkeypatch.setattr(hostkeys, "server_key_from_callback", spy)
    ssh_server.write_known_hosts(git_home / ".ssh" / "known_hosts")
    assert _ssh_push(ssh_server, git_home, tmp_path).ok
    blob = base64.b64decode(_pub(ssh_server).split()[1])
    assert seen and all(getattr(k, "blob", None) == blob for k in seen), seen


# ------------------------------------------------------------------ credentials stay with their host


def _carries(authorizations: list[str], token: str) -> bool:
    """Whether any Basic Authorization header among `authorizations` holds `token`."""
    return any(
        header.startswith("Basic ") and token in base64.b64decode(header[6:]).decode(errors="replace")
        for header in authorizations
    )


@pytest.mark.parametrize("after_auth", [False, True], ids=["before-auth", "after-auth"])
def test_a_redirect_to_another_host_gets_no_token(
    http_server, other_http_server, git_home, tmp_path, after_auth
):
    # 127.0.0.1 redirects to `localhost`: another host name, so another origin for the token.
    other_http_server.server.token = http_server.token  # a token sent there would be accepted
    http_server.redirect(f"http://localhost:{other_http_server.port}", after_auth=after_auth)
    repo = make_clone(tmp_path / "w", http_server.url)
    result = push(repo, http_creds(http_server))
    assert not result.ok, result
    assert not _carries(other_http_server.authorizations, http_server.token)
    assert remote_ref(other_http_server.bare) is None
    assert result.kind == "auth" and "redirected to another host" in result.error, result
    assert f"localhost:{other_http_server.port}" in result.error
    assert http_server.token not in result.error


def test_a_token_as_the_url_user_name_is_scrubbed_from_errors(http_server, git_home, tmp_path):
    token = register("ghp_" + "x7" * 18)
    url = http_server.url.replace("http://", f"http://{token}@")
    repo = make_clone(tmp_path / "w", url)
    creds = http_creds(http_server, token="wrong-" + http_server.token)
    result = push(repo, creds)
    assert not result.ok and result.kind == "auth", result
    assert token not in (result.error or "")
    checked = check_remote(repo, remote_name="origin", remote_branch="main", credentials=creds)
    assert not checked.ok and checked.kind == "auth" and token not in (checked.error or "")


def test_plain_http_with_a_password_in_the_url_is_refused_before_connecting(git_home, tmp_path):
    # Not loopback and not resolvable: refused before any name lookup or connection.
    repo = make_clone(tmp_path / "w", "http://user:pa55word-in-url@backup.invalid/remote.git")
    result = push(repo, NO_CREDS)
    assert not result.ok and result.kind == "auth", result
    assert "plain http://" in (result.error or "") and "auth.allow_plain_http" in (result.error or "")
    assert "pa55word-in-url" not in (result.error or "")
    allowed = push(repo, dataclasses.replace(NO_CREDS, allow_plain_http=True))
    assert not allowed.ok and allowed.kind == "unreachable", allowed
