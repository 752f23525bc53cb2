"""Putting a new version of one working-tree file in place without clobbering a save.

Reads no config. A new version is written to a temporary file (in our state folder,
`layout.sync_temp_dir`, so the watcher never sees it; beside the target when that folder
is on another file system) and then swapped in:

- the target exists: `renameat2(RENAME_EXCHANGE)` swaps the two names atomically, and the
  file that was at the target (now at the temporary name) is checked against what was
  verified before (`StatKey`: inode, size, mode, mtime). Not the same (an editor saved in
  between): the names are swapped back, so the save stays at the target (and if yet
  another save replaced our version meanwhile, that newest save is put back). A save by
  rename is never lost; only a write into the old file through a descriptor opened before
  the swap and written after it could still land in the dropped file;
- the target is absent: `renameat2(RENAME_NOREPLACE)`: a file created meanwhile wins;
- without `renameat2` (another kernel or file system): the target's `StatKey` is checked
  right before `os.replace` (the smallest window a plain rename allows).

Nothing is fsynced, as git does not fsync the files it checks out.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
from pathlib import Path

from mdbackup.git import layout

TEMP_SUFFIX = ".mdbackup-sync.tmp"
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2

StatKey = tuple[int, int, int, int]
"""(inode, size, mode, mtime ns) of a file: another value means another or changed file.
(ctime is left out: a rename changes it.)"""


def stat_key(full: str | Path) -> StatKey | None:
    """The `StatKey` of the file (or link) at `full`; None when there is none."""
    try:
        st = os.lstat(full)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns


def temp_folder(git_dir: Path) -> Path:
    """Where new file versions are written before they are swapped in."""
    return layout.sync_temp_dir(git_dir)


def clear_temp(git_dir: Path) -> int:
    """At start: remove the temporary files a killed sync left; returns how many."""
    removed = 0
    folder = temp_folder(git_dir)
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(folder):
            if name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(folder / name)
                    removed += 1
    return removed


def _renameat2(src: str, dst: str, flags: int) -> bool:
    """`renameat2(src, dst, flags)`; False when the kernel, libc or file system lacks it.
    Raises OSError for any other failure (EEXIST for RENAME_NOREPLACE, EXDEV, ...)."""
    function = getattr(_LIBC, "renameat2", None)
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), dst)


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - no C library to load
    _LIBC = None


def place(
    full: str, data: bytes, *, link: bool, executable: bool, temp_dir: Path, expected: StatKey | None
) -> bool:
    """Put `data` (a file's content, or a link's target when `link`) at `full`, only while
    the file there is the one `expected` describes (None: no file). False when it is not
    (a save landed since it was checked): then the file at `full` is left as it is (the
    newest save) and nothing of ours remains."""
    os.makedirs(os.path.dirname(full) or ".", exist_ok=True)
    temp = _write_temp(temp_dir, data, link=link, executable=executable)
    try:
        try:
            return _swap_in(str(temp), full, expected)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        # our state folder is on another file system: write beside the target instead
        os.unlink(temp)
        folder, name = os.path.split(full)
        temp = Path(folder) / f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        _write_at(temp, data, link=link, executable=executable)
        return _swap_in(str(temp), full, expected)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _write_temp(temp_dir: Path, data: bytes, *, link: bool, executable: bool) -> Path:
    temp_dir.mkdir(parents=True, exist_ok=True)
    temp = temp_dir / f"{secrets.token_hex(8)}{TEMP_SUFFIX}"
    _write_at(temp, data, link=link, executable=executable)
    return temp


def _write_at(temp: Path, data: bytes, *, link: bool, executable: bool) -> None:
    if link:
        os.symlink(data, os.fsencode(temp))
        return
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o755 if executable else 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _swap_in(temp: str, full: str, expected: StatKey | None) -> bool:
    """Move `temp` to `full` as the module says; True when ours is in place."""
    ours = stat_key(temp)
    if expected is None:
        try:
            if _renameat2(temp, full, _RENAME_NOREPLACE):
                return True
        except FileExistsError:
            return False  # created meanwhile: the user's file stays
        if os.path.lexists(full):
            return False
        os.replace(temp, full)
        return True
    if not _renameat2(temp, full, _RENAME_EXCHANGE):
        if stat_key(full) != expected:
            return False
        os.replace(temp, full)
        return True
    if stat_key(temp) == expected:
        return True  # what we swapped out is the file we checked: the temp name holds it, dropped
    # A save landed between the check and the swap: give the target back to it.
    _renameat2(temp, full, _RENAME_EXCHANGE)
    if stat_key(temp) != ours:
        # and another one landed on our version meanwhile: it is the newest, put it back
        _renameat2(temp, full, _RENAME_EXCHANGE)
    return False


def remove(full: str, *, expected: StatKey | None) -> bool:
    """Remove the file at `full` if it is still the one `expected` describes; False when
    it is not (changed or replaced since it was checked: the user's file stays)."""
    if stat_key(full) != expected:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(full)
    return True


def remove_empty_parents(workdir: str, path: str) -> None:
    """Remove the folders of `path` that became empty, deepest first, as git does."""
    folder = os.path.dirname(path)
    while folder:
        try:
            os.rmdir(os.path.join(workdir, folder))
        except OSError:
            return
        folder = os.path.dirname(folder)


__all__ = ["TEMP_SUFFIX", "StatKey", "clear_temp", "place", "remove", "remove_empty_parents", "stat_key"]
