"""Rewrite a tree with some paths replaced, touching only the trees on those paths.

A plan maps repository-relative paths (`/`-separated; names that are not UTF-8
travel as surrogate escapes from os.fsdecode) to their new entry, or to None for a
deletion. `rewrite_tree` writes the trees from the changed leaves up and reuses
every other subtree of the base by id, so the cost follows the change, not the
repository. The result is the tree `git add <paths> && git write-tree` would give
from an index holding the base tree; empty folders vanish as in git.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping

import pygit2
from pygit2.enums import FileMode, ObjectType

from mdbackup.git.objects import Entry

Plan = Mapping[str, Entry | None]
"""Path -> its new entry, or None to delete it."""


def tree_entry(tree: pygit2.Tree | None, path: str) -> Entry | None:
    """The blob, link or submodule entry at `path` in `tree`; None when absent or a folder."""
    if tree is None:
        return None
    try:
        obj = tree[path]
    except KeyError:
        return None
    if obj.filemode == FileMode.TREE:
        return None
    return Entry(obj.id, obj.filemode)


def file_folder_clashes(plan: Plan) -> list[str]:
    """Planned files `a` that also have planned files under `a/`, sorted.

    Such a plan cannot be written (a name is a file or a folder, not both): it means
    a change raced the reads of one snapshot. `rewrite_tree` requires a plan without
    them.
    """
    present = {path for path, entry in plan.items() if entry is not None}
    clashes: set[str] = set()
    for path in present:
        slash = path.find("/")
        while slash != -1:
            if path[:slash] in present:
                clashes.add(path[:slash])
            slash = path.find("/", slash + 1)
    return sorted(clashes)


def rewrite_tree(repo: pygit2.Repository, base: pygit2.Tree | None, plan: Plan) -> pygit2.Oid:
    """Write the tree `base` (None: the empty tree) with the planned paths replaced.

    A planned file at `a` replaces whatever was at `a` (a folder too); planned files
    under `a/` turn `a` into a folder (the file that was there goes). Deleting a path
    that is a folder in `base` leaves the folder alone; a folder left empty is
    dropped. The plan must not hold both a file at `a` and files under `a/` (see
    `file_folder_clashes`). Returns the new tree's id (that of the empty tree when
    nothing is left). Raises pygit2.GitError or OSError when an object cannot be
    written.
    """
    root = _Node()
    for path, entry in plan.items():
        node = root
        for name in path.split("/"):
            node = node.children.setdefault(name, _Node())
        node.leaf = entry
    tree_id = _write_subtree(repo, base, root)
    return tree_id if tree_id is not None else _write_tree_entries(repo, [])


class _Keep(enum.Enum):
    KEEP = enum.auto()


_KEEP = _Keep.KEEP


class _Node:
    """A folder of the planned change: what happens to the name itself and below it."""

    __slots__ = ("children", "leaf")

    def __init__(self) -> None:
        self.leaf: Entry | _Keep | None = _KEEP  # an entry to write, None to delete, or _KEEP
        self.children: dict[str, _Node] = {}


_RawEntry = tuple[bytes, pygit2.Oid, int]


def _write_subtree(repo: pygit2.Repository, base: pygit2.Tree | None, node: _Node) -> pygit2.Oid | None:
    """Write `base` with the changes of `node` applied; None when the result is empty.

    Names that are not valid UTF-8 (surrogate escapes from os.fsdecode) cannot go
    through pygit2's TreeBuilder.insert: the tree is then written from its raw entries.
    """
    builder = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
    raw_names: dict[str, tuple[pygit2.Oid, int]] = {}
    for name, child in node.children.items():
        existing: pygit2.Object | None = builder.get(name)  # None when absent (the stub says Object)
        existing_is_tree = existing is not None and existing.filemode == FileMode.TREE
        new: tuple[pygit2.Oid, int] | None = None
        if isinstance(child.leaf, Entry):
            new = (child.leaf.oid, child.leaf.mode)
        elif child.children:
            subtree = _tree(repo, existing.id) if existing is not None and existing_is_tree else None
            sub_id = _write_subtree(repo, subtree, child)
            if sub_id is not None:
                new = (sub_id, FileMode.TREE)
            elif existing is not None and (existing_is_tree or child.leaf is None):
                builder.remove(name)
        elif child.leaf is None and existing is not None and not existing_is_tree:
            builder.remove(name)
        if new is None:
            continue
        if _is_utf8(name):
            builder.insert(name, new[0], new[1])
        else:
            if existing is not None:
                builder.remove(name)
            raw_names[name] = new
    if not raw_names:
        return builder.write() if len(builder) else None
    entries = [_raw_entry(entry) for entry in _tree(repo, builder.write())] if len(builder) else []
    entries.extend((os.fsencode(name), oid, mode) for name, (oid, mode) in raw_names.items())
    return _write_tree_entries(repo, entries)


def _tree(repo: pygit2.Repository, oid: pygit2.Oid) -> pygit2.Tree:
    """The tree object `oid` (a TypeError if it is not a tree)."""
    obj = repo[oid]
    if not isinstance(obj, pygit2.Tree):
        raise TypeError(f"{oid} is a {obj.type_str}, not a tree")
    return obj


def _raw_entry(entry: pygit2.Object) -> _RawEntry:
    """A tree entry as (raw name bytes, oid, mode)."""
    name = entry.raw_name
    if name is None:  # only objects looked up by id have no name; tree entries always do
        raise ValueError(f"tree entry {entry.id} has no name")
    return name, entry.id, entry.filemode


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _write_tree_entries(repo: pygit2.Repository, entries: list[_RawEntry]) -> pygit2.Oid:
    """Write a tree object from raw (name bytes, oid, mode) entries, in git's order
    (a folder sorts as if its name ended with `/`)."""

    def key(entry: _RawEntry) -> bytes:
        return entry[0] + b"/" if entry[2] == FileMode.TREE else entry[0]

    data = b"".join(b"%o %s\0%s" % (int(mode), name, oid.raw) for name, oid, mode in sorted(entries, key=key))
    return repo.odb.write(ObjectType.TREE, data)
