"""A stand-in for systemd's NOTIFY_SOCKET, for the daemon run as a subprocess."""

from __future__ import annotations

import socket
import threading
from pathlib import Path


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET, read all the time
    (as systemd does) by a thread of its own, stopped by `close`.

    Reading all the time matters: an unread socket fills up (net.unix.max_dgram_qlen,
    10 by default) and then the daemon's blocking `sendto` of its next STATUS= would
    hang its worker.
    """

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
                data = self.sock.recv(65536).decode(errors="replace")
            except TimeoutError:
                continue
            except OSError:
                return
            with self._changed:
                self.messages.append(data)
                self._changed.notify_all()

    def seen(self, line: str) -> str | None:
        """The first datagram so far holding `line` (one of its lines), else None."""
        with self._changed:
            return next((m for m in self.messages if line in m.split("\n")), None)

    def wait_for(self, line: str, *, timeout: float = 20.0) -> str:
        """Wait for a datagram holding `line` (one of its lines); return the datagram."""
        with self._changed:
            found = self._changed.wait_for(lambda: self.seen(line), timeout)
            if not found:
                raise AssertionError(f"no {line!r} within {timeout}s; got {self.messages}")
            return found

    def close(self) -> None:
        """Stop the reader and remove the socket (again: nothing)."""
        self._stop.set()
        self._reader.join(timeout=5)
        self.sock.close()
        self.path.unlink(missing_ok=True)
