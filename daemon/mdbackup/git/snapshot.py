"""Read one working-tree path, safely, into a blob entry: what git would stage for it.

`snapshot` answers with the path's new entry (its blob is stored), None when the
path is gone, `Skipped` when it is not a path we back up, or `Failed` with the
reason. Hostile input: a file is read once through a descriptor that follows no
link and never blocks (one snapshot of a growing file; a FIFO or link swapped in
is looked at again), a path beyond a symbolic link is gone (as for git, the link
is never followed), and a file that became a folder is gone (its files are paths
of their own). Reads no mdbackup config; git's filters apply as `git add` applies
them: a configured filter driver's clean command first (`mdbackup.git.attributes`),
then git's line-ending and ident conversion (`mdbackup.git.eol`: core.autocrlf, text,
eol, ident, decided as git decides, not as libgit2's crlf filter does); a file that
needs no conversion is streamed, never held whole in memory; the mode follows
core.fileMode and core.symlinks (`mdbackup.git.shapes.git_mode`).
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pygit2
from pygit2.enums import FileMode

from mdbackup.git.attributes import DriverFailed, FilterScope, clean, driver_for
from mdbackup.git.eol import Conversion, EolRefused, conversion_for, has_crlf_in_index, to_git
from mdbackup.git.objects import Entry, RepositoryUnwritable, storing
from mdbackup.git.scan import path_is_ignored
from mdbackup.git.shapes import CoreSettings, git_mode, real_folders_on_the_way

_GIT_DEFAULTS = CoreSettings()
_AS_IT_IS = Conversion()  # stored as it is: no eol conversion, no ident

_READ_ATTEMPTS = 3  # a file that changes type or size under the read is looked at again
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Skipped:
    """Not a path we back up: untracked and ignored by .gitignore, or neither a regular
    file nor a symlink (a FIFO, a socket, a device). `not_ours` says it is another
    repository's or outside the sparse checkout (left alone whatever HEAD has)."""

    not_ours: bool = False


@dataclass(frozen=True)
class Failed:
    """This path cannot be committed now (unreadable, too large, kept changing)."""

    reason: str


SKIPPED = Skipped()

Store = Callable[[bytes], pygit2.Oid]
"""Stores a blob's content, returning its id (`Repository.create_blob`, `BlobPack.store`)."""

Snapshot = Entry | Skipped | Failed | None
"""A path's working-tree state: its entry, Skipped, Failed, or None when it is gone."""


def snapshot(
    repo: pygit2.Repository,
    path: str,
    *,
    tracked: bool,
    max_file_size: int,
    folders: dict[str, bool] | None = None,
    existing_mode: int | None = None,
    existing_id: pygit2.Oid | None = None,
    core: CoreSettings = _GIT_DEFAULTS,
    filters: FilterScope | None = None,
    ignored_folders: dict[str, bool] | None = None,
    store: Store | None = None,
) -> Snapshot:
    """The working-tree content of the repository-relative `path`, stored as a blob.

    Returns the entry (the blob or link is in the object database; the mode is
    BLOB, BLOB_EXECUTABLE or LINK), None when the path is gone (missing, beyond a
    symbolic link, now a folder, deleted during the read), SKIPPED when it is not a
    path we back up (an untracked path ignored by .gitignore, or not a regular file
    or symlink; `tracked` paths are never skipped as ignored) and Failed for this
    path's own problems (unreadable, over `max_file_size` bytes, kept changing).

    A symbolic link is stored as its target, never followed. A regular file is read
    once, through a descriptor opened without following links and without
    blocking, so the blob is one snapshot of its bytes even while it grows; a file
    swapped for another, a link or a FIFO under the read is looked at again.
    `folders` caches which folders on the way are real folders: share one dict
    across the paths of one pass, never across passes; `ignored_folders` likewise
    caches which folders the ignore rules exclude; `store` stores a file's content (by
    default `repo.create_blob`: a loose object; a batch's `BlobPack`). `existing_mode` is the index
    entry's mode and `core` the repository's core settings: with core.fileMode or
    core.symlinks false they decide the mode as git does. `existing_id` is the index
    entry's object: under core.autocrlf (or `text=auto`) a file whose index blob is text
    with CRLF keeps its CRLFs, as in git.

    A configured filter driver's clean command runs on the content first; a required
    driver that is missing or fails is Failed (naming the driver), and nothing of the
    raw content is stored.

    Raises RepositoryUnwritable when the blob cannot be stored (read-only
    repository, disk full); never for a problem of the path itself.
    """
    try:
        return _snapshot(
            repo,
            path,
            tracked=tracked,
            max_file_size=max_file_size,
            folders=folders,
            existing_mode=existing_mode,
            existing_id=existing_id,
            core=core,
            filters=filters,
            ignored_folders=ignored_folders,
            store=store,
        )
    except _Skip:
        return SKIPPED
    except _Failed as exc:
        return Failed(str(exc))


