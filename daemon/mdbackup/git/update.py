"""Move the checked-out branch to a synced commit: working-tree files, index, branch.

Reads no config (`is_store` says which paths are the store's). Git's order, under git's
own `index.lock` held from the first check to the rename (`index_lock`):

1. HEAD, the branch and git's state are checked (anything moved: `moved`, nothing done);
2. every path that differs between the old and the new tree is looked at: the file on
   disk must equal the old tree's version (or already the new one). A store path the
   user changed is `dirty` (commit it first, then merge again; with `dirty_is_raced`, for
   a file that keeps changing, it is treated as `raced` below); a path outside the store
   the user changed (file or index entry) is `blocked_by`; nothing is written then;
3. each file is written to a temporary file and swapped in only while the file there is
   still the one checked (`workfiles.place`: an atomic exchange, given back to a save that
   landed in between); a file changed meanwhile is left as the user's (`raced`: committed
   next as a new change, the remote's version is in history); deletions likewise;
4. the index entries of those paths get the new tree's entries (no stat data: `git status`
   hashes them once and finds them clean), written to our copy; the branch moves by
   compare-and-swap (`branch.move`); the new index is renamed into place.

Steps reported: `sync_tree_written`, `sync_index_written`, `sync_ref_moved`. A kill at any
of them converges at the next start: files written before the branch moved equal the
new version, which step 2 accepts, and the index waits for the branch (`leftovers`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import DeltaStatus, FileMode, FilterMode, RepositoryState

from mdbackup.git import branch, workfiles
from mdbackup.git.attributes import apply_filter_list, driver_for
from mdbackup.git.index_lock import IndexBusy, IndexFiles
from mdbackup.git.objects import Entry
from mdbackup.git.repo import busy_reason
from mdbackup.git.scan import hash_file


@dataclass(frozen=True, kw_only=True)
class Change:
    """One path that differs between the old and the new tree (None: absent there)."""

    path: str
    old: Entry | None
    new: Entry | None


@dataclass(frozen=True, kw_only=True)
class UpdateResult:
    """What `update_to` did. `done`: the branch is at the new commit. Otherwise one of
    `dirty` (store paths to commit first), `blocked_by`, `busy` or `moved` says why
    nothing was done. `written`: paths written or removed; `raced`: paths changed by
    someone else in the last moment, left as they were (they differ from the new HEAD)."""

    done: bool = False
    written: tuple[str, ...] = ()
    raced: tuple[str, ...] = ()
    dirty: tuple[str, ...] = ()
    blocked_by: str | None = None
    busy: str | None = None
    moved: bool = False


def changes_between(repo: pygit2.Repository, old: pygit2.Oid | None, new: pygit2.Oid) -> list[Change]:
    """Every path whose entry differs between tree `old` (None: empty) and tree `new`."""
    new_tree = repo.get(new)
    assert isinstance(new_tree, pygit2.Tree)
    if old is None:
        diff = new_tree.diff_to_tree(swap=True)
    else:
        old_tree = repo.get(old)
        assert isinstance(old_tree, pygit2.Tree)
        diff = old_tree.diff_to_tree(new_tree)
    found: list[Change] = []
    for delta in diff.deltas:
        old_entry = None if delta.status == DeltaStatus.ADDED else _entry(delta.old_file)
        new_entry = None if delta.status == DeltaStatus.DELETED else _entry(delta.new_file)
        if delta.status == DeltaStatus.TYPECHANGE:
            found.append(Change(path=delta.old_file.path, old=old_entry, new=new_entry))
        else:
            path = delta.new_file.path if new_entry is not None else delta.old_file.path
            found.append(Change(path=path, old=old_entry, new=new_entry))
    return found


def _entry(file: pygit2.DiffFile) -> Entry:
    return Entry(file.id, FileMode(file.mode))


_Seen = dict[str, tuple[workfiles.StatKey | None, pygit2.Oid | None]]
"""What a path was when it was hashed: its `StatKey` taken before, and its blob id."""


def preflight(
    repo: pygit2.Repository,
    changes: list[Change],
    *,
    is_store: Callable[[str], bool],
    index: pygit2.Index,
    seen: _Seen | None = None,
) -> tuple[list[str], str | None]:
    """(store paths the user changed, the first path that blocks the update) among
    `changes`: a store path whose file is neither the old nor the new version; a path
    outside the store whose file or index entry is neither, or any path under a filter
    driver (git-crypt, LFS: its smudge is not run here, so its file is never written).
    `seen` collects what each file was."""
    workdir = repo.workdir or ""
    dirty: list[str] = []
    looked: _Seen = {} if seen is None else seen
    for change in changes:
        if change.old is not None and change.old.mode == FileMode.COMMIT:
            continue  # a gitlink: its folder is another repository, never written here
        if change.new is not None and change.new.mode != FileMode.LINK and driver_for(repo, change.path):
            return dirty, change.path
        key = workfiles.stat_key(os.path.join(workdir, change.path))
        looked[change.path] = (key, _disk_oid(repo, workdir, change.path))
        on_disk = looked[change.path][1] in {None if e is None else e.oid for e in (change.old, change.new)}
        if is_store(change.path):
            if not on_disk:
                dirty.append(change.path)
            continue
        staged = _index_entry(index, change.path)
        if not on_disk or staged not in (_key(change.old), _key(change.new)):
            return dirty, change.path
    return dirty, None


def _key(entry: Entry | None) -> tuple[pygit2.Oid, int] | None:
    return None if entry is None else (entry.oid, int(entry.mode))


def _index_entry(index: pygit2.Index, path: str) -> tuple[pygit2.Oid, int] | None:
    try:
        entry = index[path]
    except KeyError:
        return None
    return entry.id, int(entry.mode)


_MISSING = None
_OTHER = pygit2.Oid(hex="f" * 40)  # stands for "something that is no blob of ours"


def _disk_oid(repo: pygit2.Repository, workdir: str, path: str) -> pygit2.Oid | None:
    """The blob id git would store for the file at `path` now (None: absent)."""
    full = os.path.join(workdir, path)
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return _MISSING
    if stat.S_ISLNK(st.st_mode):
        return pygit2.hash(os.readlink(os.fsencode(full)))
    if not stat.S_ISREG(st.st_mode):
        return _OTHER
    try:
        filters = repo.load_filter_list(path)
    except (pygit2.GitError, OSError):
        filters = None
    if filters is not None:
        try:
            return repo.create_blob_fromworkdir(path)
        except (pygit2.GitError, OSError):
            return _OTHER
    return hash_file(full) or _OTHER


def update_to(
    repo: pygit2.Repository,
    *,
    files: IndexFiles,
    ref_name: str,
    old: pygit2.Oid | None,
    new: pygit2.Oid,
    is_store: Callable[[str], bool],
    step: Callable[[str], None],
    dirty_is_raced: bool = False,
) -> UpdateResult:
    """Move branch `ref_name` (checked out) from commit `old` to commit `new`, bringing the
    working tree and the index along as the module says. `dirty_is_raced`: a store file
    the user changed is left as theirs and reported `raced` instead of stopping the update
    as `dirty`. Raises RepositoryUnwritable when the index, the branch or our marker cannot
    be written (the branch has not moved)."""
    reason = busy_reason(repo)
    if reason:
        return UpdateResult(busy=reason)
    git_dir = Path(repo.path)
    new_commit = repo[new].peel(pygit2.Commit)
    old_tree = None
    if old is not None:
        old_commit = repo[old].peel(pygit2.Commit)
        old_tree = old_commit.tree_id
    changes = changes_between(repo, old_tree, new_commit.tree_id)
    try:
        held = files.lock()
    except IndexBusy as exc:
        return UpdateResult(busy=str(exc))
    with held:
        if repo.state() != RepositoryState.NONE or held.index.conflicts is not None:
            return UpdateResult(busy="a git operation started; will retry")
        try:
            current = branch.checked_out(repo)
        except branch.Detached as exc:
            return UpdateResult(busy=str(exc))
        if current[0] != ref_name or (None if current[1] is None else current[1].id) != old:
            return UpdateResult(moved=True)
        seen: _Seen = {}
        dirty, blocked = preflight(repo, changes, is_store=is_store, index=held.index, seen=seen)
        if blocked is not None:
            return UpdateResult(blocked_by=blocked)
        if dirty and not dirty_is_raced:
            return UpdateResult(dirty=tuple(dirty))
        written, raced = _write_tree(repo, git_dir, changes, seen)
        step("sync_tree_written")
        index = held.index
        for change in changes:
            if change.new is None:
                if change.path in index:
                    index.remove(change.path)
            else:
                index.add(pygit2.IndexEntry(change.path, change.new.oid, change.new.mode))
        content_id = held.write()
        step("sync_index_written")
        held.note_completion(content_id=content_id, condition={"ref": ref_name, "oid": str(new)})
        try:
            moved = branch.move(repo, git_dir, ref_name, old=old, new=new)
        except branch.BranchLocked as exc:
            return UpdateResult(busy=str(exc), written=tuple(written))
        if not moved:
            return UpdateResult(moved=True, written=tuple(written))
        step("sync_ref_moved")
        held.put_in_place()
    return UpdateResult(done=True, written=tuple(written), raced=tuple(raced))


def _write_tree(
    repo: pygit2.Repository, git_dir: Path, changes: list[Change], seen: _Seen
) -> tuple[list[str], list[str]]:
    """Write the new version of every changed path (deletions first); ([written], [raced]).
    A file whose `StatKey` is still the one `seen` has is not hashed again."""
    workdir = repo.workdir or ""
    temp_dir = workfiles.temp_folder(git_dir)
    written: list[str] = []
    raced: list[str] = []
    for change in sorted(changes, key=lambda c: c.new is not None):
        if any(e is not None and e.mode == FileMode.COMMIT for e in (change.old, change.new)):
            continue  # a gitlink: another repository's folder, never written here
        full = os.path.join(workdir, change.path)
        key = workfiles.stat_key(full)
        before = seen.get(change.path)
        current = (
            before[1] if before is not None and before[0] == key else _disk_oid(repo, workdir, change.path)
        )
        if current == (None if change.new is None else change.new.oid) and _mode_matches(full, change.new):
            continue  # already the new version (a kill after the write, before the branch moved)
        if current != (None if change.old is None else change.old.oid):
            raced.append(change.path)
            continue
        try:
            if change.new is None:
                done = workfiles.remove(full, expected=key)
                workfiles.remove_empty_parents(workdir, change.path)
            else:
                done = workfiles.place(
                    full,
                    _worktree_bytes(repo, change.path, change.new),
                    link=change.new.mode == FileMode.LINK,
                    executable=change.new.mode == FileMode.BLOB_EXECUTABLE,
                    temp_dir=temp_dir,
                    expected=key,
                )
        except OSError:
            done = False  # a folder in the way, a full disk: left as it is, committed as found
        (written if done else raced).append(change.path)
    return written, raced


def _worktree_bytes(repo: pygit2.Repository, path: str, entry: Entry) -> bytes:
    """The blob's content as checked out (libgit2's smudge filters: crlf, ident)."""
    data = repo[entry.oid].peel(pygit2.Blob).data
    if entry.mode == FileMode.LINK:
        return data
    filters = repo.load_filter_list(path, FilterMode.TO_WORKTREE)
    return data if filters is None else apply_filter_list(filters, data)


def _mode_matches(full: str, entry: Entry | None) -> bool:
    if entry is None:
        return True
    try:
        st = os.lstat(full)
    except OSError:
        return False
    if entry.mode == FileMode.LINK:
        return stat.S_ISLNK(st.st_mode)
    return bool(st.st_mode & 0o100) == (entry.mode == FileMode.BLOB_EXECUTABLE)


__all__ = ["Change", "UpdateResult", "changes_between", "preflight", "update_to"]
