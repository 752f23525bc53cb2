"""Small helpers shared by the actions: the daemon's pid, waking it, time rendering."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from mdbackup.backup import Backup
from mdbackup.git.layout import lock_path
from mdbackup.lock import WAKE_SIGNAL, holder_pid, signal_holder


def daemon_pid(backup: Backup) -> int | None:
    """The pid of the mdbackup process holding this repository's lock, or None."""
    return holder_pid(lock_path(backup.git_dir))


def wake_daemon(backup: Backup) -> int | None:
    """Make a running daemon act on the state database now. Returns its pid, or None.

    Only the process the kernel reports as holding this repository's lock is signalled
    (`lock.signal_holder`); when the lock file names a pid that cannot be proven to be
    it, or that cannot be signalled, nothing is sent, one line on stderr says so, and
    None is returned (the state database change stands either way)."""
    outcome = signal_holder(lock_path(backup.git_dir), WAKE_SIGNAL)
    if outcome.refused:
        print(f"mdbackup: {outcome.refused}", file=sys.stderr)
    return outcome.pid if outcome.sent else None


def iso_utc(epoch: float | None) -> str | None:
    """ISO 8601 UTC with `Z`, seconds precision; None stays None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
