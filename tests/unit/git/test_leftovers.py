"""Lock files a killed mdbackup left are removed (or finished) at the next start, only
when provably ours; git's never are."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mdbackup.git import index_lock
from mdbackup.git.leftovers import Cleared, claim, clear_left_behind, writing
from mdbackup.git.repo import open_repository
from tests.support.cli import ROOT, mdbackup
from tests.support.git import git, head_files
from tests.support.wait import wait_until

_DIED_INSIDE: list = []  # open writes, kept alive as a killed process would leave them


def interrupted_write(state: Path, lock: Path) -> None:
    """What a kill -9 inside libgit2's write leaves: the marker and the lock."""
    context = writing(state, [lock])
    context.__enter__()  # never exited: the process "died" in the middle
    _DIED_INSIDE.append(context)
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_bytes(b"half-written")


def test_our_interrupted_write_lock_is_removed(tmp_path: Path) -> None:
    lock = tmp_path / "git/index.lock"
    interrupted_write(tmp_path / "state", lock)
    assert clear_left_behind(tmp_path / "state") == [Cleared(lock, "removed")]
    assert not lock.exists()
    assert not (tmp_path / "state/writing").exists()


def test_a_lock_that_was_there_before_our_write_is_gits(tmp_path: Path) -> None:
    import os

    lock = tmp_path / "git/index.lock"
    lock.parent.mkdir(parents=True)
    lock.write_bytes(b"")
    os.utime(lock, ns=(1, 1))  # created long before our write began
    with writing(tmp_path / "state", [lock]):
        pass
    interrupted_write(tmp_path / "state", tmp_path / "git/other.lock")
    (tmp_path / "state/writing").write_text(f"{lock}\n")  # listed, but older than the marker
    os.utime(tmp_path / "state/writing", ns=(10**18, 10**18))
    assert clear_left_behind(tmp_path / "state") == []
    assert lock.exists()


def test_a_lock_held_open_by_a_live_process_is_never_removed(tmp_path: Path) -> None:
    lock = tmp_path / "git/index.lock"
    interrupted_write(tmp_path / "state", lock)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"f = open({str(lock)!r}, 'rb'); print('open', flush=True); import sys; sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        assert clear_left_behind(tmp_path / "state") == []
        assert lock.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_without_a_marker_nothing_is_removed(tmp_path: Path) -> None:
    lock = tmp_path / "index.lock"
    lock.write_bytes(b"")
    assert clear_left_behind(tmp_path / "state") == []
    assert lock.exists()


def killed_claim(state: Path, lock: Path) -> None:
    """What a kill -9 while we hold a lock leaves: our claim, the lock, no open descriptor."""
    held = claim(state, lock)
    os.write(held.fd, b"half-written")
    os.close(held.fd)


def test_claim_records_the_identity_before_the_lock_exists(tmp_path: Path, monkeypatch) -> None:
    lock = tmp_path / "git/index.lock"
    lock.parent.mkdir()
    seen: list[dict] = []
    real_link = os.link

    def link(src, dst, **kw):  # the moment the lock comes into existence
        seen.append(json.loads((tmp_path / "state/claims/index.lock.json").read_text()))
        assert not os.path.lexists(dst)
        return real_link(src, dst, **kw)

    monkeypatch.setattr(os, "link", link)
    held = claim(tmp_path / "state", lock)
    os.close(held.fd)
    st = lock.stat()
    assert seen == [{"lock": str(lock), "dev": st.st_dev, "ino": st.st_ino}]
    assert os.path.samefile(lock, tmp_path / "state/claims/index.lock")


def test_claim_of_a_held_lock_fails_and_changes_nothing(tmp_path: Path) -> None:
    lock = tmp_path / "index.lock"
    lock.write_bytes(b"git's")
    with pytest.raises(FileExistsError):
        claim(tmp_path / "state", lock)
    assert lock.read_bytes() == b"git's"
    assert list((tmp_path / "state/claims").iterdir()) == []


def test_our_killed_claim_is_removed(tmp_path: Path) -> None:
    lock = tmp_path / "index.lock"
    killed_claim(tmp_path / "state", lock)
    assert clear_left_behind(tmp_path / "state") == [Cleared(lock, "removed")]
    assert not lock.exists()
    assert list((tmp_path / "state/claims").iterdir()) == []


def test_a_lock_replaced_after_our_kill_is_not_ours(tmp_path: Path) -> None:
    """The user removed our stale lock (as git tells them to) and git took a new one."""
    lock = tmp_path / "index.lock"
    killed_claim(tmp_path / "state", lock)
    lock.unlink()
    lock.write_bytes(b"")  # git's own, created after our claim, closed
    assert clear_left_behind(tmp_path / "state") == []
    assert lock.exists()
    assert list((tmp_path / "state/claims").iterdir()) == []  # our bookkeeping is dropped


