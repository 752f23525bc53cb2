"""Lock files that our own killed process left behind, and only those.

libgit2 writes the index and refs the way git does: create `NAME.lock`, write,
rename over `NAME`. A kill -9 (or power cut) in between leaves the `.lock`, and
every git command then fails with "Another git process seems to be running".

Before a write that may leave such a lock, `writing()` records which locks it may
create in a marker file beside our state; the marker is removed when the write
ends. At the next start (holding mdbackup's repository lock, so no other mdbackup
runs), `clear_left_behind()` removes a listed lock only when all of these hold:
the marker is still there (our write was interrupted), the lock was created after
the marker (by that write, not before it), and no process has the lock open (git
keeps a lock open while it holds it). Any other lock is git's and is never touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

MARKER_NAME = "writing"


@contextmanager
def writing(state_dir: Path, locks: Sequence[Path]) -> Iterator[None]:
    """Mark a write that may create `locks` for as long as it runs."""
    marker = state_dir / MARKER_NAME
    state_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("".join(f"{os.fsdecode(lock)}\n" for lock in locks))
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def clear_left_behind(state_dir: Path) -> list[Path]:
    """Remove the locks an interrupted write of ours left; returns what was removed."""
    marker = state_dir / MARKER_NAME
    try:
        started_ns = marker.stat().st_mtime_ns
        listed = marker.read_text().splitlines()
    except FileNotFoundError:
        return []
    removed = []
    for line in listed:
        lock = Path(line)
        try:
            created_ns = lock.stat().st_mtime_ns
        except FileNotFoundError:
            continue
        if created_ns >= started_ns and not _open_anywhere(lock):
            lock.unlink(missing_ok=True)
            removed.append(lock)
    marker.unlink(missing_ok=True)
    return removed


def _open_anywhere(path: Path) -> bool:
    """True when a process we can see has `path` open (or we cannot tell)."""
    target = os.fsencode(os.path.realpath(path))
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return True  # no /proc: cannot tell, so it is not ours to remove
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's process
        for fd in fds:
            try:
                if os.readlink(os.fsencode(f"/proc/{pid}/fd/{fd}")) == target:
                    return True
            except OSError:
                continue
    return False
