"""mdbackup.actions.common: the daemon's pid from the lock, waking it, time rendering."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdbackup.actions.common import daemon_pid, iso_utc, wake_daemon
from mdbackup.backup import Backup
from mdbackup.git.layout import lock_path
from mdbackup.lock import RepositoryLock
from tests.support.backup import make_config
from tests.support.cli import PYTHONPATH

# Holds the repository's lock as a running daemon would, and says when it is woken.
HOLDER = """
import signal, sys
from pathlib import Path
from mdbackup.lock import WAKE_SIGNAL, RepositoryLock
signal.signal(WAKE_SIGNAL, lambda *_: print("woken", flush=True))
lock = RepositoryLock.acquire(Path(sys.argv[1]))
print("locked", flush=True)
sys.stdin.readline()
lock.release()
"""


@pytest.fixture
def backup(repo: Path, store: Path) -> Iterator[Backup]:
    b = Backup.open(make_config(repo))
    yield b
    b.close()


@pytest.fixture
def holder(backup: Backup) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path(backup.git_dir))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_no_daemon_no_pid_and_nobody_to_wake(backup: Backup) -> None:
    assert daemon_pid(backup) is None
    assert wake_daemon(backup) is None


def test_the_lock_holder_is_the_daemon_and_is_woken(backup: Backup, holder: subprocess.Popen[str]) -> None:
    assert daemon_pid(backup) == holder.pid
    assert wake_daemon(backup) == holder.pid
    assert holder.stdout is not None and holder.stdout.readline() == "woken\n"


def test_this_process_holding_the_lock_does_not_signal_itself(backup: Backup) -> None:
    with RepositoryLock.acquire(lock_path(backup.git_dir)):
        assert daemon_pid(backup) == os.getpid()
        assert wake_daemon(backup) is None


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (None, None),
        (0, "1970-01-01T00:00:00Z"),
        (1767323045.999, "2026-01-02T03:04:05Z"),  # seconds precision, not rounded up
    ],
)
def test_iso_utc(epoch: float | None, text: str | None) -> None:
    assert iso_utc(epoch) == text


def test_a_lock_file_naming_another_process_gets_that_process_no_signal(
    backup: Backup, holder: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The lock file is only a claim: it names an innocent process (SIGUSR1 would kill it).
    victim = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE
    )
    try:
        lock_path(backup.git_dir).write_text(f"{victim.pid}\n")
        assert wake_daemon(backup) is None
        with pytest.raises(subprocess.TimeoutExpired):
            victim.wait(timeout=0.5)
        err = capsys.readouterr().err
        assert f"not signalling pid {victim.pid}" in err and "does not hold the lock" in err
        assert "Traceback" not in err
    finally:
        assert victim.stdin is not None
        victim.stdin.close()
        victim.kill()
        victim.wait(timeout=10)
