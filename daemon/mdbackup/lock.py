"""One mdbackup process per repository: an `flock` on `<git dir>/mdbackup/lock`.

The lock is an advisory `flock(LOCK_EX)` on an open file, so the kernel drops
it when the holder's process dies for any reason (kill -9 included): there
is no stale-lock cleanup and the file is never deleted (deleting a lock file
lets two processes lock two different inodes). The file holds the holder's
pid, for the "busy" message and for `status`.

The pid is written at offset 0 and the file then truncated to its length
(rather than truncated first), so a reader never sees an empty file while a
holder is alive; readers parse the first line only.

`holder_pid` probes by trying to take a shared lock on a separate open file
description; while it holds that probe (microseconds), a starting daemon's
exclusive attempt fails, so `RepositoryLock.acquire` retries for a short
grace period when the file does not name a live process.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import time
from pathlib import Path
from types import TracebackType

WAKE_SIGNAL = signal.SIGUSR1
"""Sent to the lock holder (a running daemon) to make it act on the state database now."""

_PROBE_GRACE = 0.5  # seconds acquire keeps retrying while no live holder is named
_RETRY_PAUSE = 0.01  # seconds between those attempts


class LockBusy(Exception):
    """Another process holds the repository lock; `pid` is its pid when the file names it."""

    def __init__(self, pid: int | None, path: Path) -> None:
        self.pid = pid
        self.path = path
        holder = f"pid {pid}" if pid is not None else "a process whose pid is unknown"
        super().__init__(f"another mdbackup ({holder}) holds the repository lock {path}")


class RepositoryLock:
    """An exclusive, process-lifetime lock on one repository; use `acquire`.

    Release it with `release()` or a `with` block; it is also released when
    the process exits or dies. Not reentrant: a second `acquire` of the same
    path in the same process fails with LockBusy naming our own pid.
    """

    def __init__(self, path: Path, fd: int) -> None:
        """Use `RepositoryLock.acquire`."""
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, *, grace: float = _PROBE_GRACE) -> RepositoryLock:
        """Take the lock at `path` (parent folders are created) and write our pid into it.

        Never waits for a live holder: raises LockBusy at once when the file
        names a running process. When the lock is held but no live process is
        named (a `holder_pid` probe, or a holder that has not written its pid
        yet) it retries for up to `grace` seconds before raising LockBusy.
        OSError from creating or opening the file propagates.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _lock_exclusive(fd, path, grace=grace)
            _write_pid(fd, os.getpid())
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    @property
    def held(self) -> bool:
        """True until `release()`."""
        return self._fd is not None

    def release(self) -> None:
        """Empty the pid file and drop the lock; idempotent. The file itself stays."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> RepositoryLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RepositoryLock({str(self.path)!r}, held={self.held})"


def holder_pid(path: Path) -> int | None:
    """The pid of the live process holding the lock at `path`, or None when nobody holds it.

    Probes with a non-blocking shared flock on its own descriptor: if that
    succeeds nobody holds the lock (the probe is dropped at once). Never
    creates or deletes the file. A holder whose pid cannot be read yet
    gives None after a short wait.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if _try_flock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _wait_for_live_pid(fd, timeout=0.1)
    finally:
        os.close(fd)


def _lock_exclusive(fd: int, path: Path, *, grace: float) -> None:
    """Take LOCK_EX on `fd` or raise LockBusy; retry within `grace` while no live holder is named."""
    deadline = time.monotonic() + grace
    while not _try_flock(fd, fcntl.LOCK_EX):
        pid = _read_pid(fd)
        if (pid is not None and _alive(pid)) or time.monotonic() >= deadline:
            raise LockBusy(pid, path)
        time.sleep(_RETRY_PAUSE)


def _try_flock(fd: int, operation: int) -> bool:
    """Non-blocking flock; False when someone else holds a conflicting lock."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _write_pid(fd: int, pid: int) -> None:
    """Write `pid` as the first line, cut what is left of an older content, fsync."""
    data = f"{pid}\n".encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
    os.fsync(fd)


def _read_pid(fd: int) -> int | None:
    """The pid on the file's first line, or None when it is empty or not a number."""
    try:
        first = os.pread(fd, 64, 0).split(b"\n", 1)[0].strip()
        pid = int(first)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def _wait_for_live_pid(fd: int, *, timeout: float) -> int | None:
    """Read the holder's pid, re-reading for up to `timeout` while it is missing or not alive."""
    deadline = time.monotonic() + timeout
    while True:
        pid = _read_pid(fd)
        if (pid is not None and _alive(pid)) or time.monotonic() >= deadline:
            return pid if pid is not None and _alive(pid) else None
        time.sleep(_RETRY_PAUSE)


def _alive(pid: int) -> bool:
    """True when a process with this pid exists (possibly another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
