"""The systemd notify protocol (`sd_notify`), without a dependency.

The protocol is one datagram per message: newline-separated `KEY=VALUE`
lines sent over an `AF_UNIX`/`SOCK_DGRAM` socket to the address in
`$NOTIFY_SOCKET` (a filesystem path, or an abstract name written with a
leading `@`). That is a few lines of standard library code, so a binding
(python-systemd needs libsystemd and a compiler; sdnotify and friends are
thin wrappers of exactly this) would add a dependency and nothing else.

Sending is best effort: a missing or vanished socket never disturbs the
daemon (`send` returns False). Without `NOTIFY_SOCKET` every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    """Sends notify messages to systemd, or does nothing when not started by systemd.

    Thread-safe: every message goes through a socket of its own.
    """

    def __init__(self, address: str | bytes | None) -> None:
        """`address` as `socket.sendto` takes it (`b"\\0name"` for an abstract name), or None."""
        self.address = address

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read `NOTIFY_SOCKET` from `environ` (default `os.environ`).

        Unset, empty, or not an absolute path or `@name`: a no-op Notifier.
        """
        env = os.environ if environ is None else environ
        return cls(_parse_address(env.get("NOTIFY_SOCKET", "")))

    @property
    def enabled(self) -> bool:
        """True when there is a socket to send to."""
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send `lines` as one datagram; True when it was sent.

        False when disabled or on any socket error (never raises OSError).
        """
        if self.address is None or not lines:
            return False
        payload = "\n".join(lines).encode("utf-8", errors="replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block: a reader that stops reading (its queue holds about ten
                # datagrams) must not stall the daemon; the message is dropped instead.
                sock.sendto(payload, socket.MSG_DONTWAIT, self.address)
        except OSError:  # BlockingIOError included
            return False
        return True

    def ready(self) -> bool:
        """`READY=1`: start-up finished (also sent after a reload)."""
        return self.send("READY=1")

    def status(self, text: str) -> bool:
        """`STATUS=text`, shown by `systemctl status`; newlines become spaces."""
        return self.send("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> bool:
        """`WATCHDOG=1`: the keep-alive ping for `WatchdogSec=`."""
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        """`STOPPING=1`: shutdown has begun."""
        return self.send("STOPPING=1")

    def reloading(self) -> bool:
        """`RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC now), as `Type=notify-reload` requires.

        Send `ready()` when the reload is done.
        """
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={now_usec}")

    def __repr__(self) -> str:
        return f"Notifier({self.address!r})"


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between `WATCHDOG=1` pings: half of `WATCHDOG_USEC`, as systemd advises.

    None when `WATCHDOG_USEC` is unset, not a positive integer, or when
    `WATCHDOG_PID` is set to a pid other than ours.
    """
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID", "").strip()
    if pid and _int_or_none(pid) != os.getpid():
        return None
    usec = _int_or_none(env.get("WATCHDOG_USEC", ""))
    return usec / 2 / 1_000_000 if usec is not None and usec > 0 else None


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _parse_address(value: str) -> str | bytes | None:
    """`/run/.../notify` -> itself, `@name` -> `b"\\0name"`, anything else -> None."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None