def test_a_ref_lock_is_ours_only_with_the_commit_id_we_wrote(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "refs/heads/main.lock", tmp_path / "refs/heads/dev.lock"
    ours.parent.mkdir(parents=True)
    context = writing(tmp_path / "state", [ours, theirs], content=b"c" * 40 + b"\n")
    context.__enter__()
    _DIED_INSIDE.append(context)
    ours.write_bytes(b"c" * 40 + b"\n")
    theirs.write_bytes(b"d" * 40 + b"\n")  # created after our marker, but not our bytes
    assert clear_left_behind(tmp_path / "state") == [Cleared(ours, "removed")]
    assert theirs.exists()


KILLER = """
import os, signal, sys
import pygit2
from mdbackup.git.commit import Committer
from mdbackup.git.repo import open_repository
sig = pygit2.Signature("t", "t@example.com")
def step(name):
    if name == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)
Committer(open_repository(sys.argv[1]), step=step).commit_paths(
    ["notes/a.md"], message=lambda c: "backup", author=sig, committer=sig, max_file_size=10**6)
"""


def kill_committer_at(repo: Path, step: str, *, pythonpath: str | None = None) -> None:
    env = {**os.environ, "PYTHONPATH": pythonpath or f"{ROOT / 'daemon'}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-c", KILLER, str(repo), step], env=env, check=False)
    assert done.returncode == -signal.SIGKILL


def test_a_kill_after_the_branch_moved_is_finished_at_start(repo: Path, store: Path) -> None:
    """Killed between the branch move and the rename: the next start puts our complete
    index in place, so the user's next `git commit` does not revert the backup."""
    (store / "a.md").write_text("a\n")
    kill_committer_at(repo, "ref_moved")
    assert head_files(repo)["notes/a.md"] == "a\n"
    assert (repo / ".git/index.lock").exists()
    cleared = index_lock.clear_left_behind(open_repository(repo))
    assert [c.action for c in cleared] == ["completed"]
    assert not (repo / ".git/index.lock").exists()
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("step", ["index_written", "commit_written"])
def test_a_kill_before_the_branch_moved_is_rolled_back_at_start(repo: Path, store: Path, step: str) -> None:
    (store / "a.md").write_text("a\n")
    index_before = (repo / ".git/index").read_bytes()
    head = git(repo, "rev-parse", "HEAD")
    kill_committer_at(repo, step)
    cleared = index_lock.clear_left_behind(open_repository(repo))
    assert [c.action for c in cleared] == ["removed"]
    assert not (repo / ".git/index.lock").exists()
    assert (repo / ".git/index").read_bytes() == index_before
    assert git(repo, "rev-parse", "HEAD") == head


def test_next_run_clears_our_stale_index_lock_and_commits(repo: Path, home: Path, store: Path) -> None:
    (store / "a.md").write_text("a\n")
    kill_committer_at(repo, "index_written")
    assert (repo / ".git/index.lock").exists()
    result = mdbackup("run", "--once", "--repo", str(repo), "--store", "notes", cwd=repo, home=home)
    assert result.code == 0, result.err
    assert "stale_lock_removed" in result.err
    assert head_files(repo)["notes/a.md"] == "a\n"
    assert git(repo, "status", "--porcelain", "notes") == ""


def test_git_commit_with_its_editor_open_keeps_its_index_lock_after_our_kill(
    repo: Path, home: Path, store: Path, tmp_path: Path
) -> None:
    """mdbackup was killed mid-batch; the user (after removing any lock git complained
    about) runs `git commit -a`, whose editor is open: git holds index.lock on disk, closed.
    The restarted mdbackup must wait (busy), never remove that lock."""
    (store / "a.md").write_text("a\n")
    kill_committer_at(repo, "index_written")
    (repo / ".git/index.lock").unlink(missing_ok=True)  # as git's message tells the user
    (repo / "user.txt").write_text("user\n")
    git(repo, "add", "user.txt")
    opened, release = tmp_path / "editor-open", tmp_path / "editor-release"
    editor = tmp_path / "editor.sh"
    editor.write_text(
        f'#!/bin/sh\ntouch {opened}\nwhile [ ! -e {release} ]; do sleep 0.05; done\necho msg > "$1"\n'
    )
    editor.chmod(0o755)
    user = subprocess.Popen(
        ["git", "-C", str(repo), "commit", "-q", "-a"],  # -a: index.lock held while the editor is open
        env={**os.environ, "GIT_EDITOR": str(editor)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(opened.exists, timeout=20, message="git commit's editor to open")
        lock = repo / ".git/index.lock"
        assert lock.exists()
        result = mdbackup("run", "--once", "--repo", str(repo), "--store", "notes", cwd=repo, home=home)
        assert lock.exists(), "git's index.lock was removed"
        assert result.code == 75, result.err
    finally:
        release.touch()
        _out, err = user.communicate(timeout=30)
    assert user.returncode == 0, err
    assert "user.txt" in head_files(repo)


def test_a_lock_git_holds_is_waited_for_not_removed(repo: Path, home: Path, store: Path) -> None:
    (store / "a.md").write_text("a\n")
    lock = repo / ".git/index.lock"
    lock.write_bytes(b"")  # git's: no marker of ours
    result = mdbackup("run", "--once", "--repo", str(repo), "--store", "notes", cwd=repo, home=home)
    assert result.code == 75
    assert lock.exists()
