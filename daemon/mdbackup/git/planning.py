"""Plan a commit of some paths: what `git add -- <paths>` would stage for each (reads no
mdbackup config).

`plan_paths` snapshots every path once (`mdbackup.git.snapshot`) and sorts it into a
planned change, unchanged, skipped or failed, applying what `git add` applies before
anything can reach a tree: git's name rules (`mdbackup.git.names`: a path git would
refuse fails on its own), repository shapes (`mdbackup.git.shapes`: nothing at or
inside a gitlink or a nested repository, no skip-worktree entry, modes by
core.fileMode/core.symlinks), and filter drivers (inside the snapshot). One path's
failure, whatever its cause, never fails another path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pygit2
from pygit2.enums import FileMode

from mdbackup.git.attributes import FilterScope
from mdbackup.git.names import refusal
from mdbackup.git.objects import Entry, RepositoryUnwritable
from mdbackup.git.pack import BlobPack, packable
from mdbackup.git.shapes import (
    Boundaries,
    CoreSettings,
    IndexNames,
    SparseCone,
    core_settings,
    index_entry_info,
    is_skipped,
    sparse_cone,
)
from mdbackup.git.snapshot import Failed, Skipped, snapshot
from mdbackup.git.trees import file_folder_clashes, tree_entry

__all__ = ["ChangeKind", "PathChange", "PathPlan", "plan_paths"]

ChangeKind = Literal["added", "modified", "deleted"]


@dataclass(frozen=True)
class PathChange:
    """One path of a commit (repository-relative) and what happened to it."""

    path: str
    kind: ChangeKind


@dataclass(frozen=True, kw_only=True)
class PathPlan:
    """Every input path in exactly one of: `plan` (path -> new entry, None to delete; its
    `changes` say how), `unchanged`, `skipped` (not a path we back up, or not ours:
    another repository's, skip-worktree) and `failed` (path -> reason).

    `names`: with core.ignoreCase, a planned path stored in the tree and the index under
    another name (path -> that name): the index entry it is by case only, or the folders
    spelled as the index spells them. Every other path is stored under its own name.
    """

    plan: Mapping[str, Entry | None]
    changes: tuple[PathChange, ...]
    unchanged: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: Mapping[str, str]
    names: Mapping[str, str] = field(default_factory=dict)

    def stored(self, path: str) -> str:
        """The name `path` is stored under in the tree and the index."""
        return self.names.get(path, path)


_NOT_OURS = Skipped(not_ours=True)


@dataclass(frozen=True, kw_only=True)
class _Shape:
    """What one pass knows of the repository's shape (see `mdbackup.git.shapes`)."""

    boundaries: Boundaries
    core: CoreSettings
    cone: SparseCone | None
    folders: dict[str, bool]  # folder -> is a real folder (not a link), this pass
    filters: FilterScope  # whether an attribute file can reach a path, this pass
    ignored: dict[str, bool]  # folder + "/" -> the ignore rules exclude it, this pass
    blobs: BlobPack | None  # a large batch's blobs, written as one pack at the end


def plan_paths(
    repo: pygit2.Repository,
    paths: Sequence[str],
    *,
    base_tree: pygit2.Tree | None,
    index: pygit2.Index,
    max_file_size: int,
) -> PathPlan:
    """Snapshot every path of `paths` (each once) against `base_tree` (HEAD's, None when
    unborn) and `index`, and sort it (see PathPlan).

    Raises RepositoryUnwritable only when no path could be stored because the
    repository itself cannot be written; any other error of one path is that path's.
    """
    plan: dict[str, Entry | None] = {}
    changes: list[PathChange] = []
    unchanged: list[str] = []
    skipped: list[str] = []
    failed: dict[str, str] = {}
    unwritable: RepositoryUnwritable | None = None
    stored = False
    core = core_settings(repo)
    shape = _Shape(
        boundaries=Boundaries(repo.workdir or "", base_tree, index),
        core=core,
        cone=sparse_cone(repo, core),
        folders={},
        filters=FilterScope(repo, index),
        ignored={},
        blobs=BlobPack(repo) if packable(repo, len(paths)) else None,
    )
    names: dict[str, str] = {}
    icase = IndexNames(index) if core.ignore_case else None
    batch = dict.fromkeys(sorted(paths) if icase is not None else paths)  # git adds in name order
    for path in batch:
        source = path  # the working-tree path read; stored under names.get(path, path)
        if icase is not None and path not in index:
            case = _by_case(icase, path, batch, names.values())
            if isinstance(case, Failed):
                failed[path] = case.reason
                continue
            if case is None:
                skipped.append(path)  # git takes it for its index entry, which this batch has
                continue
            source, name = case
            if name != path:
                names[path] = name
        old = tree_entry(base_tree, names.get(path, path))
        try:
            new = _path_snapshot(repo, source, old, index, max_file_size=max_file_size, shape=shape)
        except RepositoryUnwritable as exc:
            unwritable = unwritable or exc
            failed[path] = str(exc)
            continue
        except (pygit2.GitError, OSError, ValueError) as exc:
            failed[path] = f"cannot commit this path: {exc}"  # one path's failure is its own
            continue
        stored = True
        if isinstance(new, Skipped):
            if old is None or new.not_ours or path not in index:  # `git add -- path` would not stage it
                skipped.append(path)
            else:
                failed[path] = "not a regular file or symlink; left as committed"
            continue
        if isinstance(new, Failed):
            failed[path] = new.reason
            continue
        if new == old:
            unchanged.append(path)
            if shape.blobs is not None and new is not None:
                shape.blobs.release(new.oid)  # committed already: not written again
        else:
            plan[path] = new
            if icase is not None and new is not None and source == path:
                icase.note(names.get(path, path))
            kind: ChangeKind = "deleted" if new is None else ("added" if old is None else "modified")
            changes.append(PathChange(path, kind))
    if unwritable is not None and not stored:
        raise unwritable  # no path could be stored: the repository itself is unwritable
    if shape.blobs is not None:
        shape.blobs.flush()  # before any tree names them; RepositoryUnwritable when it cannot
    by_name = {names.get(path, path): path for path in plan}
    for path in (by_name[name] for name in file_folder_clashes({n: plan[p] for n, p in by_name.items()})):
        # A file at `a` and files under `a/` in one snapshot: `a` changed between its
        # read and theirs. Leave it out this time; its retry sees what it is now.
        del plan[path]
        changes = [c for c in changes if c.path != path]
        failed[path] = "changed between a file and a folder while committing; will retry"
    return PathPlan(
        plan=plan,
        changes=tuple(changes),
        unchanged=tuple(unchanged),
        skipped=tuple(skipped),
        failed=failed,
        names={path: name for path, name in names.items() if path in plan},
    )


def _by_case(
    icase: IndexNames, path: str, batch: Mapping[str, None], taken: Iterable[str]
) -> tuple[str, str] | Failed | None:
    """With core.ignoreCase, what `git add -A` makes of `path`, which the index does not
    have under this exact name: (the path to read, the name to store it under), Failed
    when git would refuse it, or None when it is left to its index entry.

    - It differs from an index entry only in case: git takes it for that entry (its walk
      never adds it) and reads the entry's own path. Left to that entry when the batch
      has it too (or another alias of it); else it stands for that entry.
    - Else it is new: its folders are spelled as the index spells them, and a second new
      path differing only in case from one added in this pass is refused, as git does.
    """
    alias = icase.alias(path)
    if alias is not None:
        if alias in batch or alias in taken:
            return None
        return alias, alias
    name = icase.adjusted(path)
    clash = icase.added_alias(name)
    if clash is not None:
        return Failed(f"will not add file alias '{name}' ('{clash}' already exists in index)")
    return path, name


def _path_snapshot(
    repo: pygit2.Repository,
    path: str,
    old: Entry | None,
    index: pygit2.Index,
    *,
    max_file_size: int,
    shape: _Shape,
) -> Entry | Skipped | Failed | None:
    """`snapshot` of one path as `git add -- path` sees it: a path git would refuse (see
    `mdbackup.git.names`) is Failed and never reaches a tree; a path at or inside
    another repository (a gitlink, a folder holding `.git`) and a skip-worktree entry
    are Skipped, so they are never committed as changed or deleted."""
    reason = refusal(path, FileMode.BLOB)
    if reason is not None:
        return Failed(reason)
    if shape.boundaries.owner(path) is not None:
        return _NOT_OURS
    info = index_entry_info(index, path)
    if is_skipped(info, shape.core, repo.workdir or "", path):
        return _NOT_OURS
    if info is None and shape.cone is not None and not shape.cone.contains(path):
        return _NOT_OURS  # outside the sparse cone: git add refuses it
    new = snapshot(
        repo,
        path,
        tracked=info is not None,  # git's "tracked": in the index (`git rm --cached` untracks it)
        max_file_size=max_file_size,
        folders=shape.folders,
        existing_mode=None if info is None else info.mode,
        existing_id=None if info is None else info.oid,
        core=shape.core,
        filters=shape.filters,
        ignored_folders=shape.ignored,
        store=None if shape.blobs is None else shape.blobs.store,
    )
    if isinstance(new, Entry) and new.mode == FileMode.LINK:  # the rest was checked above
        reason = refusal(path, new.mode)
        if reason is not None:
            return Failed(reason)
    return new
