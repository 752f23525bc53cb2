"""Find the store paths that differ from HEAD (reads no config).

Walks only the store folder and only HEAD's subtree for it, so the cost follows
the store, not the repository. A file is hashed only when the index's stat data
does not vouch for it (same size and mtime as when the index entry was written,
and the entry's blob is HEAD's), the way git itself avoids rehashing.

Like git's own walk it never enters a folder that is another repository (it holds
`.git`, a folder or a file), never reports a skip-worktree entry (sparse checkout)
and compares modes as `git add` would give them (core.fileMode, core.symlinks).

A long scan reports progress: `progress` is called for every tree of HEAD read, every
folder walked, every file hashed and every chunk of a big one (the daemon's liveness heartbeat beats on it).

Nothing here can block or swallow a path: a file is hashed through a descriptor
opened with O_NOFOLLOW and O_NONBLOCK and checked with fstat (a FIFO, device or link
swapped in after the walk's lstat is reported changed, never waited on), in bounded
chunks; a folder or file the walk cannot read for any reason but having vanished (a
path longer than PATH_MAX, no permission, ...) is reported changed, so the commit
looks at it and records it `failed` with the reason.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pygit2
from pygit2.enums import FileMode

from mdbackup.git.shapes import core_settings, git_mode, index_entry_info, is_skipped, raw_entry, sparse_cone


@dataclass(frozen=True)
class ScanResult:
    """`changed`: repo-relative paths that differ from HEAD (added, modified, deleted)."""

    changed: tuple[str, ...]
    files_seen: int
    hashed: int
    elapsed_ms: float


def changed_paths(
    repo: pygit2.Repository,
    *,
    store_prefix: str,
    wants: Callable[[str], bool],
    wants_dir: Callable[[str], bool],
    progress: Callable[[], object] = lambda: None,
) -> ScanResult:
    """Every path under `store_prefix` that `wants` accepts and whose working-tree
    content differs from HEAD: new files not ignored by .gitignore (a tracked path
    stays tracked), modified files and links, deleted files. `progress()` is called at
    every tree and folder, every file hashed and every chunk read (never 1 MiB apart).
    """
    started = time.perf_counter()
    head = _head_entries(repo, store_prefix, progress)
    index = repo.index
    core = core_settings(repo)
    cone = sparse_cone(repo, core)
    index_written_ns = _mtime_ns(os.path.join(repo.path, "index"))
    seen: set[str] = set()
    changed: list[str] = []
    ignored_folders: dict[str, bool] = {}
    hashed = 0
    for path, st in _walk(repo.workdir, store_prefix, wants_dir, progress):
        if st is None:  # unreadable: the commit says why
            changed.append(path)
            continue
        if not wants(path):
            continue
        seen.add(path)
        known = head.get(path)
        if known is None:
            if cone is not None and path not in index and not cone.contains(path):
                continue  # outside the sparse cone: git add refuses it
            if path in index or not path_is_ignored(repo, path, folders=ignored_folders):
                changed.append(path)
            continue
        info = index_entry_info(index, path)
        if is_skipped(info, core, repo.workdir, path):
            continue  # skip-worktree: never ours to commit
        mode = git_mode(st.st_mode, None if info is None else info.mode, core)
        if _index_vouches(index, path, st, known, mode=mode, index_written_ns=index_written_ns):
            continue
        hashed += 1
        if _content_entry(repo, path, st, mode, progress) != known:
            changed.append(path)
    changed.extend(p for p in head if p not in seen and wants(p) and not _skip_worktree(index, p))
    return ScanResult(
        changed=tuple(sorted(changed)),
        files_seen=len(seen),
        hashed=hashed,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def path_is_ignored(repo: pygit2.Repository, path: str, *, folders: dict[str, bool] | None = None) -> bool:
    """Whether git ignores `path` (untracked) by its ignore files, as `git check-ignore` says.

    A folder above it that the rules exclude excludes it whatever comes after (git never
    looks inside an excluded folder, so `!name` cannot re-include a file there); libgit2
    alone answers from the file's own last matching rule, so the folders are asked
    first, each as a folder (trailing `/`). `folders` keeps those answers (folder + "/"
    -> ignored): share one dict across the paths of one pass, never across passes.
    """
    slash = path.find("/")
    while slash > 0:
        folder = path[: slash + 1]
        known = None if folders is None else folders.get(folder)
        if known is None:
            known = _is_ignored(repo, folder)
            if folders is not None:
                folders[folder] = known
        if known:
            return True
        slash = path.find("/", slash + 1)
    return _is_ignored(repo, path)


def _is_ignored(repo: pygit2.Repository, path: str) -> bool:
    """`repo.path_is_ignored(path)`, also for names that are not valid UTF-8.

    Such names travel as `str` with surrogate escapes (os.fsdecode), which pygit2
    refuses to encode; libgit2 itself takes the raw bytes, so those are passed to
    `git_ignore_path_is_ignored` directly (through ctypes: pygit2's cffi does not
    declare it). Without that entry point, the bad bytes are asked about as U+FFFD.
    """
    try:
        return repo.path_is_ignored(path)
    except UnicodeEncodeError:
        pass
    raw = os.fsencode(path)
    function = _raw_ignore_function()
    if function is not None:
        ignored = ctypes.c_int(0)
        pointer = int(pygit2.ffi.cast("uintptr_t", repo._repo))
        if function(ctypes.byref(ignored), pointer, raw) == 0:
            return bool(ignored.value)
    return repo.path_is_ignored(raw.decode("utf-8", "replace"))


@functools.cache
def _raw_ignore_function() -> Callable[..., int] | None:
    try:
        from pygit2 import _libgit2  # the cffi module, linked against libgit2

        function = ctypes.CDLL(_libgit2.__file__).git_ignore_path_is_ignored
    except (ImportError, OSError, AttributeError):
        return None
    function.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_char_p]
    function.restype = ctypes.c_int
    return function


def _head_entries(
    repo: pygit2.Repository, prefix: str, progress: Callable[[], object]
) -> dict[str, tuple[pygit2.Oid, int]]:
    """Blob and link entries of HEAD's tree under `prefix`: path -> (oid, mode); `progress()`
    at every tree read."""
    if repo.head_is_unborn:
        return {}
    tree = repo.head.peel(pygit2.Commit).tree
    if prefix:
        try:
            sub = tree[prefix]
        except KeyError:
            return {}
        if sub.filemode != FileMode.TREE:
            return {}
        tree = repo[sub.id].peel(pygit2.Tree)
    entries: dict[str, tuple[pygit2.Oid, int]] = {}
    stack: list[tuple[pygit2.Tree, str]] = [(tree, prefix + "/" if prefix else "")]
    while stack:
        progress()
        current, base = stack.pop()
        for entry in current:
            if entry.filemode == FileMode.TREE:
                stack.append((repo[entry.id].peel(pygit2.Tree), f"{base}{entry.name}/"))
            elif entry.filemode != FileMode.COMMIT:  # submodules are not store files
                entries[f"{base}{entry.name}"] = (entry.id, entry.filemode)
    return entries


def _walk(
    workdir: str, prefix: str, wants_dir: Callable[[str], bool], progress: Callable[[], object]
) -> Iterator[tuple[str, os.stat_result | None]]:
    """Files and links under the store folder: (repo-relative path, lstat). A folder or
    entry that cannot be read (other than vanished) comes with None instead of lstat.
    `progress()` at every folder."""
    stack = [prefix]
    while stack:
        progress()
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(workdir, rel_dir)) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue  # vanished: its tracked files show as deleted
        except OSError:
            if rel_dir != prefix:
                yield rel_dir, None  # too long a path, no permission, ...
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:
                yield rel, None
                continue
            if entry.name == ".git":
                continue  # this repository's own, or (below the root) another repository's
            if stat.S_ISDIR(st.st_mode):
                if wants_dir(rel) and not os.path.lexists(os.path.join(entry.path, ".git")):
                    stack.append(rel)  # a folder holding .git is another repository: not entered
            elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                yield rel, st


def _index_vouches(
    index: pygit2.Index,
    path: str,
    st: os.stat_result,
    known: tuple[pygit2.Oid, int],
    *,
    mode: int,
    index_written_ns: int,
) -> bool:
    """True when the index entry is HEAD's blob and its stat data matches the file.

    Reads the stat fields through pygit2's cffi binding (the Python IndexEntry does
    not expose them); any doubt answers False, which only costs a hash.
    """
    centry = raw_entry(index, path)
    if centry is None:
        return False
    ffi = pygit2.ffi
    oid = pygit2.Oid(raw=bytes(ffi.buffer(ffi.addressof(centry, "id"))[:]))
    if oid != known[0] or centry.mode != known[1] or mode != known[1]:
        return False  # a chmod changes only the mode (and ctime), never size or mtime
    mtime_ns = centry.mtime.seconds * 1_000_000_000 + centry.mtime.nanoseconds
    ctime_ns = centry.ctime.seconds * 1_000_000_000 + centry.ctime.nanoseconds
    if (
        centry.file_size != (st.st_size & 0xFFFFFFFF)
        or mtime_ns != st.st_mtime_ns
        or ctime_ns != st.st_ctime_ns
    ):
        return False
    # Racy entry: the file changed no earlier than the index was written, so equal
    # stat data proves nothing (git's "racy git" rule).
    return st.st_mtime_ns < index_written_ns


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _skip_worktree(index: pygit2.Index, path: str) -> bool:
    info = index_entry_info(index, path)
    return info is not None and info.skip_worktree


_UNREADABLE = pygit2.Oid(hex="0" * 40)  # differs from every blob: the commit looks again
_HASH_CHUNK = 1 << 20


def _content_entry(
    repo: pygit2.Repository, path: str, st: os.stat_result, mode: int, progress: Callable[[], object]
) -> tuple[pygit2.Oid, int]:
    full = os.path.join(repo.workdir, path)
    if stat.S_ISLNK(st.st_mode):
        try:
            return pygit2.hash(os.readlink(os.fsencode(full))), FileMode.LINK
        except OSError:
            return _UNREADABLE, FileMode.LINK
    return hash_file(full, progress=progress) or _UNREADABLE, mode


def hash_file(full: str, *, progress: Callable[[], object] = lambda: None) -> pygit2.Oid | None:
    """The blob id of the regular file at `full` (its raw bytes, as `pygit2.hashfile`),
    read in bounded chunks through a descriptor that follows no link and never blocks;
    `progress()` before each chunk.

    None when it is not a regular file now (a FIFO, device or link swapped in), cannot
    be read, or changed size while being read.
    """
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return None
        digest = hashlib.sha1(f"blob {opened.st_size}\0".encode(), usedforsecurity=False)
        size = 0
        while True:
            progress()
            chunk = os.read(fd, _HASH_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > opened.st_size:
                return None
            digest.update(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return pygit2.Oid(raw=digest.digest()) if size == opened.st_size else None