class _Skip(Exception):
    """Not a path we back up: untracked and ignored, or not a regular file or symlink."""


class _Failed(Exception):
    """This path cannot be committed; the message says why."""


class _Changed(Exception):
    """The file changed type or size under the read: look at it again."""


def _workdir(repo: pygit2.Repository) -> str:
    workdir = repo.workdir
    if workdir is None:
        raise ValueError(f"{repo.path}: a bare repository has no working tree")
    return workdir


def _snapshot(
    repo: pygit2.Repository,
    path: str,
    *,
    tracked: bool,
    max_file_size: int,
    folders: dict[str, bool] | None,
    existing_mode: int | None,
    existing_id: pygit2.Oid | None,
    core: CoreSettings,
    filters: FilterScope | None = None,
    ignored_folders: dict[str, bool] | None = None,
    store: Store | None = None,
) -> Entry | None:
    """`snapshot`, with Skipped and Failed raised as _Skip and _Failed."""
    workdir = _workdir(repo)
    full = os.path.join(workdir, path)
    folders = {} if folders is None else folders
    for _attempt in range(_READ_ATTEMPTS):
        if not real_folders_on_the_way(workdir, path, folders):
            return None
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise _Failed(f"cannot read: {exc.strerror}") from exc
        if stat.S_ISDIR(st.st_mode):
            return None  # the file became a folder: its files are paths of their own
        if not tracked and path_is_ignored(repo, path, folders=ignored_folders):
            raise _Skip(path)
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(os.fsencode(full))  # the link itself; its target is never read
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    continue  # no longer a link
                raise _Failed(f"cannot read the link: {exc.strerror}") from exc
            with storing("store the link"):
                return Entry(repo.create_blob(target), FileMode.LINK)
        if not stat.S_ISREG(st.st_mode):
            raise _Skip(path)
        if st.st_size > max_file_size:
            raise _Failed(f"file is {st.st_size} bytes, over store.max_file_size ({max_file_size})")
        try:
            oid = _file_blob(
                repo,
                path,
                full,
                st,
                max_file_size,
                index_has_crlf=lambda: has_crlf_in_index(repo, existing_id, existing_mode),
                scope=filters,
                store=store or repo.create_blob,
            )
        except _Changed:
            folders.clear()  # something moved: look at the folders again too
            continue
        if oid is None:
            return None  # deleted while we read it: a deletion
        return Entry(oid, FileMode(git_mode(st.st_mode, existing_mode, core)))
    raise _Failed("the file kept changing while being read; will retry")


def _file_blob(
    repo: pygit2.Repository,
    path: str,
    full: str,
    st: os.stat_result,
    max_file_size: int,
    *,
    index_has_crlf: Callable[[], bool],
    scope: FilterScope | None = None,
    store: Store,
) -> pygit2.Oid | None:
    """Store the regular file's content as a blob, converted as `git add` converts it
    (clean driver, then line endings and ident: `mdbackup.git.eol`); None when it
    vanished meanwhile. A `scope` that says no attribute and no core.autocrlf can reach
    the path spares the attribute lookups: nothing converts it."""
    if scope is not None and not scope.may_apply(path):
        conversion, driver = _AS_IT_IS, None
    else:
        conversion, driver = conversion_for(repo, path), driver_for(repo, path)
    workdir = _workdir(repo)
    if driver is None and conversion.changes_nothing:  # stored as it is: streamed

        def folders_still_real() -> None:
            if not real_folders_on_the_way(workdir, path, {}):
                raise _Changed(path)  # a folder became a link while we read

        return _read_regular(
            full, max_file_size, expected=st, repo=repo, check=folders_still_real, store=store
        )
    data = _read_whole(full, max_file_size, expected=st)
    if data is None:
        return None
    try:
        if driver is not None:  # git runs the driver's clean command first
            data = clean(driver, workdir=workdir, path=path, data=data)
        data = to_git(conversion, data, path=path, index_has_crlf=index_has_crlf)
    except (DriverFailed, EolRefused) as exc:
        raise _Failed(str(exc)) from exc
    if not real_folders_on_the_way(workdir, path, {}):
        raise _Changed(path)
    with storing("store the file"):
        return store(data)


