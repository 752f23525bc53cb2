"""libgit2's process-wide network settings, set and read in one place.

Reads no environment variable: the caller passes every value. These settings
belong to the whole process (all threads, all repositories).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pygit2

_ca_locations: tuple[str | None, str | None] = (None, None)  # what `configure` was given


def configure(*, ca_file: str | None, ca_dir: str | None) -> None:
    """Trust the CA certificates in `ca_file` (a bundle) and/or `ca_dir` (one per file) for
    HTTPS, in addition to the system store; nothing happens when both are None or empty.

    Call once at start, before any network operation (the caller reads e.g.
    `SSL_CERT_FILE` / `SSL_CERT_DIR`). Raises `pygit2.GitError` when libgit2 refuses them.
    """
    global _ca_locations
    if ca_file:
        pygit2.settings.set_ssl_cert_locations(ca_file, ca_dir or None)
    elif ca_dir:
        pygit2.settings.set_ssl_cert_locations(None, ca_dir)
    _ca_locations = (ca_file or None, ca_dir or None)


def tls_problem(host: str, port: int, *, timeout: float = 10.0) -> str | None:
    """Why the TLS certificate `host:port` presents is not trusted, in OpenSSL's words
    ("self-signed certificate", "certificate has expired", "Hostname mismatch, certificate
    is not valid for '127.0.0.1'", ...), checked as libgit2 checks it: the default trust
    store plus the CA locations given to `configure`, and the host name. None when the
    certificate is fine or the question cannot be answered (no connection).

    Only a TLS handshake is made: nothing is sent over it, no credential either.
    """
    context = ssl.create_default_context()
    ca_file, ca_dir = _ca_locations
    try:
        if ca_file or ca_dir:
            context.load_verify_locations(cafile=ca_file, capath=ca_dir)
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return None
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message or exc.reason or exc).rstrip(".")
    except (OSError, ValueError):
        return None


@contextmanager
def network_timeouts(timeout: float) -> Iterator[float]:
    """Set libgit2's connect and read timeouts (`server_connect_timeout`, `server_timeout`,
    used by the HTTP and SSH transports alike) to `timeout` seconds (at least 1 s) for the
    duration of the block, and yield the monotonic deadline `now + timeout`.

    The previous values are restored on exit. With a libgit2 that lacks these settings,
    only the deadline is given.
    """
    ms = max(1000, int(timeout * 1000))
    settings = pygit2.settings
    previous: tuple[int, int] | None
    try:
        previous = (settings.server_connect_timeout, settings.server_timeout)
        settings.server_connect_timeout = ms
        settings.server_timeout = ms
    except (AttributeError, pygit2.GitError):  # pragma: no cover - older libgit2
        previous = None
    try:
        yield time.monotonic() + timeout
    finally:
        if previous is not None:
            settings.server_connect_timeout, settings.server_timeout = previous


def home_dir() -> Path | None:
    """The home folder libgit2 uses (HOME as it was when pygit2 was imported, unless set since)."""
    homedir = pygit2.settings.homedir
    return Path(homedir) if homedir else None


def known_hosts_file() -> Path:
    """The known_hosts file libgit2 checks SSH host keys against:
    `<pygit2.settings.homedir>/.ssh/known_hosts` (homedir is HOME as it was when pygit2
    was imported, unless set since). `~/.ssh/known_hosts`, unexpanded, when libgit2 has
    no home directory."""
    homedir = pygit2.settings.homedir
    return Path(homedir or "~") / ".ssh" / "known_hosts"


_home_lock = threading.Lock()


@contextmanager
def libgit2_home(path: Path) -> Iterator[None]:
    """Point libgit2's home directory (where its SSH transport reads `.ssh/known_hosts`) at
    `path` for the duration of the block, then put the previous value back.

    Process-wide, and it also moves `~` expansion in paths libgit2 reads meanwhile; the
    global config's search path is a separate setting and stays. Blocks of two threads
    run one after the other.
    """
    with _home_lock:
        previous = pygit2.settings.homedir
        pygit2.settings.homedir = str(path)
        try:
            yield
        finally:
            pygit2.settings.homedir = previous or ""
