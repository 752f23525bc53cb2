"""What syncing with the remote's branch leads to: nothing, a fast-forward, or a merge.

Reads no config; pure computation over the object database (plus the merge commit
object `commit_merge` writes, which no ref names until the branch moves).

A merge is libgit2's three-way merge of the two commits (`merge_commits`: line-level
merge of text files, renames detected, a virtual base for criss-cross histories). Its
conflicts are resolved so that nothing is lost and nothing holds conflict markers:

- both sides changed (or both added) a path differently: ours stays at the path, theirs
  is added beside it as `<stem>.conflict-<label>-<UTC yyyymmddThhmmssZ><ext>`;
- one side deleted a path the other changed: the changed file is kept;
- what libgit2's rename detection pairs into a conflict that git's merge does not have
  (the same file added on both sides; a file deleted on one side and unchanged on the
  other) is resolved as git resolves it: one copy; the deletion;
- both renamed a file to different names: both names are kept.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from typing import Literal

import pygit2
from pygit2.enums import MergeFlag

UP_TO_DATE: Literal["up-to-date"] = "up-to-date"
FAST_FORWARD: Literal["fast-forward"] = "fast-forward"
MERGE: Literal["merge"] = "merge"


@dataclass(frozen=True)
class Conflict:
    """One conflict and how it was resolved: `path` keeps `kept` ("ours" or "theirs");
    `copy` is where theirs was written beside it (None: nothing written beside it)."""

    path: str
    kind: str  # "content", "both-added", "modify/delete", "rename"
    kept: str
    copy: str | None = None


@dataclass(frozen=True, kw_only=True)
class MergePlan:
    """Where the branch goes. `kind` "up-to-date": nothing to do; "fast-forward": to
    `theirs` (tree `tree`); "merge": a merge commit of `ours` and `theirs` with `tree`.
    `behind`/`ahead`: commits of theirs not in ours and of ours not in theirs."""

    kind: Literal["up-to-date", "fast-forward", "merge"]
    ours: pygit2.Oid | None
    theirs: pygit2.Oid
    tree: pygit2.Oid | None
    conflicts: tuple[Conflict, ...] = ()
    behind: int = 0
    ahead: int = 0


def stamp(wall: float) -> str:
    """`yyyymmddThhmmssZ` (UTC) of the epoch seconds `wall`: the time in a conflict copy's name."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(wall))


def conflict_name(path: str, *, label: str, stamp: str, taken: set[str]) -> str:
    """`<stem>.conflict-<label>-<stamp><ext>` beside `path`, not one of `taken`
    (`-2`, `-3`, ... added to the stamp when it is)."""
    folder, name = posixpath.split(path)
    stem, ext = posixpath.splitext(name)
    n = 1
    while True:
        suffix = stamp if n == 1 else f"{stamp}-{n}"
        candidate = posixpath.join(folder, f"{stem}.conflict-{label}-{suffix}{ext}")
        if candidate not in taken:
            return candidate
        n += 1


def plan_merge(
    repo: pygit2.Repository, *, ours: pygit2.Oid | None, theirs: pygit2.Oid, label: str, stamp: str
) -> MergePlan:
    """What syncing the local branch at `ours` (None: unborn) with `theirs` needs.

    `label` and `stamp` name conflict copies. Raises pygit2.GitError when an object is
    missing or the merge cannot be computed."""
    theirs_commit = repo[theirs].peel(pygit2.Commit)
    if ours is None:
        return MergePlan(kind=FAST_FORWARD, ours=None, theirs=theirs, tree=theirs_commit.tree_id)
    if ours == theirs:
        return MergePlan(kind=UP_TO_DATE, ours=ours, theirs=theirs, tree=None)
    ahead, behind = repo.ahead_behind(ours, theirs)
    if behind == 0:
        return MergePlan(kind=UP_TO_DATE, ours=ours, theirs=theirs, tree=None, ahead=ahead)
    if ahead == 0:
        return MergePlan(
            kind=FAST_FORWARD, ours=ours, theirs=theirs, tree=theirs_commit.tree_id, behind=behind
        )
    index = repo.merge_commits(ours, theirs, flags=MergeFlag.FIND_RENAMES)
    conflicts = _resolve(index, label=label, stamp=stamp)
    tree = index.write_tree(repo)
    return MergePlan(
        kind=MERGE,
        ours=ours,
        theirs=theirs,
        tree=tree,
        conflicts=tuple(conflicts),
        behind=behind,
        ahead=ahead,
    )


def _resolve(index: pygit2.Index, *, label: str, stamp: str) -> list[Conflict]:
    """Replace every conflict of `index` by stage-0 entries that keep both sides."""
    if index.conflicts is None:
        return []
    found = [(a, o, t) for a, o, t in index.conflicts]
    taken = {entry.path for entry in index}
    for a, o, t in found:
        taken.update(e.path for e in (a, o, t) if e is not None)
    keep: list[pygit2.IndexEntry] = []
    done: list[Conflict] = []
    for ancestor, ours, theirs in found:
        if ours is not None and theirs is not None and _same(ours, theirs) and ours.path == theirs.path:
            keep.append(ours)  # the same file on both sides (a pairing of rename detection)
            continue
        if ancestor is not None and (ours is None or theirs is None):
            kept = ours if ours is not None else theirs
            if kept is not None and _same(kept, ancestor) and kept.path == ancestor.path:
                continue  # deleted on one side, unchanged on the other: the deletion wins
        if ours is not None and theirs is not None:
            if ours.path == theirs.path:
                copy = conflict_name(theirs.path, label=label, stamp=stamp, taken=taken)
                taken.add(copy)
                keep += [ours, pygit2.IndexEntry(copy, theirs.id, theirs.mode)]
                kind = "content" if ancestor is not None else "both-added"
                done.append(Conflict(ours.path, kind, "ours", copy))
            else:  # renamed differently on each side: both names stay
                keep += [ours, theirs]
                done.append(Conflict(ours.path, "rename", "ours"))
                done.append(Conflict(theirs.path, "rename", "theirs"))
        elif ours is not None:
            keep.append(ours)
            done.append(Conflict(ours.path, "modify/delete", "ours"))
        elif theirs is not None:
            keep.append(theirs)
            done.append(Conflict(theirs.path, "modify/delete", "theirs"))
    for entries in found:
        for path in {e.path for e in entries if e is not None}:
            try:
                del index.conflicts[path]
            except KeyError:
                continue
    for entry in keep:
        index.add(pygit2.IndexEntry(entry.path, entry.id, entry.mode))
    return done


def _same(a: pygit2.IndexEntry, b: pygit2.IndexEntry) -> bool:
    return a.id == b.id and a.mode == b.mode


def commit_merge(
    repo: pygit2.Repository,
    plan: MergePlan,
    *,
    message: str,
    author: pygit2.Signature,
    committer: pygit2.Signature,
) -> pygit2.Oid:
    """The commit the branch moves to: `theirs` for a fast-forward; for a merge, a new
    commit of `plan.tree` with parents ours then theirs (no ref is moved)."""
    if plan.kind == FAST_FORWARD:
        return plan.theirs
    if plan.kind != MERGE or plan.ours is None or plan.tree is None:
        raise ValueError(f"nothing to commit for a {plan.kind} plan")
    return repo.create_commit(None, author, committer, message, plan.tree, [plan.ours, plan.theirs])


__all__ = [
    "FAST_FORWARD",
    "MERGE",
    "UP_TO_DATE",
    "Conflict",
    "MergePlan",
    "commit_merge",
    "conflict_name",
    "plan_merge",
]
