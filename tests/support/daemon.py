"""The real daemon (`python -m mdbackup run`) as a subprocess, with a notify socket to know
when it is ready: the one harness of the tests and the benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from tests.support import secrets
from tests.support.cli import ROOT, isolated_env
from tests.support.git import git
from tests.support.notify import NotifySocket
from tests.support.wait import wait_until


def watch_config(*, debounce: float, max_delay: float) -> str:
    """The `[watch]` table of a daemon config."""
    return f"[watch]\ndebounce = {debounce}\nmax_delay = {max_delay}\n"


FAST = watch_config(debounce=0.2, max_delay=5.0)  # a daemon config for quick tests

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Daemon:
    """`python -m mdbackup run` on a repository, with its config file and logs.

    `config`: the config body after `[store]` and `[log]` (e.g. `FAST`); `env`: extra
    environment (e.g. MDBACKUP_CRASH_AT); `prefix`: a command to run it through (e.g.
    setpriv, as another user: the notify socket is then opened to everyone).
    Always `close()` it (a fixture or a `finally`): nothing is left running or open.
    """

    def __init__(
        self,
        *,
        repo: Path,
        home: Path,
        config: str,
        store: str = "notes",
        env: Mapping[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        self.repo = repo
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.config_path = home / "mdbackup.toml"
        self.config_path.write_text(
            f'[store]\nrepo = "{repo}"\npath = "{store}"\n[log]\nformat = "json"\n{config}'
        )
        self.log_path = home / f"daemon-{time.monotonic_ns()}.log"
        self.notify = NotifySocket(home / f"notify-{time.monotonic_ns()}.sock")
        self.extra_env = dict(env or {})
        self.prefix = list(prefix)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self._log: IO[bytes] | None = None

    # -- the process ---------------------------------------------------------------------------

    def start(self, *, wait_ready: bool = True) -> Daemon:
        env = isolated_env(
            self.home,
            {
                "MDBACKUP_CONFIG": str(self.config_path),
                "NOTIFY_SOCKET": str(self.notify.path),
                **self.extra_env,
            },
        )
        if self.prefix:
            self.notify.path.chmod(0o666)  # the daemon, as another user, must reach our socket
        self._log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "mdbackup", "run"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready:
            self.wait_ready()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def ready_or_exited(self, timeout: float = 30.0) -> bool:
        """Wait (bounded) for READY=1 or the process's end: True when ready, False when it
        exited first; neither within `timeout` fails."""
        assert self.proc is not None
        proc = self.proc
        wait_until(
            lambda: self.notify.seen("READY=1") or proc.poll() is not None,
            timeout=timeout,
            interval=0.01,
            message=lambda: f"the daemon to be ready or exit; log:\n{self.log()}",
        )
        return self.notify.seen("READY=1") is not None

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Wait for READY=1; returns the seconds since `start`. Fails (with the log) when the
        daemon exits first or is not ready within `timeout`."""
        if not self.ready_or_exited(timeout):
            assert self.proc is not None
            raise AssertionError(
                f"daemon exited with {self.proc.returncode} before it was ready; log:\n{self.log()}"
            )
        return time.monotonic() - self.started_at

    def wait_exit(self, *, timeout: float) -> int | None:
        """The exit code once the process ended within `timeout` seconds, else None."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, *, timeout: float = 30.0, kill_after: bool = False) -> int:
        """SIGTERM and wait; returns the exit code. Not gone within `timeout`: raises
        TimeoutExpired, or with `kill_after` SIGKILLs it and returns that code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if not kill_after:
                raise
            self.proc.kill()
            code = self.proc.wait(timeout=10)
        self._close_log()
        return code

    def kill(self) -> None:
        """SIGKILL (if it still runs) and reap."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._close_log()

    def close(self) -> None:
        """Never leak a process or a descriptor: kill if alive, close the log and the socket.
        Then check that no registered secret appears anywhere in the daemon's log."""
        if self.proc is not None:
            self.kill()
        self._close_log()
        self.notify.close()
        secrets.assert_clean(self.log(), where=f"the daemon log {self.log_path}")

    def _close_log(self) -> None:
        if self._log is not None and not self._log.closed:
            self._log.close()

    # -- what it did ---------------------------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str | None = None) -> list[dict]:
        """The JSON log's events (only those called `name`, when given)."""
        found = []
        for line in self.log().splitlines():
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if name is None or event.get("event") == name:
                found.append(event)
        return found

    def cpu_seconds(self) -> float:
        """CPU time the daemon has used so far (user + system, all threads)."""
        return cpu_seconds(self.pid)

    def head(self) -> str:
        return git(self.repo, "rev-parse", "HEAD").strip()
