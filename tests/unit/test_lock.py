"""One process per repository: `mdbackup.lock` with real processes."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mdbackup.lock as lock_module
from mdbackup.lock import LockBusy, RepositoryLock, holder_pid
from tests.support.cli import PYTHONPATH

HOLDER = """
import sys
import tempfile
from pathlib import Path
from mdbackup.lock import RepositoryLock
lock = RepositoryLock.acquire(Path(sys.argv[1]))
print("locked", flush=True)
sys.stdin.readline()
lock.release()
"""

TRY_ACQUIRE = """
import sys
import tempfile
from pathlib import Path
from mdbackup.lock import LockBusy, RepositoryLock
try:
    RepositoryLock.acquire(Path(sys.argv[1]))
except LockBusy as exc:
    print(f"busy {exc.pid}: {exc}")
    sys.exit(75)
print("acquired")
"""


def _python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-c", code, *args], env=env, text=True, **kwargs
    )


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "git" / "mdbackup" / "lock"


@pytest.fixture
def holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process holding the lock (it has printed "locked"); reaped at the end."""
    proc = _python(HOLDER, str(lock_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_acquire_creates_folders_and_writes_our_pid(lock_path: Path) -> None:
    with RepositoryLock.acquire(lock_path) as lock:
        assert lock.held
        assert lock_path.read_text() == f"{os.getpid()}\n"
        assert holder_pid(lock_path) == os.getpid()
    assert not lock.held
    assert lock_path.exists()  # never deleted
    assert holder_pid(lock_path) is None


def test_release_is_idempotent_and_allows_a_new_acquire(lock_path: Path) -> None:
    lock = RepositoryLock.acquire(lock_path)
    lock.release()
    lock.release()
    RepositoryLock.acquire(lock_path).release()


def test_holder_pid_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert holder_pid(tmp_path / "nope") is None
    assert not (tmp_path / "nope").exists()


def test_a_stale_pid_without_a_holder_does_not_block(lock_path: Path) -> None:
    lock_path.parent.mkdir(parents=True)
    lock_path.write_text("1234567890 and some old junk\nmore\n")
    assert holder_pid(lock_path) is None
    with RepositoryLock.acquire(lock_path):
        assert lock_path.read_text() == f"{os.getpid()}\n"


def test_second_acquire_in_the_same_process_is_busy(lock_path: Path) -> None:
    with RepositoryLock.acquire(lock_path), pytest.raises(LockBusy) as info:
        RepositoryLock.acquire(lock_path)
    assert info.value.pid == os.getpid()
    assert str(os.getpid()) in str(info.value)


def test_another_process_cannot_acquire_and_names_our_pid(lock_path: Path) -> None:
    with RepositoryLock.acquire(lock_path):
        proc = _python(TRY_ACQUIRE, str(lock_path), stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 75
    assert out.startswith(f"busy {os.getpid()}: ")
    assert f"pid {os.getpid()}" in out


def test_busy_names_the_holding_process_without_waiting(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    start = time.monotonic()
    with pytest.raises(LockBusy) as info:
        RepositoryLock.acquire(lock_path, grace=30)
    # A live holder is reported at once, not after the (here very long) grace.
    assert time.monotonic() - start < 15
    assert info.value.pid == holder.pid
    assert f"pid {holder.pid}" in str(info.value)
    assert str(lock_path) in str(info.value)
    assert holder_pid(lock_path) == holder.pid


def test_lock_dies_with_a_killed_process(lock_path: Path, holder: subprocess.Popen[str]) -> None:
    assert holder_pid(lock_path) == holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert holder_pid(lock_path) is None  # the file still names it, but nobody holds the lock
    with RepositoryLock.acquire(lock_path):
        assert holder_pid(lock_path) == os.getpid()


def test_a_released_lock_can_be_taken_by_the_next_process(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.wait(timeout=10) == 0
    assert holder_pid(lock_path) is None
    proc = _python(TRY_ACQUIRE, str(lock_path), stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode, out.strip()) == (0, "acquired")


@pytest.fixture
def probe_lock(lock_path: Path) -> Iterator[int]:
    """A descriptor holding a shared lock, as `holder_pid`'s probe does for a moment."""
    lock_path.parent.mkdir(parents=True)
    fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        yield fd
    finally:
        os.close(fd)


def test_acquire_rides_over_a_status_probe(
    lock_path: Path, probe_lock: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probe holding the lock for a moment must not make a starting daemon exit busy."""
    refused = threading.Event()
    real_try_flock = lock_module._try_flock

    def try_flock(fd: int, operation: int) -> bool:
        taken = real_try_flock(fd, operation)
        if not taken:
            refused.set()
        return taken

    monkeypatch.setattr(lock_module, "_try_flock", try_flock)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(_acquire_or_error(lock_path, grace=30.0)))
    thread.start()
    try:
        assert refused.wait(timeout=10)  # acquire met the probe and is retrying
    finally:
        fcntl.flock(probe_lock, fcntl.LOCK_UN)  # the probe ends
        thread.join(timeout=10)
    assert not thread.is_alive()
    [lock] = result
    assert isinstance(lock, RepositoryLock)
    lock.release()


def test_a_holder_that_names_no_live_pid_is_busy_after_the_grace(lock_path: Path, probe_lock: int) -> None:
    with pytest.raises(LockBusy) as info:
        RepositoryLock.acquire(lock_path, grace=0.05)
    assert info.value.pid is None
    assert "pid is unknown" in str(info.value)


def _acquire_or_error(path: Path, *, grace: float) -> RepositoryLock | BaseException:
    try:
        return RepositoryLock.acquire(path, grace=grace)
    except BaseException as exc:  # handed back to the test thread, which asserts on it
        return exc


def test_kernel_holders_names_the_process_holding_the_flock(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    assert lock_module.kernel_holders(lock_path) == frozenset({holder.pid})


def test_kernel_holders_of_a_free_or_missing_lock_is_empty(lock_path: Path, tmp_path: Path) -> None:
    assert lock_module.kernel_holders(tmp_path / "missing") == frozenset()
    with RepositoryLock.acquire(lock_path):
        pass
    assert lock_module.kernel_holders(lock_path) == frozenset()


def test_without_a_lock_table_nothing_is_signalled(
    lock_path: Path, holder: subprocess.Popen[str], tmp_path: Path
) -> None:
    outcome = lock_module.signal_holder(lock_path, signal.SIGUSR1, proc_locks=tmp_path / "no-such-table")
    assert not outcome.sent and outcome.pid == holder.pid
    assert outcome.refused is not None and "cannot read" in outcome.refused
    assert holder.poll() is None


SIGNAL_AS_OTHER_USER = """
import signal, sys
from pathlib import Path
from mdbackup.lock import signal_holder
print(signal_holder(Path(sys.argv[1]), signal.SIGUSR1).refused)
"""


def test_a_holder_we_may_not_signal_is_refused_in_one_line(holder_other_user: tuple[Path, int]) -> None:
    path, pid = holder_other_user
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            sys.executable,
            "-c",
            SIGNAL_AS_OTHER_USER,
            str(path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.strip() == f"cannot signal the mdbackup holding the lock (pid {pid}): permission denied"
    )
    assert proc.stderr == ""


@pytest.fixture
def holder_other_user() -> Iterator[tuple[Path, int]]:
    """A lock held by root in a folder `nobody` can read; skipped unless we are root with setpriv."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to hold a lock as a user `nobody` may not signal")
    base = Path(tempfile.mkdtemp(prefix="mdbackup-lock-", dir="/tmp"))
    base.chmod(0o755)
    path = base / "lock"
    proc = _python(HOLDER, str(path), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield path, proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        shutil.rmtree(base)
