"""Authenticating to a remote: the `Credentials` record and the libgit2 callbacks that use it.

- The credentials callback offers every credential at most once per operation
  and then raises, so libgit2 stops instead of replaying (it replays a rejected
  SSH key indefinitely, HTTP credentials up to 15 times).
- SSH host keys: our own OpenSSH-compatible check (`known_hosts.verify`) of the key
  libgit2 hands to the callback (`hostkeys.server_key_from_callback`) decides;
  libssh2's verdict `valid` is used alone only when no key is available, and then
  never for a host with an `@revoked` entry. A refusal says what OpenSSH would say
  (unknown host, REMOTE HOST IDENTIFICATION HAS CHANGED, REVOKED HOST KEY).
- Both callbacks raise `TimedOut` once the deadline has passed.
- Credentials stay with their host: the credentials callback offers nothing for a
  URL whose scheme, host or port differs from the configured remote's (a redirect
  to another host), and a token or password is never offered over plain `http://`
  to a host that is not loopback unless `Credentials.allow_plain_http`
  (`plain_http_refusal` also vets a URL that carries a password before connecting).

Reads no config and no environment variable: the caller fills `Credentials`.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import CredentialType

from mdbackup.git import hostkeys, known_hosts, transport
from mdbackup.git.known_hosts import GLOBAL_KNOWN_HOSTS, ServerKey
from mdbackup.git.remote_errors import AuthFailed, HostKeyRefused, RemoteUrl, TimedOut, parse_url


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """What the push layer may use to authenticate; built by the caller from the config.

    SSH: tried in this order, each at most once per connection: the agent
    (`ssh_agent`; libssh2 reads SSH_AUTH_SOCK itself, so the caller sets this to
    whether SSH_AUTH_SOCK is set), `ssh_key` (with `ssh_passphrase`, using
    `<key>.pub` when it exists), then each existing `default_keys` file (with
    `ssh_passphrase` only when no `ssh_key` is given; a passphrase-protected default
    key is skipped without one). The SSH user name is the URL's, else `username`.

    HTTPS: `username` (the URL's user name wins when present) and `token`.

    SSH host keys are checked against `known_hosts` (None: `<homedir>/.ssh/known_hosts`,
    the file libgit2 reads) and then `global_known_hosts` (default
    `/etc/ssh/ssh_known_hosts`; None: no global file) with OpenSSH's rules.

    `url_secrets`: secrets found in the remote URL's user part (a token used as the user
    name, a password), scrubbed like the others. `allow_plain_http`: a token or password
    may go over plain `http://` to a host that is not loopback.
    Paths are used as given: the caller expands `~` (git/ reads no HOME).
    repr() and str() never show the token or the passphrase.
    """

    ssh_key: Path | None = None
    ssh_passphrase: str | None = field(default=None, repr=False)
    username: str = "git"
    token: str | None = field(default=None, repr=False)
    ssh_agent: bool = True
    default_keys: tuple[Path, ...] = ()
    known_hosts: Path | None = None
    global_known_hosts: Path | None = GLOBAL_KNOWN_HOSTS
    url_secrets: tuple[str, ...] = field(default=(), repr=False)
    allow_plain_http: bool = False

    def __repr__(self) -> str:
        return (
            f"Credentials(ssh_key={self.ssh_key!r}, "
            f"ssh_passphrase={'***' if self.ssh_passphrase else None}, "
            f"username={self.username!r}, token={'***' if self.token else None}, "
            f"ssh_agent={self.ssh_agent!r}, default_keys={self.default_keys!r}, "
            f"known_hosts={self.known_hosts!r}, global_known_hosts={self.global_known_hosts!r}, "
            f"url_secrets={'***' if self.url_secrets else ()}, allow_plain_http={self.allow_plain_http!r})"
        )

    __str__ = __repr__

    def secrets(self) -> tuple[str, ...]:
        """The secret values, for scrubbing messages (empty strings left out)."""
        return tuple(s for s in (self.token, self.ssh_passphrase, *self.url_secrets) if s)

    def known_hosts_file(self) -> Path:
        """`known_hosts`, else the file libgit2 reads (`transport.known_hosts_file()`)."""
        return self.known_hosts or transport.known_hosts_file()

    def known_hosts_files(self) -> tuple[Path, ...]:
        """The files the SSH host key is checked against: the user's, then the global one."""
        user = self.known_hosts_file()
        return (user, self.global_known_hosts) if self.global_known_hosts else (user,)


