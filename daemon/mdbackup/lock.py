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

`signal_holder` signals the pid the file names only when the kernel says that
pid holds the lock (`/proc/locks`): the file is only a claim, the kernel's lock
table is the proof.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

WAKE_SIGNAL = signal.SIGUSR1
"""Sent to the lock holder (a running daemon) to make it act on the state database now."""

PROC_LOCKS = Path("/proc/locks")
"""The kernel's table of file locks (Linux)."""

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


@dataclass(frozen=True, kw_only=True)
class Signalled:
    """The outcome of `signal_holder`: `pid` is the pid the lock file names (None: none
    or nobody holds the lock); `sent` says whether the signal went out; when it did not
    although a pid is named, `refused` is one line saying why."""

    pid: int | None
    sent: bool
    refused: str | None = None


def kernel_holders(path: Path, *, proc_locks: Path = PROC_LOCKS) -> frozenset[int] | None:
    """The pids the kernel reports as holding an exclusive `flock` on the file at `path`
    (from `proc_locks`), as seen from this process's PID namespace (a holder the namespace
    cannot see shows as pid 0, never matched). None when the table cannot be read (not
    Linux, no /proc); an empty set when the file is missing or nobody holds it."""
    try:
        st = os.stat(path)
        table = proc_locks.read_text()
    except FileNotFoundError:
        if not proc_locks.exists():
            return None
        return frozenset()
    except OSError:
        return None
    pids: set[int] = set()
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter ("1: -> FLOCK ..."), not a holder
            continue
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[3] != "WRITE":
            continue
        if _inode(fields[5]) == st.st_ino:
            try:
                pid = int(fields[4])
            except ValueError:
                continue
            if pid > 0:
                pids.add(pid)
    return frozenset(pids)


def _inode(field: str) -> int | None:
    """The inode of `/proc/locks`' `MAJOR:MINOR:INODE` field. The device is not compared:
    on overlay file systems the table names the underlying device, `stat` the overlay's
    (the holder must still be the pid the lock file names, so a stray match changes nothing)."""
    try:
        return int(field.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def signal_holder(path: Path, signum: int, *, proc_locks: Path = PROC_LOCKS) -> Signalled:
    """Send `signum` to the mdbackup holding the lock at `path`, only when proven.

    The pid the lock file names must be one the kernel reports as holding the lock
    (`kernel_holders`) and must not be this process; otherwise nothing is sent and
    `refused` says why (a pid file naming some other process is never signalled).
    Never raises for a vanished process or a missing permission: those are refusals.
    """
    pid = holder_pid(path)
    if pid is None:
        return Signalled(pid=None, sent=False)
    if pid == os.getpid():
        return Signalled(pid=pid, sent=False)
    holders = kernel_holders(path, proc_locks=proc_locks)
    if holders is None:
        return Signalled(
            pid=pid,
            sent=False,
            refused=f"not signalling pid {pid}: cannot read {proc_locks} to prove it holds {path}",
        )
    if pid not in holders:
        return Signalled(
            pid=pid,
            sent=False,
            refused=f"not signalling pid {pid}: the lock file {path} names it, but it does not hold the lock",
        )
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return Signalled(pid=pid, sent=False, refused=f"not signalling pid {pid}: it has exited")
    except PermissionError:
        return Signalled(
            pid=pid,
            sent=False,
            refused=f"cannot signal the mdbackup holding the lock (pid {pid}): permission denied",
        )
    return Signalled(pid=pid, sent=True)
