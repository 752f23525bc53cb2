"""The checked-out branch: which one it is, and moving it by compare-and-swap.

libgit2 moves a branch the way git does (`refs/heads/NAME.lock`, written, renamed).
The move runs inside a `leftovers.writing` marker that names that lock and the exact
bytes libgit2 writes into it (the new commit id), so a lock left by our killed process
is told from git's by its content (see `mdbackup.git.leftovers`).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pygit2

from mdbackup.git import layout, leftovers
from mdbackup.git.objects import RepositoryUnwritable


class Detached(Exception):
    """HEAD is detached: there is no branch to commit on."""


class BranchLocked(Exception):
    """Another process holds the branch's lock: nothing was moved."""


def checked_out(repo: pygit2.Repository) -> tuple[str, pygit2.Commit | None]:
    """The branch HEAD names (`refs/heads/...`) and its commit (None when unborn).

    Raises Detached on a detached HEAD.
    """
    target = repo.references["HEAD"].target
    if repo.head_is_detached or not isinstance(target, str):
        raise Detached("HEAD is detached (not on a branch); check out a branch to resume backups")
    ref = repo.references.get(target)
    return target, None if ref is None else ref.peel(pygit2.Commit)


def move(
    repo: pygit2.Repository, git_dir: Path, ref_name: str, *, old: pygit2.Oid | None, new: pygit2.Oid | None
) -> bool:
    """Move `ref_name` from `old` (None: unborn) to `new` (None: delete it, back to unborn)
    if it still points at `old`. False when it moved (nothing changed).

    Raises BranchLocked when another process holds the branch's lock, and
    RepositoryUnwritable when the ref or our marker cannot be written.
    """
    content = None if new is None else f"{new}\n".encode()
    with ExitStack() as stack:
        try:
            stack.enter_context(
                leftovers.writing(
                    layout.state_dir(git_dir), [layout.ref_lock(git_dir, ref_name)], content=content
                )
            )
        except OSError as exc:
            raise RepositoryUnwritable(f"cannot write to the repository (mark the write): {exc}") from exc
        return _compare_and_swap(repo, git_dir, ref_name, old=old, new=new)


def _compare_and_swap(
    repo: pygit2.Repository, git_dir: Path, ref_name: str, *, old: pygit2.Oid | None, new: pygit2.Oid | None
) -> bool:
    try:
        if old is None and new is not None:
            repo.references.create(ref_name, new, force=False)
            return True
        ref = repo.references.get(ref_name)
        if ref is None or old is None or ref.target != old:
            return False
        if new is None:
            ref.delete()
        else:
            ref.set_target(new, "mdbackup: backup commit")
    except pygit2.AlreadyExistsError:
        return False
    except (pygit2.GitError, OSError) as exc:
        if "old reference value does not match" in str(exc):
            return False
        if layout.ref_lock(git_dir, ref_name).exists() or "failed to lock file" in str(exc):
            raise BranchLocked(f"the branch is locked by another process ({exc})") from exc
        raise RepositoryUnwritable(f"cannot write to the repository (move the branch): {exc}") from exc
    return True