_DEFAULT_PORTS = {"ssh": 22, "http": 80, "https": 443, "git": 9418}


def _endpoint(url: RemoteUrl) -> tuple[str, str, int | None]:
    """(scheme, lower-case host, port with the scheme's default filled in) of `url`."""
    return url.scheme, (url.host or "").lower(), url.port or _DEFAULT_PORTS.get(url.scheme)


def same_endpoint(a: RemoteUrl, b: RemoteUrl) -> bool:
    """True when `a` and `b` name the same scheme, host and port (default ports filled in)."""
    return _endpoint(a) == _endpoint(b)


def is_loopback(host: str | None) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plain_http_message(url: RemoteUrl) -> str:
    """The refusal to send a secret to `url` over plain http."""
    return (
        f"refusing to send a token or password to {url.display} over plain http:// "
        "(anyone on the path could read it): use https://, "
        "or set auth.allow_plain_http = true to allow it"
    )


def plain_http_refusal(url: RemoteUrl, credentials: Credentials) -> str | None:
    """Before connecting: the refusal message when `url` is plain http to a host that is not
    loopback and carries a secret in its user part (libgit2 would send it unasked), unless
    `credentials.allow_plain_http`; else None."""
    if url.scheme != "http" or credentials.allow_plain_http or is_loopback(url.host):
        return None
    return plain_http_message(url) if credentials.url_secrets else None


def tls_refusal(url: RemoteUrl, host: bytes | str | None = None) -> str:
    """The message for a TLS certificate of `url` that is not trusted, naming the problem
    (`transport.tls_problem`: self-signed, expired, wrong host, unknown CA...)."""
    name = host.decode(errors="replace") if isinstance(host, bytes) else (host or url.host or "?")
    port = url.port or _DEFAULT_PORTS.get(url.scheme, 443)
    problem = transport.tls_problem(url.host or name, port) if url.host else None
    what = problem or "not trusted (self-signed, expired, or for another host)"
    return (
        f"TLS certificate of {name}:{port} refused: {what}; nothing was sent. "
        "Trust its CA through SSL_CERT_FILE / SSL_CERT_DIR or the system trust store"
    )


