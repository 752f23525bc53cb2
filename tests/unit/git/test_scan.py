"""mdbackup.git.scan.changed_paths on real repositories: what differs from HEAD under the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mdbackup.git.repo import open_repository
from mdbackup.git.scan import changed_paths, path_is_ignored
from tests.support.cli import ROOT
from tests.support.git import git


def scan(repo: Path, prefix: str = "notes"):
    return changed_paths(
        open_repository(repo),
        store_prefix=prefix,
        wants=lambda path: path.endswith(".md"),
        wants_dir=lambda path: not path.endswith("/skip"),
    )


def committed(repo: Path, files: dict[str, str]) -> None:
    """Commit `files` with the git CLI, then make the index's stat data trustworthy
    (the files older than the index: no "racy git" entries)."""
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-f", *files)
    git(repo, "commit", "-q", "-m", "files")
    past = time.time() - 60
    for rel in files:
        os.utime(repo / rel, (past, past))
    git(repo, "update-index", "-q", "--refresh")


def test_a_clean_store_has_no_changes_and_hashes_nothing(repo: Path, store: Path) -> None:
    committed(repo, {"notes/a.md": "a\n", "notes/sub/b.md": "b\n"})
    result = scan(repo)
    assert (result.changed, result.files_seen, result.hashed) == ((), 2, 0)


def test_added_modified_and_deleted_paths(repo: Path, store: Path) -> None:
    committed(repo, {"notes/a.md": "a\n", "notes/b.md": "b\n", "notes/c.md": "c\n"})
    (store / "a.md").write_text("a, edited\n")
    (store / "b.md").unlink()
    (store / "new.md").write_text("new\n")
    os.chmod(store / "c.md", 0o755)
    assert scan(repo).changed == ("notes/a.md", "notes/b.md", "notes/c.md", "notes/new.md")


def test_same_content_rewritten_is_not_a_change(repo: Path, store: Path) -> None:
    committed(repo, {"notes/a.md": "a\n"})
    (store / "a.md").write_text("a\n")  # new mtime, same bytes: hashed, found equal
    result = scan(repo)
    assert (result.changed, result.hashed) == ((), 1)


def test_only_the_store_and_what_is_wanted(repo: Path, store: Path) -> None:
    (repo / "outside.md").write_text("not in the store\n")
    (store / "a.txt").write_text("not wanted\n")
    (store / "skip").mkdir()
    (store / "skip/x.md").write_text("in a folder not wanted\n")
    (store / "a.md").write_text("a\n")
    assert scan(repo).changed == ("notes/a.md",)


def test_a_new_file_ignored_by_gitignore_is_left_out_but_a_tracked_one_stays(repo: Path, store: Path) -> None:
    committed(repo, {"notes/tracked.md": "t\n", ".gitignore": "*.md\n"})
    (store / "ignored.md").write_text("ignored\n")
    (store / "tracked.md").write_text("t, edited\n")
    assert scan(repo).changed == ("notes/tracked.md",)


def test_a_symlink_is_a_file_and_its_target_is_not_followed(repo: Path, store: Path) -> None:
    committed(repo, {"notes/a.md": "a\n"})
    os.symlink("a.md", store / "link.md")
    assert scan(repo).changed == ("notes/link.md",)


def test_a_deleted_store_folder_shows_its_files_deleted(repo: Path, store: Path) -> None:
    committed(repo, {"notes/a.md": "a\n", "notes/sub/b.md": "b\n"})
    (store / "a.md").unlink()
    (store / "sub/b.md").unlink()
    (store / "sub").rmdir()
    store.rmdir()
    assert scan(repo).changed == ("notes/a.md", "notes/sub/b.md")


def test_path_is_ignored_takes_names_that_are_not_utf8(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.tmp\n")
    r = open_repository(repo)
    assert path_is_ignored(r, "notes/x.tmp") and not path_is_ignored(r, "notes/x.md")
    odd = b"notes/caf\xe9".decode("utf-8", "surrogateescape")
    assert path_is_ignored(r, odd + ".tmp") and not path_is_ignored(r, odd + ".md")


def test_a_nested_repository_or_linked_worktree_is_never_entered(repo: Path, store: Path) -> None:
    committed(repo, {"notes/a.md": "a\n"})
    nested = store / "inner"
    nested.mkdir()
    git(nested, "init", "-q")
    (nested / "x.md").write_text("not ours\n")
    git(repo, "worktree", "add", "-q", "notes/wt", "-b", "side")
    (store / "wt" / "y.md").write_text("not ours either\n")
    assert scan(repo).changed == ()


def test_skip_worktree_entries_are_never_reported(repo: Path, store: Path) -> None:
    committed(repo, {"notes/a.md": "a\n", "notes/b.md": "b\n"})
    git(repo, "update-index", "--skip-worktree", "notes/a.md", "notes/b.md")
    (store / "a.md").write_text("local edit\n")
    (store / "b.md").unlink()
    assert scan(repo).changed == ()


def test_file_mode_false_ignores_a_chmod(repo: Path, store: Path) -> None:
    committed(repo, {"notes/a.md": "a\n"})
    git(repo, "config", "core.fileMode", "false")
    os.chmod(store / "a.md", 0o755)
    assert scan(repo).changed == ()
    git(repo, "config", "core.fileMode", "true")
    assert scan(repo).changed == ("notes/a.md",)


FIFO_SCAN = """
import os, sys
sys.path[:0] = [{daemon!r}, {root!r}]
from mdbackup.git.repo import open_repository
from mdbackup.git.scan import changed_paths

