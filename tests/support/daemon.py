"""Run the real daemon as a subprocess, with a notify socket to know when it is ready."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.git import ROOT, git, test_env

FAST = "[watch]\ndebounce = 0.2\nmax_delay = 5.0\n"  # a daemon config for quick tests


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET, read all the time
    (as systemd does) by a thread of its own, stopped by `close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[str] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"notify-{path.name}")
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._changed:
                self.messages.append(data)
                self._changed.notify_all()

    def wait_for(self, line: str, *, timeout: float = 20.0) -> str:
        """Wait for a datagram holding `line` (one of its lines); return the datagram."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for seen in self.messages:
                    if line in seen.split("\n"):
                        return seen
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {line!r} within {timeout}s; got {self.messages}")
                self._changed.wait(remaining)

    def close(self) -> None:
        self._stop.set()
        self._reader.join(timeout=5)
        self.sock.close()


class Daemon:
    """`python -m mdbackup run` on a repository, with its config file and logs."""

    def __init__(
        self, *, repo: Path, home: Path, config: str, store: str = "notes", env: dict[str, str] | None = None
    ) -> None:
        self.repo = repo
        self.home = home
        self.config_path = home / "mdbackup.toml"
        self.config_path.write_text(
            f'[store]\nrepo = "{repo}"\npath = "{store}"\n[log]\nformat = "json"\n{config}'
        )
        self.log_path = home / f"daemon-{time.monotonic_ns()}.log"
        self.notify = NotifySocket(home / f"notify-{time.monotonic_ns()}.sock")
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True) -> Daemon:
        env = test_env(
            self.home,
            {
                "MDBACKUP_CONFIG": str(self.config_path),
                "NOTIFY_SOCKET": str(self.notify.path),
                **self.extra_env,
            },
        )
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mdbackup", "run"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        try:
            self.notify.wait_for("READY=1", timeout=timeout)
        except AssertionError:
            raise AssertionError(f"daemon not ready; log:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, *, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._log.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self._log.close()
        self.notify.close()

    def head(self) -> str:
        return git(self.repo, "rev-parse", "HEAD").strip()