def _key_is_encrypted(path: Path) -> bool | None:
    """True/False for a readable private key file; None when it cannot be read or parsed."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    if "BEGIN OPENSSH PRIVATE KEY" in text:
        body = "".join(line.strip() for line in text.splitlines() if line and not line.startswith("-----"))
        try:
            raw = base64.b64decode(body)
        except ValueError:  # binascii.Error included
            return None
        magic = b"openssh-key-v1\x00"
        if not raw.startswith(magic) or len(raw) < len(magic) + 4:
            return None
        n = int.from_bytes(raw[len(magic) : len(magic) + 4], "big")
        cipher = raw[len(magic) + 4 : len(magic) + 4 + n]
        return cipher != b"none"
    if "BEGIN ENCRYPTED PRIVATE KEY" in text or "Proc-Type: 4,ENCRYPTED" in text:
        return True
    if "PRIVATE KEY-----" in text:
        return False
    return None


@dataclass(frozen=True, kw_only=True)
class _KeyCandidate:
    label: str
    private: Path | None  # None: the agent
    passphrase: str | None = field(default=None, repr=False)


class AuthCallbacks(pygit2.RemoteCallbacks):
    """libgit2 callbacks for one network operation on `url`: capped credentials, strict
    host keys, and the deadline (a monotonic time) for connecting and authenticating.

    After the operation, `tried` lists the credentials offered and `skipped` the keys
    left out, and why. `progress()` is called at each of libgit2's progress reports (pack
    sent or received, a server message): set it to learn that a long transfer moves.
    """

    def __init__(self, *, credentials: Credentials, url: RemoteUrl, deadline: float) -> None:
        super().__init__()
        self.progress: Callable[[], object] = lambda: None
        self._creds = credentials
        self._url = url
        self._deadline = deadline
        self._ssh_candidates: Iterator[_KeyCandidate] | None = None
        self._username_given = False
        self._passphrase_tried = False
        self._userpass_given = False
        self.tried: list[str] = []
        self.skipped: list[str] = []
        self.host_key_warnings: list[str] = []
        self._known_hosts_files = credentials.known_hosts_files()  # before any home swap

    def check_deadline(self) -> None:
        """Raise `TimedOut` when the deadline has passed."""
        if time.monotonic() > self._deadline:
            raise TimedOut("timed out")

    def sideband_progress(self, string: str) -> None:
        """A server message (e.g. a hook's output): the operation is alive."""
        self.progress()

    def transfer_progress(self, stats: pygit2.remotes.TransferProgress) -> None:
        """More of a fetched pack arrived: the operation is alive."""
        self.progress()

    def push_transfer_progress(self, objects_pushed: int, total_objects: int, bytes_pushed: int) -> None:
        """libgit2 sent more of the pack (reported at most every 0.5 s): the operation is alive."""
        self.progress()

    def _ssh_candidate_iter(self) -> Iterator[_KeyCandidate]:
        """The SSH credentials to offer, in `Credentials` order; a key that cannot be used
        (missing, unreadable, passphrase-protected without a passphrase) is not offered
        but noted in `skipped`."""
        creds = self._creds
        if creds.ssh_agent:
            yield _KeyCandidate(label="ssh-agent", private=None)
        seen: set[Path] = set()
        no_passphrase = "is passphrase-protected and no passphrase was given"
        if creds.ssh_key is not None:
            key = creds.ssh_key
            seen.add(key)
            encrypted = _key_is_encrypted(key)
            if not key.exists():
                self.skipped.append(f"key {key} does not exist")
            elif encrypted is None and not os.access(key, os.R_OK):
                self.skipped.append(f"key {key} is not readable")
            elif encrypted and not creds.ssh_passphrase:
                self.skipped.append(f"key {key} {no_passphrase}")
            else:
                yield _KeyCandidate(label=f"key {key}", private=key, passphrase=creds.ssh_passphrase)
        for key in creds.default_keys:
            if key in seen or not key.exists():
                continue
            seen.add(key)
            passphrase = creds.ssh_passphrase if creds.ssh_key is None else None
            encrypted = _key_is_encrypted(key)
            if encrypted is None and not os.access(key, os.R_OK):
                self.skipped.append(f"key {key} is not readable")
                continue
            if encrypted and not passphrase:
                self.skipped.append(f"key {key} {no_passphrase}")
                continue
            yield _KeyCandidate(label=f"key {key}", private=key, passphrase=passphrase)

    def _auth_failure(self, detail: str) -> AuthFailed:
        """The error to raise: `detail`, plus what was tried and what was skipped."""
        parts = [f"authentication failed for {self._url.display}: {detail}"]
        if self.tried:
            parts.append("tried " + ", ".join(self.tried))
        if self.skipped:
            parts.append("; ".join(self.skipped))
        return AuthFailed("; ".join(parts))

    def _ssh_key(self, user: str) -> pygit2.Keypair:
        """The next SSH key (agent or file) for `user`; raises `AuthFailed` when none is left."""
        if self._ssh_candidates is None:
            self._ssh_candidates = self._ssh_candidate_iter()
        candidate = next(self._ssh_candidates, None)
        if candidate is None:
            if not self.tried:
                detail = "no SSH key to offer"
            elif self._passphrase_tried:
                detail = "no key was accepted (rejected by the server, or a wrong passphrase)"
            else:
                detail = "the server accepted none of the keys"
            raise self._auth_failure(detail)
        self.tried.append(candidate.label)
        self._passphrase_tried |= bool(candidate.passphrase)
        if candidate.private is None:
            return pygit2.KeypairFromAgent(user)
        pub = Path(f"{candidate.private}.pub")
        return pygit2.Keypair(
            user, str(pub) if pub.exists() else None, str(candidate.private), candidate.passphrase or ""
        )

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        """The next credential to offer for a method the server allows: SSH keys in order,
        user name and token (once), or the user name alone (once). Raises `AuthFailed`
        when there is nothing (left) to offer, when `url` is not the configured remote's
        scheme, host and port (a redirect: nothing is offered there), or when a token would
        go over plain http to a host that is not loopback; `TimedOut` past the deadline."""
        self.check_deadline()
        asked = parse_url(url) if url else self._url
        if not same_endpoint(asked, self._url):
            raise AuthFailed(
                f"authentication failed for {self._url.display}: it redirected to another host "
                f"({asked.display}); credentials are only sent to the configured remote's "
                "scheme, host and port, so none were sent"
            )
        allowed = CredentialType(allowed_types)
        user = username_from_url or self._creds.username or "git"
        if allowed & CredentialType.SSH_KEY:
            return self._ssh_key(user)
        if allowed & CredentialType.USERPASS_PLAINTEXT:
            if self._userpass_given:
                raise self._auth_failure("the server rejected the user name and token")
            user_is_token = user in self._creds.url_secrets
            if not self._creds.token and not user_is_token:
                raise self._auth_failure("the server requires a token and none is configured")
            if (
                self._url.scheme == "http"
                and not self._creds.allow_plain_http
                and not is_loopback(self._url.host)
            ):
                raise AuthFailed(plain_http_message(self._url))
            self._userpass_given = True
            shown = "the URL's user name (a token)" if user_is_token else f"user {user!r}"
            self.tried.append(f"{shown} with a token" if self._creds.token else shown)
            return pygit2.UserPass(user, self._creds.token or "")
        if allowed & CredentialType.USERNAME:
            if self._username_given:
                raise self._auth_failure("the server did not accept the user name")
            self._username_given = True
            return pygit2.Username(user)
        raise self._auth_failure(f"the server offers no supported method ({allowed!r})")

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        """SSH: our own known_hosts check decides (`known_hosts.verify` over the user's and
        the global file, OpenSSH's rules); libssh2's `valid` is only an input (used alone
        only when libgit2 gave no host key). Raises `HostKeyRefused` with OpenSSH's wording
        and the fix. Warnings about malformed known_hosts lines land in `host_key_warnings`.
        TLS: True when libgit2 found the certificate valid, else `HostKeyRefused`."""
        self.check_deadline()
        if self._url.scheme == "ssh":
            return self._check_ssh_host_key(valid, server_key=hostkeys.server_key_from_callback())
        if valid:
            return True
        raise HostKeyRefused(tls_refusal(self._url, host))

    @contextmanager
    def libssh2_known_hosts(self) -> Iterator[None]:
        """Wrap each connection: for an SSH URL, libgit2 reads a known_hosts file written
        from ours (`known_hosts.libssh2_text`: only this host's plain keys, nothing libssh2
        could fail to parse) instead of `~/.ssh/known_hosts`, so one line libssh2 cannot
        read (a bare host name, a line over 4 KiB) never breaks a push, and libssh2 still
        asks for the host key type known_hosts lists. Other schemes: nothing changes."""
        if self._url.scheme != "ssh":
            yield
            return
        text = known_hosts.libssh2_text(
            host=self._url.host or "", port=self._url.port, files=self._known_hosts_files
        )
        with tempfile.TemporaryDirectory(prefix="mdbackup-ssh-") as home:
            ssh_dir = Path(home) / ".ssh"
            ssh_dir.mkdir(mode=0o700)
            (ssh_dir / "known_hosts").write_text(text)
            with transport.libgit2_home(Path(home)):
                yield

    def _check_ssh_host_key(self, valid: bool, *, server_key: ServerKey | None) -> bool:
        files = self._known_hosts_files
        host, port = self._url.host or "?", self._url.port
        if server_key is None:
            # No key from libgit2: libssh2's verdict, and never a host with a revoked entry.
            if valid and not known_hosts.any_revoked(host=host, port=port, files=files):
                return True
            raise HostKeyRefused(known_hosts.host_key_message(files[0], host=host, port=port))
        verdict = known_hosts.verify(host=host, port=port, key=server_key, files=files)
        self.host_key_warnings = list(verdict.warnings)
        if verdict.ok:
            return True
        raise HostKeyRefused(verdict.message)