def wants(path):
    full = os.path.join({repo!r}, path)
    if path == "notes/a.md" and not os.path.exists(full + ".swapped"):
        open(full + ".swapped", "w").close()
        os.unlink(full)
        os.mkfifo(full)  # swapped in after the walk's lstat, before the hash
    return path.endswith(".md")

result = changed_paths(open_repository({repo!r}), store_prefix="notes", wants=wants, wants_dir=lambda p: True)
print(",".join(result.changed))
"""


def test_a_fifo_swapped_in_for_a_committed_file_does_not_block_the_scan(repo: Path, store: Path) -> None:
    """Why: a FIFO swapped in for a committed file blocked the scan for ever (pygit2.hashfile
    opens it blocking). Run in a child: the old code hangs there, not in the test process."""
    committed(repo, {"notes/a.md": "a\n", "notes/b.md": "b\n"})
    (store / "a.md").write_text("changed, so the index does not vouch for it\n")
    code = FIFO_SCAN.format(daemon=str(ROOT / "daemon"), root=str(ROOT), repo=str(repo))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        out, _ = child.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail("the scan blocked on a FIFO")
    assert child.returncode == 0 and out.strip() == "notes/a.md"


def test_an_unreadable_folder_is_reported_not_swallowed(repo: Path, store: Path) -> None:
    """A folder the walk cannot read (here: its path is longer than PATH_MAX) is reported
    changed, so the commit records it failed with the reason."""
    name = "d" * 200
    fd = os.open(store, os.O_RDONLY)
    try:
        for _ in range(22):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(os.open("deep.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    changed = scan(repo).changed
    assert len(changed) == 1 and changed[0].startswith(f"notes/{name}/") and len(changed[0]) > 4000


def test_a_file_in_an_excluded_folder_stays_ignored_whatever_a_negation_says(repo: Path, store: Path) -> None:
    """git never looks inside an excluded folder, so `!note-*.md` cannot re-include
    `d5/note-1.md` once `d*/` excludes `d5`; libgit2 alone said it was not ignored."""
    (store / ".gitignore").write_text("*.md\n!note-*.md\nd*/\n")
    (store / "d5").mkdir()
    for name in ("d5/note-1.md", "d5/n-1.md", "note-2.md", "n-2.md"):
        (store / name).write_text(f"{name}\n")
    r = open_repository(repo)
    by_git = set(
        git(repo, "check-ignore", "--no-index", "notes/d5/note-1.md", "notes/d5/n-1.md", "notes/note-2.md",
            "notes/n-2.md", check=False).split()
    )  # fmt: skip
    assert by_git == {"notes/d5/note-1.md", "notes/d5/n-1.md", "notes/n-2.md"}
    for path in ("notes/d5/note-1.md", "notes/d5/n-1.md", "notes/note-2.md", "notes/n-2.md"):
        assert path_is_ignored(r, path) == (path in by_git), path
    assert scan(repo).changed == ("notes/note-2.md",)


def test_a_scan_reports_progress_at_every_folder_file_and_chunk(repo: Path, store: Path) -> None:
    """The heartbeat beats on `progress`: never more than a folder, a file or 1 MiB apart."""
    committed(repo, {"notes/a.md": "a\n", "notes/sub/b.md": "b\n", "notes/sub/deeper/c.md": "c\n"})
    (store / "sub/b.md").write_text("b" * (3 << 20))  # 3 MiB: four reads, the last one empty
    calls = []
    result = changed_paths(
        open_repository(repo),
        store_prefix="notes",
        wants=lambda path: path.endswith(".md"),
        wants_dir=lambda path: True,
        progress=lambda: calls.append(1),
    )
    assert result.changed == ("notes/sub/b.md",) and result.hashed == 1
    assert len(calls) == 3 + 3 + 4  # three trees of HEAD, three folders, four chunks of b.md
