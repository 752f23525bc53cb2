"""Lock files a killed mdbackup left are removed at the next start; git's never are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mdbackup.git.leftovers import clear_left_behind, writing
from tests.support.cli import mdbackup
from tests.support.git import git, head_files

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
    assert clear_left_behind(tmp_path / "state") == [lock]
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


def test_next_run_clears_our_stale_index_lock_and_commits(repo: Path, home: Path, store: Path) -> None:
    (store / "a.md").write_text("a\n")
    interrupted_write(repo / ".git/mdbackup", repo / ".git/index.lock")
    result = mdbackup("run", "--once", "--repo", str(repo), "--store", "notes", cwd=repo, home=home)
    assert result.code == 0, result.err
    assert "stale_lock_removed" in result.err
    assert head_files(repo)["notes/a.md"] == "a\n"
    assert git(repo, "status", "--porcelain", "notes") == ""


def test_a_lock_git_holds_is_waited_for_not_removed(repo: Path, home: Path, store: Path) -> None:
    (store / "a.md").write_text("a\n")
    lock = repo / ".git/index.lock"
    lock.write_bytes(b"")  # git's: no marker of ours
    result = mdbackup("run", "--once", "--repo", str(repo), "--store", "notes", cwd=repo, home=home)
    assert result.code == 75
    assert lock.exists()
