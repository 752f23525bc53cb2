"""git/snapshot.py on real working trees: what git would stage for one path, read safely."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from mdbackup.git.objects import Entry
from mdbackup.git.repo import open_repository
from mdbackup.git.snapshot import SKIPPED, Failed, Snapshot, snapshot
from tests.support.cli import ROOT
from tests.support.git import git

LIMIT = 10_000_000


def snap(repo: Path, path: str, *, tracked: bool = False, max_file_size: int = LIMIT) -> Snapshot:
    return snapshot(open_repository(repo), path, tracked=tracked, max_file_size=max_file_size)


def git_hash(repo: Path, rel: str) -> pygit2.Oid:
    """The blob id `git add` would give the file (filters applied by path)."""
    return pygit2.Oid(hex=git(repo, "hash-object", "--", rel).strip())


def stored(repo: Path, oid: pygit2.Oid) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), "cat-file", "blob", str(oid)], capture_output=True, check=True
    ).stdout


def test_regular_file_is_its_blob_as_git_hashes_it(repo: Path) -> None:
    (repo / "a.md").write_text("hello\n")
    result = snap(repo, "a.md")
    assert result == Entry(git_hash(repo, "a.md"), FileMode.BLOB)
    assert isinstance(result, Entry) and stored(repo, result.oid) == b"hello\n"


def test_executable_bit_gives_the_executable_mode(repo: Path) -> None:
    path = repo / "run.md"
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    result = snap(repo, "run.md")
    assert isinstance(result, Entry) and result.mode == FileMode.BLOB_EXECUTABLE


def test_git_filters_apply_as_for_git_add(repo: Path) -> None:
    (repo / ".gitattributes").write_text("*.md text eol=lf\n")
    (repo / "crlf.md").write_bytes(b"one\r\ntwo\r\n")
    result = snap(repo, "crlf.md")
    assert isinstance(result, Entry) and result.oid == git_hash(repo, "crlf.md")
    assert stored(repo, result.oid) == b"one\ntwo\n"


def test_symlink_is_its_target_never_read(repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET\n")
    os.symlink(secret, repo / "link.md")
    result = snap(repo, "link.md")
    assert isinstance(result, Entry) and result.mode == FileMode.LINK
    assert stored(repo, result.oid) == os.fsencode(secret)
    assert result.oid == pygit2.hash(os.fsencode(secret))


def test_fifo_is_skipped_and_does_not_block(repo: Path) -> None:
    os.mkfifo(repo / "pipe.md")
    outcome: list[Snapshot] = []
    reader = threading.Thread(target=lambda: outcome.append(snap(repo, "pipe.md", tracked=True)), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "the snapshot blocked on a FIFO"
    assert outcome == [SKIPPED]


def test_path_under_a_symlinked_folder_is_gone_as_for_git(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.md").write_text("outside the work tree\n")
    os.symlink(elsewhere, repo / "linked")
    assert snap(repo, "linked/a.md") is None
    assert snap(repo, "linked/a.md", tracked=True) is None
    refused = subprocess.run(["git", "-C", str(repo), "add", "linked/a.md"], capture_output=True, text=True)
    assert refused.returncode != 0 and "beyond a symbolic link" in refused.stderr


def test_missing_path_and_folder_are_gone(repo: Path) -> None:
    (repo / "folder").mkdir()
    assert snap(repo, "missing.md") is None
    assert snap(repo, "nowhere/missing.md") is None
    assert snap(repo, "folder") is None  # a file that became a folder: its files are paths of their own


def test_path_below_a_file_is_gone(repo: Path) -> None:
    (repo / "file").write_text("a file, not a folder\n")
    assert snap(repo, "file/a.md") is None


def test_ignored_untracked_is_skipped_tracked_is_read(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.secret\n")
    (repo / "x.secret").write_text("x\n")
    assert snap(repo, "x.secret") == SKIPPED
    assert snap(repo, "x.secret", tracked=True) == Entry(git_hash(repo, "x.secret"), FileMode.BLOB)


def test_file_over_the_limit_fails_with_the_reason(repo: Path) -> None:
    (repo / "big.md").write_bytes(b"x" * 101)
    result = snap(repo, "big.md", max_file_size=100)
    assert isinstance(result, Failed) and "101 bytes" in result.reason and "max_file_size" in result.reason
    assert isinstance(snap(repo, "big.md", max_file_size=101), Entry)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_fails_with_the_reason(repo: Path) -> None:
    path = repo / "secret.md"
    path.write_text("no access\n")
    path.chmod(0)
    try:
        assert snap(repo, "secret.md") == Failed("cannot read: Permission denied")
    finally:
        path.chmod(0o644)


def test_name_that_is_not_utf8(repo: Path) -> None:
    name = b"caf\xe9.md"
    with open(os.fsencode(repo) + b"/" + name, "wb") as f:
        f.write(b"latin-1 name\n")
    result = snap(repo, os.fsdecode(name))
    assert isinstance(result, Entry) and stored(repo, result.oid) == b"latin-1 name\n"


def test_folder_answers_are_cached_for_the_pass(repo: Path) -> None:
    (repo / "d").mkdir()
    (repo / "d/a.md").write_text("a\n")
    r = open_repository(repo)
    folders: dict[str, bool] = {}
    assert isinstance(snapshot(r, "d/a.md", tracked=False, max_file_size=LIMIT, folders=folders), Entry)
    assert folders == {"d": True}


BIG_SNAPSHOT = """
import resource, sys
sys.path[:0] = [{daemon!r}, {root!r}]
from mdbackup.git.repo import open_repository
from mdbackup.git.snapshot import snapshot

repo = open_repository({repo!r})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
entry = snapshot(repo, "big.bin", tracked=False, max_file_size=1 << 30)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(entry.oid, (after - before) // 1024, file=sys.stdout)
print((after - before) // 1024, file=sys.stderr)
"""


def test_a_200_mb_file_is_streamed_in_bounded_memory(repo: Path) -> None:
    """Why: a 200 MB file took 441 MiB to commit (read whole, twice). Measured in a child
    process (its peak RSS grows by what the snapshot holds at once): 372-390 MiB before, 0-2 MiB
    after."""
    with open(repo / "big.bin", "wb") as f:
        f.truncate(200 * 1024 * 1024)  # sparse: fast to make, 200 MB to read
    code = BIG_SNAPSHOT.format(daemon=str(ROOT / "daemon"), root=str(ROOT), repo=str(repo))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    oid, grown_mib = out.stdout.split()
    assert oid == str(git_hash(repo, "big.bin"))
    assert int(grown_mib) < 64, f"peak RSS grew by {grown_mib} MiB for a 200 MB file"
