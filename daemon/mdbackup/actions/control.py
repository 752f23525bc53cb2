"""`retry`, `pause`, `resume`: change the state database, then wake a running daemon.

They work whether or not the daemon runs; a running one is sent SIGUSR1 (its pid is
the lock holder's) and acts on the database at once.
"""

from __future__ import annotations

import argparse

from mdbackup.actions.common import wake_daemon
from mdbackup.backup import Backup
from mdbackup.config import Config
from mdbackup.exitcodes import ExitCode


def retry(config: Config, _args: argparse.Namespace) -> int:
    backup = Backup.open(config)
    try:
        paths, push = backup.retry_now()
        pid = wake_daemon(backup)
    finally:
        backup.close()
    print(
        f"retry: {paths} failed path(s) pending again"
        + ("; push pending again" if push else "")
        + (f"; daemon (pid {pid}) notified" if pid else "")
    )
    return ExitCode.OK


def _set_paused(config: Config, paused: bool) -> int:
    backup = Backup.open(config)
    try:
        backup.set_paused(paused)
        pid = wake_daemon(backup)
    finally:
        backup.close()
    word = "paused: changes are recorded, nothing is committed" if paused else "resumed"
    print(word + (f" (daemon pid {pid} notified)" if pid else ""))
    return ExitCode.OK


def pause(config: Config, _args: argparse.Namespace) -> int:
    return _set_paused(config, True)


def resume(config: Config, _args: argparse.Namespace) -> int:
    return _set_paused(config, False)