def _open_for_reading(full: str) -> int | None:
    """A descriptor on `full` that followed no link and will never block; None when the
    file is gone. Raises _Changed when a link, folder or FIFO is there now, _Failed when it
    cannot be opened."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        return os.open(full, flags)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EWOULDBLOCK):
            raise _Changed(full) from exc
        raise _Failed(f"cannot read: {exc.strerror}") from exc


def _read_regular(
    full: str,
    limit: int,
    *,
    expected: os.stat_result | None = None,
    repo: pygit2.Repository,
    check: Callable[[], None] = lambda: None,
    store: Store | None = None,
) -> pygit2.Oid | None:
    """Store the bytes of the regular file at `full` as a blob, streamed (memory per file
    bounded by one chunk, whatever its size); None when it is gone.

    Opened with O_NOFOLLOW and O_NONBLOCK: a link swapped in is not followed and a
    FIFO swapped in does not block; a file that is not the `expected` one (replaced
    since its lstat) is not read either (all three raise _Changed). The blob is the
    file's first `st_size` bytes (fstat when opened): one snapshot of a growing file;
    one that shrank under the read raises _Changed. `check` runs after the last byte,
    before the blob is stored (it raises _Changed to store nothing). Raises _Failed when
    it cannot be read or is over `limit` bytes.
    """
    fd = _open_for_reading(full)
    if fd is None:
        return None
    try:
        try:
            opened = os.fstat(fd)
        except OSError as exc:
            raise _Failed(f"cannot read: {exc.strerror}") from exc
        replaced = expected is not None and (
            (opened.st_dev, opened.st_ino) != (expected.st_dev, expected.st_ino)
        )
        if not stat.S_ISREG(opened.st_mode) or replaced:
            raise _Changed(full)
        if opened.st_size > limit:
            raise _Failed(f"file grew over store.max_file_size ({limit}) while being read")
        reader = _FileReader(fd, opened.st_size, full, check)
        try:
            if opened.st_size <= _READ_CHUNK:  # at once: one object write (the stream writes a temp file too)
                return (store or repo.create_blob)(reader.readall())
            return repo.create_blob_fromiobase(reader)
        except (pygit2.GitError, OSError) as exc:
            reason = _stream_failure(repo, exc)
            raise RepositoryUnwritable(f"cannot write to the repository (store the file): {reason}") from exc
    finally:
        os.close(fd)


def _read_whole(full: str, limit: int, *, expected: os.stat_result) -> bytes | None:
    """The bytes of the regular file at `full` (for a clean filter, which needs them all);
    None when it is gone. Opened as `_read_regular` opens it (no link followed, no FIFO
    waited on, the `expected` file only); raises _Changed/_Failed as it does."""
    fd = _open_for_reading(full)
    if fd is None:
        return None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
            expected.st_dev,
            expected.st_ino,
        ):
            raise _Changed(full)
        if opened.st_size > limit:
            raise _Failed(f"file grew over store.max_file_size ({limit}) while being read")
        chunks: list[bytes] = []
        size = 0  # one snapshot: the first st_size bytes, even of a file still growing
        while size < opened.st_size and (chunk := os.read(fd, min(_READ_CHUNK, opened.st_size - size))):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise _Failed(f"cannot read: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _stream_failure(repo: pygit2.Repository, exc: BaseException) -> str:
    """Why a streamed blob could not be stored: libgit2's stream often says only "no
    error", so a full or read-only file system is named from statvfs."""
    try:
        fs = os.statvfs(repo.path)
    except OSError:
        return str(exc)
    if fs.f_flag & os.ST_RDONLY:
        return f"{os.strerror(errno.EROFS)} ({exc})"
    if fs.f_bavail * fs.f_frsize < 2 * _READ_CHUNK:
        return f"{os.strerror(errno.ENOSPC)} ({exc})"
    return str(exc)


class _FileReader(io.RawIOBase):
    """The first `size` bytes of the open file `fd`, a chunk at a time, for libgit2's blob
    stream; runs `check` at the end (before the blob is stored)."""

    def __init__(self, fd: int, size: int, full: str, check: Callable[[], None]) -> None:
        super().__init__()
        self._fd, self._left, self._full, self._check = fd, size, full, check

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left == 0:
            self._check()
            return 0
        try:
            chunk = os.read(self._fd, min(len(buffer), self._left, _READ_CHUNK))
        except OSError as exc:
            raise _Failed(f"cannot read: {exc.strerror}") from exc
        if not chunk:
            raise _Changed(self._full)  # shrank under the read
        self._left -= len(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)
