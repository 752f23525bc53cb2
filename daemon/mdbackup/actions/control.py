"""`retry`, `pause`, `resume`: change the state database, then wake a running daemon.

They work whether or not the daemon runs; a running one is sent SIGUSR1 (its pid is
the lock holder's) and acts on the database at once.

Ordering: each first tries the repository lock. Holding it (no daemon runs), the
database may be created, rebuilt or moved aside as `run` would. While another process
holds it, the database is only opened and changed by one small write under SQLite's
busy timeout, never created anew or moved aside under the running process. A locked,
damaged or foreign database is reported in one line (exit 75, 1, or 2), never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeVar

from mdbackup import reading
from mdbackup.actions.common import wake_daemon
from mdbackup.backup import ERRORS, Backup
from mdbackup.config import Config
from mdbackup.exitcodes import ExitCode
from mdbackup.git.layout import lock_path
from mdbackup.git.repo import NotAWorkTree
from mdbackup.lock import LockBusy, RepositoryLock
from mdbackup.state.db import StateCorrupt, StateOwnedElsewhere

T = TypeVar("T")


class _Refused(Exception):
    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _change(config: Config, change: Callable[[Backup], T]) -> tuple[T, int | None]:
    """Apply `change` to the state database in the order above; (its result, the pid
    of a daemon that was woken)."""
    try:
        git_dir = reading.locate(config)
    except NotAWorkTree as exc:
        raise _Refused(ExitCode.USAGE, f"--repo: {exc}") from exc
    try:
        lock: RepositoryLock | None = RepositoryLock.acquire(lock_path(git_dir))
    except LockBusy:
        lock = None  # a daemon (or --once) runs: a small write under the busy timeout
    except OSError as exc:
        raise _Refused(ExitCode.FAILED, f"cannot take the lock {lock_path(git_dir)}: {exc}") from exc
    try:
        try:
            backup = Backup.open(config, repair=lock is not None)
        except StateOwnedElsewhere as exc:
            raise _Refused(ExitCode.USAGE, f"[state] db: {exc}") from exc
        except StateCorrupt as exc:
            raise _Refused(
                ExitCode.FAILED, f"the state database is damaged ({_one_line(exc)}); the daemon rebuilds it"
            ) from exc
        try:
            result = change(backup)
            pid = wake_daemon(backup)
        finally:
            backup.close()
    except ERRORS as exc:
        code = ExitCode.BUSY if "locked" in str(exc).lower() else ExitCode.FAILED
        raise _Refused(code, f"cannot change the state database: {_one_line(exc)}") from exc
    finally:
        if lock is not None:
            lock.release()
    return result, pid


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def retry(config: Config, _args: argparse.Namespace) -> int:
    try:
        (paths, push), pid = _change(config, lambda backup: backup.retry_now())
    except _Refused as exc:
        print(f"mdbackup: {exc}", file=sys.stderr)
        return exc.code
    print(
        f"retry: {paths} failed path(s) pending again"
        + ("; push pending again" if push else "")
        + (f"; daemon (pid {pid}) notified" if pid else "")
    )
    return ExitCode.OK


def _set_paused(config: Config, paused: bool) -> int:
    try:
        _none, pid = _change(config, lambda backup: backup.set_paused(paused))
    except _Refused as exc:
        print(f"mdbackup: {exc}", file=sys.stderr)
        return exc.code
    word = "paused: changes are recorded, nothing is committed" if paused else "resumed"
    print(word + (f" (daemon pid {pid} notified)" if pid else ""))
    return ExitCode.OK


def pause(config: Config, _args: argparse.Namespace) -> int:
    return _set_paused(config, True)


def resume(config: Config, _args: argparse.Namespace) -> int:
    return _set_paused(config, False)
