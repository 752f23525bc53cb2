"""Counting commits: the one implementation of "how many commits is this branch ahead".

Local only: reads refs and commits from the object database, never the network.
"""

from __future__ import annotations

from collections.abc import Iterable

import pygit2
from pygit2.enums import ObjectType


def ref_commit(repo: pygit2.Repository, ref_name: str) -> pygit2.Oid | None:
    """The commit `ref_name` (e.g. `refs/heads/main`) points at, peeled through symbolic
    refs and tags; None when the ref does not exist, its name is invalid, or it does not
    lead to a commit present locally."""
    ref = repo.references.get(ref_name)
    if ref is None:
        return None
    try:
        return ref.peel(pygit2.Commit).id
    except (KeyError, ValueError, pygit2.GitError):
        return None


def known_commits(repo: pygit2.Repository, oids: Iterable[str | pygit2.Oid]) -> list[pygit2.Oid]:
    """Those of `oids` that name a commit in the local object database, in order.

    Anything else (missing, malformed, or not a commit, e.g. a tag object) is left out.
    """
    known: list[pygit2.Oid] = []
    for oid in oids:
        try:
            obj = repo.get(oid)
        except (ValueError, pygit2.GitError):
            obj = None
        if obj is not None and obj.type == ObjectType.COMMIT:
            known.append(obj.id)
    return known


def count_commits(repo: pygit2.Repository, tip: pygit2.Oid, hide: Iterable[pygit2.Oid]) -> int:
    """The number of commits reachable from `tip` and from none of `hide` (`tip` included).

    Every oid must be a commit present locally (see `known_commits`); 0 when `tip`
    is itself reachable from `hide`.
    """
    walker = repo.walk(tip)
    for oid in hide:
        walker.hide(oid)
    return sum(1 for _ in walker)


def commits_ahead(repo: pygit2.Repository, *, local_branch: str, tracking_ref: str) -> int | None:
    """Commits on `local_branch` not reachable from `tracking_ref` (e.g.
    `refs/remotes/origin/main`); every commit of the branch when the tracking ref does
    not exist (never pushed). None when the local branch does not exist (or has no
    commit yet)."""
    local = ref_commit(repo, f"refs/heads/{local_branch}")
    if local is None:
        return None
    tracking = ref_commit(repo, tracking_ref)
    return count_commits(repo, local, [] if tracking is None else [tracking])
