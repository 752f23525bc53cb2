"""Small helpers shared by the actions: the daemon's pid, waking it, time rendering."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from mdbackup.backup import Backup
from mdbackup.git.layout import lock_path
from mdbackup.lock import WAKE_SIGNAL, holder_pid


def daemon_pid(backup: Backup) -> int | None:
    """The pid of the mdbackup process holding this repository's lock, or None."""
    return holder_pid(lock_path(backup.git_dir))


def wake_daemon(backup: Backup) -> int | None:
    """Make a running daemon act on the state database now. Returns its pid, or None."""
    pid = daemon_pid(backup)
    if pid is None or pid == os.getpid():
        return None
    try:
        os.kill(pid, WAKE_SIGNAL)
    except ProcessLookupError:
        return None
    return pid


def iso_utc(epoch: float | None) -> str | None:
    """ISO 8601 UTC with `Z`, seconds precision; None stays None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
