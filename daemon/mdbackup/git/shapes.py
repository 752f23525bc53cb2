"""Repository shapes: what of the working tree is not ours to commit, and how git's own
core settings shape an entry (reads the repository's git config, never mdbackup's).

- A folder that is itself a repository (it holds `.git`, a folder or a file: a nested
  repository, a submodule, a linked worktree) and a gitlink of HEAD or the index are
  never entered: nothing under them is a path of this repository, and the gitlink
  stays a gitlink.
- An index entry flagged skip-worktree (sparse checkout puts every path outside its
  cone there) is never committed as deleted or changed, and keeps its flag.
- With a cone-mode sparse checkout (`core.sparseCheckout`, `core.sparseCheckoutCone`),
  a path outside the cone that the index does not have is not ours either: `git add`
  refuses it. (Non-cone patterns are not read: only the skip-worktree flags count.)
- `core.fileMode = false` keeps the index's mode for a regular file (a chmod is never
  committed), `core.symlinks = false` keeps a link entry a link when the working tree
  has a plain file there, exactly as git's `ce_mode_from_stat` does.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

import pygit2
from pygit2.enums import FileMode

from mdbackup.git import layout
from mdbackup.git.repo import git_dir

# git_index_entry.flags_extended: GIT_INDEX_ENTRY_SKIP_WORKTREE (libgit2's index.h).
_SKIP_WORKTREE = 1 << 14


@dataclass(frozen=True, kw_only=True)
class CoreSettings:
    """git's `core.fileMode`, `core.symlinks` and `core.ignoreCase`, with git's defaults."""

    file_mode: bool = True
    symlinks: bool = True
    ignore_case: bool = False
    sparse_cone: bool = False
    sparse_clears_present: bool = False  # core.sparseCheckout without sparse.expectFilesOutsideOfPatterns


def core_settings(repo: pygit2.Repository) -> CoreSettings:
    """The repository's core settings as git reads them (local, global and system config)."""
    config = repo.config

    def flag(key: str, default: bool) -> bool:
        try:
            return config.get_bool(key)
        except (KeyError, pygit2.GitError, ValueError):
            return default

    return CoreSettings(
        file_mode=flag("core.filemode", True),
        symlinks=flag("core.symlinks", True),
        ignore_case=flag("core.ignorecase", False),
        sparse_cone=flag("core.sparsecheckout", False) and flag("core.sparsecheckoutcone", True),
        sparse_clears_present=flag("core.sparsecheckout", False)
        and not flag("sparse.expectfilesoutsideofpatterns", False),
    )


def is_skipped(info: IndexEntryInfo | None, core: CoreSettings, workdir: str, path: str) -> bool:
    """True when the index entry is skip-worktree as git sees it: in a sparse checkout
    git (2.37+) clears the flag of an entry whose file is present in the working tree
    (unless sparse.expectFilesOutsideOfPatterns), and then `git add` stages it."""
    if info is None or not info.skip_worktree:
        return False
    return not (core.sparse_clears_present and os.path.lexists(os.path.join(workdir, path)))


@dataclass(frozen=True)
class SparseCone:
    """A cone-mode sparse checkout: folders whose whole subtree is in (`recursive`) and
    folders only whose own files are in (`parents`); files at the top are always in."""

    recursive: frozenset[str]
    parents: frozenset[str]
    ignore_case: bool = False  # core.ignoreCase: folders compared as git's fspathcmp does

    def contains(self, path: str) -> bool:
        """True when the file `path` is inside the cone."""
        if self.ignore_case:
            path = _fold(path).decode("utf-8", "surrogateescape")
        folder, _, _name = path.rpartition("/")
        if not folder or folder in self.parents or folder in self.recursive:
            return True
        slash = folder.find("/")
        while slash != -1:
            if folder[:slash] in self.recursive:
                return True
            slash = folder.find("/", slash + 1)
        return False


def sparse_cone(repo: pygit2.Repository, core: CoreSettings) -> SparseCone | None:
    """The cone of a cone-mode sparse checkout, or None when there is none (or the
    patterns file cannot be read: then only the skip-worktree flags count)."""
    if not core.sparse_cone:
        return None
    try:
        lines = layout.sparse_checkout(git_dir(repo)).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    included: set[str] = set()
    parents: set[str] = set()
    for line in (raw.strip() for raw in lines):
        if line.startswith("!/") and line.endswith("/*/"):
            parents.add(line[2:-3])
        elif line.startswith("/") and line.endswith("/") and line not in ("/*/",):
            included.add(line[1:-1])
    if core.ignore_case:
        included = {_fold(f).decode("utf-8", "surrogateescape") for f in included}
        parents = {_fold(f).decode("utf-8", "surrogateescape") for f in parents}
    return SparseCone(
        recursive=frozenset(included - parents),
        parents=frozenset(parents & included),
        ignore_case=core.ignore_case,
    )


@dataclass(frozen=True)
class IndexEntryInfo:
    """What the index says about one path: its mode, whether it is skip-worktree, and its
    object id."""

    mode: int
    skip_worktree: bool
    oid: pygit2.Oid | None = None


def raw_entry(index: pygit2.Index, path: str) -> Any | None:
    """libgit2's own stage-0 entry of `path` (a cffi `git_index_entry *`: stat data, flags),
    or None; read through pygit2's cffi binding, since the Python IndexEntry has neither."""
    raw_index = getattr(index, "_index", None)
    if raw_index is None:
        return None
    centry = pygit2.C.git_index_get_bypath(raw_index, os.fsencode(path), 0)
    return None if centry == pygit2.ffi.NULL else centry


