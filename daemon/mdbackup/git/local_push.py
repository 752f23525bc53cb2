"""Fast-forward a branch of a repository given as a path (or file:// URL) by compare-and-swap.

libgit2's local transport checks for a fast-forward and then writes the ref without
comparing it again: two clones pushing at once can overwrite each other (measured: 4
rounds in 40). Here the update is done by us, on the remote repository opened directly:

1. the remote branch is read (`before`); unless it is absent or an ancestor of the
   local head (known locally), nothing is written ("diverged");
2. the objects the remote lacks (commits after `before`, and the trees and blobs they
   bring that the remote does not have) are written into the remote as one pack (an
   extra object in a pack is harmless: no ref names it);
3. the branch moves from `before` to the local head under the remote's ref lock with
   the old value checked (`Reference.set_target` on the reference read in 1, or
   `create_reference_direct(force=False)` for a new branch). A branch that moved meanwhile,
   or whose lock is held, is "remote moved, retry": never an overwrite.

Reads no config and no environment variable (the remote is opened ignoring `GIT_*`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pygit2
from pygit2.enums import ObjectType, SortMode

from mdbackup.git import layout, leftovers

REFLOG_MESSAGE = "push: fast-forward (mdbackup)"


@dataclass(frozen=True, kw_only=True)
class LocalPush:
    """The outcome of `fast_forward`: `ok`; `before` the remote branch's commit read in step
    1 (None: it did not exist); `commits` local commits the remote did not have; on
    failure `problem` is one of "diverged", "moved", "not-bare", "error" and `message`
    one line (no secret: local paths only). `tracking_error`: pushed, but the local
    remote-tracking ref could not be moved (why)."""

    ok: bool
    before: str | None = None
    commits: int = 0
    problem: str | None = None
    message: str | None = None
    tracking_error: str | None = None


class _Refused(Exception):
    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


def _missing_objects(
    repo: pygit2.Repository, remote: pygit2.Repository, tip: pygit2.Oid, before: pygit2.Oid | None
) -> tuple[list[pygit2.Oid], int]:
    """The objects reachable from `tip` but not from `before` that `remote` lacks, parents
    before children not guaranteed (a pack needs no order); and the number of commits."""
    walker = repo.walk(tip, SortMode.TOPOLOGICAL)
    if before is not None:
        walker.hide(before)
    wanted: list[pygit2.Oid] = []
    seen: set[pygit2.Oid] = set()
    commits = 0
    for commit in walker:
        commits += 1
        if commit.id not in remote:
            wanted.append(commit.id)
        stack = [commit.tree_id]
        while stack:
            oid = stack.pop()
            if oid in seen:
                continue
            seen.add(oid)
            if oid in remote:
                continue  # present: so is everything it names (git's connectivity rule)
            wanted.append(oid)
            tree = repo[oid]
            assert isinstance(tree, pygit2.Tree)
            for entry in tree:
                if entry.filemode == pygit2.enums.FileMode.COMMIT:
                    continue  # a gitlink names a commit of another repository
                if entry.type == ObjectType.TREE:
                    stack.append(entry.id)
                elif entry.id not in seen:
                    seen.add(entry.id)
                    if entry.id not in remote:
                        wanted.append(entry.id)
    return wanted, commits


def _write_objects(repo: pygit2.Repository, remote: pygit2.Repository, oids: list[pygit2.Oid]) -> None:
    """Write `oids` (from `repo`) into `remote`'s object store as one pack."""
    if not oids:
        return
    builder = pygit2.PackBuilder(repo)
    for oid in oids:
        builder.add(oid)
    builder.write(str(Path(remote.path) / "objects" / "pack"))


def _check_target(remote: pygit2.Repository, ref_name: str) -> None:
    """Refuse to move the branch a non-bare remote has checked out (as git does)."""
    if remote.is_bare:
        return
    head = remote.references.get("HEAD")
    if head is not None and head.type == pygit2.enums.ReferenceType.SYMBOLIC and head.target == ref_name:
        raise _Refused("not-bare", f"refusing to update {ref_name}: it is checked out in {remote.workdir}")


def fast_forward(repo: pygit2.Repository, *, remote_path: str, ref_name: str, tip: pygit2.Oid) -> LocalPush:
    """Move `ref_name` of the repository at `remote_path` to `tip` (a commit of `repo`),
    fast-forward only, by compare-and-swap from the value read first. Never raises for
    git or file-system errors: they come back as a failed `LocalPush`."""
    try:
        remote = pygit2.Repository(remote_path)
    except (pygit2.GitError, OSError, KeyError) as exc:
        return LocalPush(ok=False, problem="error", message=f"cannot open {remote_path}: {exc}")
    before_text: str | None = None
    try:
        _check_target(remote, ref_name)
        ref = remote.references.get(ref_name)
        before = ref.resolve().target if ref is not None else None
        if not isinstance(before, pygit2.Oid | None):  # pragma: no cover - a symbolic branch
            raise _Refused("error", f"{ref_name} on the remote is not a plain branch")
        before_text = str(before) if before is not None else None
        if before == tip:
            return LocalPush(ok=True, before=before_text)
        if before is not None and (before not in repo or not repo.descendant_of(tip, before)):
            raise _Refused("diverged", f"remote branch at {str(before)[:12]} is not in the local branch")
        oids, commits = _missing_objects(repo, remote, tip, before)
        _write_objects(repo, remote, oids)
        if ref is None:
            try:
                remote.create_reference_direct(ref_name, tip, False, message=REFLOG_MESSAGE)
            except pygit2.AlreadyExistsError as exc:
                raise _Refused("moved", f"{ref_name} was created on the remote meanwhile") from exc
        else:
            try:
                ref.set_target(tip, REFLOG_MESSAGE)
            except pygit2.GitError as exc:
                if "old reference value does not match" in str(exc):
                    raise _Refused("moved", f"{ref_name} moved on the remote meanwhile") from exc
                raise
        return LocalPush(ok=True, before=before_text, commits=commits)
    except _Refused as exc:
        return LocalPush(ok=False, before=before_text, problem=exc.problem, message=exc.message)
    except OSError as exc:
        if "failed to lock file" in str(exc):
            return LocalPush(
                ok=False,
                before=before_text,
                problem="moved",
                message=f"{ref_name} is locked on the remote: {exc}",
            )
        return LocalPush(ok=False, before=before_text, problem="error", message=str(exc))
    except pygit2.GitError as exc:
        return LocalPush(ok=False, before=before_text, problem="error", message=str(exc))


def push_local(
    repo: pygit2.Repository, *, remote_path: str, ref_name: str, tip: pygit2.Oid, tracking_ref: str
) -> LocalPush:
    """`fast_forward`, then (on success) move the local `tracking_ref` to `tip` inside a
    `leftovers.writing` marker naming its lock; a failure there is `tracking_error`.
    Raises only OSError when the marker cannot be written."""
    done = fast_forward(repo, remote_path=remote_path, ref_name=ref_name, tip=tip)
    if not done.ok:
        return done
    git_dir = Path(repo.path)
    with leftovers.writing(layout.state_dir(git_dir), [layout.ref_lock(git_dir, tracking_ref)]):
        try:
            repo.create_reference_direct(tracking_ref, tip, True, message="update by push (mdbackup)")
        except (OSError, pygit2.GitError) as exc:
            return replace(done, tracking_error=str(exc))
    return done
