"""Commit exactly some paths of the working tree, with libgit2 (reads no config).

The commit's tree is HEAD's tree with just the given paths replaced by their
working-tree content (`mdbackup.git.snapshot` reads each path, `mdbackup.git.trees`
rewrites only the trees on those paths, so the cost follows the change, not the
repository). The slow part (reading and hashing every file) runs without any lock;
then `mdbackup.git.index_lock` takes git's `index.lock` and holds it from a fresh read
of the index to the rename: HEAD, the branch and the index are checked again (anything
moved: plan again), exactly the planned entries change (the committed blob, no stat
data, so a file that changed again since shows as modified), the new index is written
(our copy, fsynced), the commit written, the branch moved by compare-and-swap
(`mdbackup.git.branch`; undone if HEAD went to another branch meanwhile), and only
then the new index renamed over it and the lock released, git's own order. The user's other staged changes
and flags are never touched, an unchanged path's index entry is never touched, and no
lock that git owns is ever removed (`mdbackup.git.leftovers` tells ours by identity).

Git being busy and a refusal (detached HEAD) are answers, not errors: they come back
in the result. A repository that cannot be written (read-only, disk full) raises
RepositoryUnwritable, never a per-path "cannot read" and never "busy".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import RepositoryState

from mdbackup.git import branch
from mdbackup.git.index_lock import IndexBusy, IndexFiles
from mdbackup.git.objects import Entry, RepositoryUnwritable, storing
from mdbackup.git.planning import ChangeKind, PathChange, plan_paths
from mdbackup.git.repo import busy_reason, git_dir, head_info
from mdbackup.git.trees import rewrite_tree

__all__ = ["ChangeKind", "CommitResult", "Committer", "PathChange", "RepositoryUnwritable"]

_CAS_RETRIES = 5


@dataclass(frozen=True, kw_only=True)
class CommitResult:
    """What one `Committer.commit_paths` call did.

    `busy` (git is busy: an operation in progress, index.lock or the branch's lock
    held, the branch kept moving) and `refused` (the batch cannot be committed as
    things stand, e.g. a detached HEAD) say why nothing was committed; then the path
    lists are empty and the whole batch is for later (busy) or failed (refused).

    Otherwise every input path is in exactly one of `changes`, `unchanged`,
    `skipped` (not a path we back up: ignored by .gitignore and untracked, or not a
    regular file or symlink) and `failed` (path -> reason), and `commit_id` is the
    new commit, or None when nothing differed from HEAD. `branch` is the checked-out
    branch's short name (None on a detached HEAD).
    """

    commit_id: str | None = None
    branch: str | None = None
    changes: tuple[PathChange, ...] = ()
    unchanged: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    busy: str | None = None
    refused: str | None = None
    elapsed_ms: float = 0.0


class _Busy(Exception):
    """Git is busy; nothing was moved: try the batch again later."""


class _Refused(Exception):
    """The batch cannot be committed as things stand."""


# A path's new content: an entry, or None for a deletion.
_Plan = dict[str, Entry | None]


def _no_step(step: str) -> None:
    """The default step callback: does nothing."""


class Committer:
    """Commits paths of one (non-bare) repository; keeps the index object between commits.

    Keeping the `pygit2.Index` lets `read(force=False)` skip re-reading an index
    file that did not change on disk since the last commit (0.01 ms instead of
    ~20 ms on 50,000 files).

    `step` is called with the name of each step a commit reaches, in order:
    `blobs_written`, `tree_written`, `index_written`, `commit_written`, `ref_moved`
    (only the first two when the commit turns out empty). Tests use it to stop the
    process there; it must not touch the repository.
    """

    def __init__(self, repo: pygit2.Repository, *, step: Callable[[str], None] = _no_step) -> None:
        self.repo = repo
        self._step = step
        self._git_dir: Path = git_dir(repo)
        self._workdir: str = repo.workdir or ""
        self._files = IndexFiles(self._git_dir)

    def commit_paths(
        self,
        paths: Sequence[str],
        *,
        message: Callable[[Sequence[PathChange]], str],
        author: pygit2.Signature,
        committer: pygit2.Signature,
        max_file_size: int,
    ) -> CommitResult:
        """Commit the working-tree content of `paths` (repository-relative) on the
        checked-out branch, in one commit with the message `message(changes)`.

        Git being busy is checked before anything else and answered with `busy`; a
        detached HEAD with `refused`. Per-path problems (unreadable, over
        `max_file_size` bytes) are reported in `failed`; the other paths are still
        committed. `message` is called at most once per attempt, only when there is
        something to commit. Raises RepositoryUnwritable when git's objects, index or
        branch, or mdbackup's marker beside them, cannot be written; the branch has
        not moved then.
        """
        started = time.perf_counter()
        try:
            for attempt in range(_CAS_RETRIES):
                result = self._commit_once(
                    paths,
                    message=message,
                    author=author,
                    committer=committer,
                    max_file_size=max_file_size,
                    started=started,
                    settle=attempt < _CAS_RETRIES - 1,
                )
                if result is not None:
                    return result
            busy = "the branch kept moving while committing; will retry"
        except _Busy as exc:
            busy = str(exc)
        except _Refused as exc:
            return CommitResult(refused=str(exc), elapsed_ms=_ms_since(started))
        return CommitResult(branch=head_info(self.repo).branch, busy=busy, elapsed_ms=_ms_since(started))

    def _commit_once(
        self,
        paths: Sequence[str],
        *,
        message: Callable[[Sequence[PathChange]], str],
        author: pygit2.Signature,
        committer: pygit2.Signature,
        max_file_size: int,
        started: float,
        settle: bool = True,
    ) -> CommitResult | None:
        """One attempt; None when HEAD, the branch or the index moved under us (plan again).

        The slow part (reading and hashing every file, writing blobs and trees) runs
        without any lock. Then `index.lock` is taken and held to the end: HEAD, the
        branch and the index are looked at again (anything moved: plan again), exactly
        the planned entries are changed in the fresh index, which is written (our copy,
        fsynced); the commit is written, the branch moved by compare-and-swap, and only
        then the new index renamed over the index and the lock released (git's own
        order: a failed branch move leaves the index as it was).
        """
        repo = self.repo
        reason = busy_reason(repo)
        if reason:
            raise _Busy(reason)
        branch_ref_name, parent = _checked_out(repo)
        base_tree = None if parent is None else parent.tree
        parent_id = None if parent is None else parent.id
        index = self._files.current()
        if index.conflicts is not None:
            raise _Busy("the index has unresolved conflicts")

        seen = _stats(self._workdir, paths)  # before the reads: a later change shows
        plan, changes, unchanged, skipped, failed, names = self._plan(
            paths,
            base_tree=base_tree,
            index=index,
            max_file_size=max_file_size,
        )
        tracked = {path: names.get(path, path) in index for path in plan}
        branch = branch_ref_name.removeprefix("refs/heads/")
        if changes:
            self._step("blobs_written")
            with storing("write the tree"):
                tree_id = rewrite_tree(repo, base_tree, {names.get(p, p): e for p, e in plan.items()})
            self._step("tree_written")
            if base_tree is not None and tree_id == base_tree.id:
                unchanged += [c.path for c in changes]
                changes = []
        if not changes:
            # Nothing to commit: the index is not touched (a path staged by the user
            # whose working tree equals HEAD stays staged, a `git rm --cached` stays).
            return CommitResult(
                branch=branch,
                unchanged=tuple(unchanged),
                skipped=tuple(skipped),
                failed=failed,
                elapsed_ms=_ms_since(started),
            )

        try:
            held = self._files.lock()
        except IndexBusy as exc:
            raise _Busy(str(exc)) from exc
        with held:
            if repo.state() != RepositoryState.NONE:
                raise _Busy("a git operation started; will retry")
            if _checked_out(repo) != (branch_ref_name, parent):
                return None  # a switch, commit, pull or reset: plan again on what is there now
            if held.is_another_commits(None if base_tree is None else base_tree.id):
                raise _Busy("git is checking out another commit (the index is its, HEAD not yet moved)")
            index = held.index
            if index.conflicts is not None:
                raise _Busy("the index has unresolved conflicts")
            if held.changed and any((names.get(p, p) in index) != was for p, was in tracked.items()):
                return None  # a path of ours was staged or unstaged meanwhile: plan again
            if settle and _stats(self._workdir, plan) != {path: seen[path] for path in plan}:
                return None  # a file changed since it was read (a save, a stash): read it again
            # (on the last attempt a file that never stops changing is committed as read: its
            # index entry has the committed blob, so the rest shows as a change, committed next)
            for path, entry in plan.items():
                name = names.get(path, path)  # core.ignoreCase: the index's own spelling
                if entry is None:
                    if name in index:
                        index.remove(name)
                else:
                    index.add(pygit2.IndexEntry(name, entry.oid, entry.mode))
            content_id = held.write()
            self._step("index_written")
            with storing("write the commit"):
                commit_id = repo.create_commit(
                    None,
                    author,
                    committer,
                    _clean_text(message(changes)),
                    tree_id,
                    [] if parent is None else [parent.id],
                )
            self._step("commit_written")
            held.note_completion(
                content_id=content_id, condition={"ref": branch_ref_name, "oid": str(commit_id)}
            )
            if not self._move_branch(branch_ref_name, parent_id, commit_id):
                return None
            if _checked_out(repo)[0] != branch_ref_name:
                # HEAD went to another branch while we moved this one (the tail of a
                # `git switch`): take our commit back off the branch no longer checked out.
                self._move_branch(branch_ref_name, commit_id, parent_id)
                return None
            self._step("ref_moved")
            held.put_in_place()
        return CommitResult(
            commit_id=str(commit_id),
            branch=branch,
            changes=tuple(changes),
            unchanged=tuple(unchanged),
            skipped=tuple(skipped),
            failed=failed,
            elapsed_ms=_ms_since(started),
        )

    def _plan(
        self,
        paths: Sequence[str],
        *,
        base_tree: pygit2.Tree | None,
        index: pygit2.Index,
        max_file_size: int,
    ) -> tuple[_Plan, list[PathChange], list[str], list[str], dict[str, str], dict[str, str]]:
        """Snapshot every path (each once) and sort it into planned change, unchanged,
        skipped or failed, with the names planned paths are stored under when not their
        own (see `mdbackup.git.planning`)."""
        planned = plan_paths(self.repo, paths, base_tree=base_tree, index=index, max_file_size=max_file_size)
        return (
            dict(planned.plan),
            list(planned.changes),
            list(planned.unchanged),
            list(planned.skipped),
            dict(planned.failed),
            dict(planned.names),
        )

    def _move_branch(self, ref_name: str, old: pygit2.Oid | None, new: pygit2.Oid | None) -> bool:
        """`branch.move`; raises _Busy when another process holds the branch's lock."""
        try:
            return branch.move(self.repo, self._git_dir, ref_name, old=old, new=new)
        except branch.BranchLocked as exc:
            raise _Busy(str(exc)) from exc


def _clean_text(text: str) -> str:
    """`text` with undecodable bytes of file names (surrogate escapes) written as `\\xNN`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


_StatKey = tuple[int, int, int, int, int] | None


def _stats(workdir: str, paths: Iterable[str]) -> dict[str, _StatKey]:
    """What each path is on disk now (inode, size, mode, mtime, ctime; None when gone):
    taken before the reads and again under the lock, a difference means it changed."""
    keys: dict[str, _StatKey] = {}
    for path in paths:
        try:
            st = os.lstat(os.path.join(workdir, path))
        except OSError:
            keys[path] = None
            continue
        keys[path] = (st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)
    return keys


def _checked_out(repo: pygit2.Repository) -> tuple[str, pygit2.Commit | None]:
    """`branch.checked_out`, a detached HEAD raised as _Refused."""
    try:
        return branch.checked_out(repo)
    except branch.Detached as exc:
        raise _Refused(str(exc)) from exc