def index_entry_info(index: pygit2.Index, path: str) -> IndexEntryInfo | None:
    """The stage-0 index entry of `path` (mode and skip-worktree flag), or None.

    Reads the flags through pygit2's cffi binding: the Python IndexEntry has none.
    """
    centry = raw_entry(index, path)
    if centry is None:
        return None
    ffi = pygit2.ffi
    return IndexEntryInfo(
        mode=int(centry.mode),
        skip_worktree=bool(centry.flags_extended & _SKIP_WORKTREE),
        oid=pygit2.Oid(raw=bytes(ffi.buffer(ffi.addressof(centry, "id"))[:])),
    )


def git_mode(st_mode: int, existing: int | None, core: CoreSettings) -> int:
    """The mode `git add` gives a file with this lstat mode (git's ce_mode_from_stat).

    `existing` is the index entry's mode (None when the path is not in the index).
    """
    if stat.S_ISLNK(st_mode):
        return FileMode.LINK
    if not core.symlinks and existing == FileMode.LINK:
        return FileMode.LINK
    if not core.file_mode:
        if existing in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
            return existing
        return FileMode.BLOB
    return FileMode.BLOB_EXECUTABLE if st_mode & stat.S_IXUSR else FileMode.BLOB


class Boundaries:
    """Answers, for one pass, whether a path lies inside another repository.

    `tree` (HEAD's tree, or None) and `index` give the gitlinks; the working tree gives
    the folders holding `.git`. Share one instance across the paths of one pass only.
    """

    def __init__(self, workdir: str, tree: pygit2.Tree | None, index: pygit2.Index) -> None:
        self._workdir = workdir
        self._tree = tree
        self._index = index
        self._known: dict[str, str | None] = {}

    def owner(self, path: str) -> str | None:
        """The folder at or above `path` that is another repository, or None when `path`
        belongs to this one. `path` itself counts when it is a gitlink."""
        if self._is_gitlink(path):
            return path
        slash = path.find("/")
        while slash != -1:
            folder = path[:slash]
            if self._folder_is_repository(folder):
                return folder
            slash = path.find("/", slash + 1)
        return None

    def _folder_is_repository(self, folder: str) -> bool:
        known = self._known.get(folder, "")
        if known != "":
            return known is not None
        full = os.path.join(self._workdir, folder)
        try:
            real_folder = stat.S_ISDIR(os.lstat(full).st_mode)  # beyond a link is nobody's: never followed
        except OSError:
            real_folder = False
        found = self._is_gitlink(folder) or (real_folder and os.path.lexists(os.path.join(full, ".git")))
        self._known[folder] = folder if found else None
        return found

    def _is_gitlink(self, path: str) -> bool:
        info = index_entry_info(self._index, path)
        if info is not None and info.mode == FileMode.COMMIT:
            return True
        if self._tree is None:
            return False
        try:
            return bool(self._tree[path].filemode == FileMode.COMMIT)
        except KeyError:
            return False


def _fold(name: str) -> bytes:
    """git's case-insensitive key of a name (name-hash.c, strncasecmp): ASCII letters only."""
    return os.fsencode(name).lower()


class IndexNames:
    """The index's names as git sees them with `core.ignoreCase = true` (name-hash.c,
    read-cache.c): a working-tree path that differs from an index entry only in case is
    that entry ("tracked" under its index name), and a new path takes the case of the
    folders the index already has (`adjust_dirname_case`). One instance per pass: the
    paths a pass adds are noted with `note`.
    """

    def __init__(self, index: pygit2.Index) -> None:
        self._files: dict[bytes, str] = {}
        self._dirs: dict[bytes, str] = {}
        self._added: dict[bytes, str] = {}
        for entry in index:
            self._files.setdefault(_fold(entry.path), entry.path)
            self._note_folders(entry.path)

    def _note_folders(self, name: str) -> None:
        folder = name
        while "/" in folder:
            folder = folder.rpartition("/")[0]
            key = _fold(folder)
            if key in self._dirs:
                break  # its parents were noted with it
            self._dirs[key] = folder

    def alias(self, path: str) -> str | None:
        """The index entry `path` is, by case only (None when there is none, or it is
        `path` itself): `index_file_exists(..., ignore_case)`."""
        found = self._files.get(_fold(path))
        return None if found is None or found == path else found

    def adjusted(self, path: str) -> str:
        """`path` with each folder spelled as the index spells it (`adjust_dirname_case`)."""
        parts = path.split("/")
        for i in range(len(parts) - 1):
            known = self._dirs.get(_fold("/".join(parts[: i + 1])))
            if known is not None:
                parts[i] = known.rpartition("/")[2]
        return "/".join(parts)

    def added_alias(self, name: str) -> str | None:
        """A path added in this pass that `name` aliases (git then dies: "will not add file
        alias"), or None."""
        found = self._added.get(_fold(name))
        return None if found is None or found == name else found

    def note(self, name: str) -> None:
        """`name` was added to the index in this pass."""
        self._added.setdefault(_fold(name), name)
        self._note_folders(name)


def real_folders_on_the_way(workdir: str, path: str, known: dict[str, bool]) -> bool:
    """True when every folder above `path` is a real folder, not a link (nor a file).

    Git does not look beyond a symbolic link: `a/b.md` with `a` a link is no file
    of the working tree. `known` remembers answers for the pass.
    """
    slash = path.find("/")
    while slash != -1:
        folder = path[:slash]
        real = known.get(folder)
        if real is None:
            try:
                real = stat.S_ISDIR(os.lstat(os.path.join(workdir, folder)).st_mode)
            except OSError:
                real = False
            known[folder] = real
        if not real:
            return False
        slash = path.find("/", slash + 1)
    return True
