"""`retry`, `pause`, `resume`: change the state database, then wake a running daemon.

They work whether or not the daemon runs; a running one is sent SIGUSR1 (its pid is
the lock holder's) and acts on the database at once.
"""

from __future__ import annotations

import argparse

from mdbackup.actions.common import open_backup, wake_daemon
from mdbackup.config import Config
from mdbackup.exitcodes import ExitCode
from mdbackup.queue import now


def retry(config: Config, _args: argparse.Namespace) -> int:
    backup = open_backup(config)
    paths = backup.queue.retry_failed(now=now())
    push = backup.queue.retry_push()
    pid = wake_daemon(backup)
    print(
        f"retry: {paths} failed path(s) pending again"
        + ("; push pending again" if push else "")
        + (f"; daemon (pid {pid}) notified" if pid else "")
    )
    return ExitCode.OK


def _set_paused(config: Config, paused: bool) -> int:
    backup = open_backup(config)
    backup.queue.set_paused(paused)
    pid = wake_daemon(backup)
    word = "paused: changes are recorded, nothing is committed" if paused else "resumed"
    print(word + (f" (daemon pid {pid} notified)" if pid else ""))
    return ExitCode.OK


def pause(config: Config, _args: argparse.Namespace) -> int:
    return _set_paused(config, True)


def resume(config: Config, _args: argparse.Namespace) -> int:
    return _set_paused(config, False)
