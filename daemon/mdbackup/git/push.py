"""Fast-forward-only push, credentials, host key checks, ahead/diverged counts (libgit2).

Reads no config and no environment variables: everything comes in as arguments
(`Credentials`), and results are frozen records (`PushResult`, `RemoteState`).

Safety rules (see docs/ARCHITECTURE.md and the library notes):

- `repo.remotes[name]` is looked up FRESH for every network operation: a
  `Remote` reused after `list_heads()` stays connected and a later push on it
  can overwrite a commit another clone pushed meanwhile.
- Before pushing, the remote's heads are listed (on a fresh Remote); when the
  remote branch's commit is not known locally or is not an ancestor of the
  local head, nothing is pushed (kind "diverged"). The `push_negotiation`
  callback refuses any non-fast-forward update as a second line of defense.
  Never forces, never fetches.
- A server-side rejection (hook, protected branch) only arrives through
  `push_update_reference(refname, message)`: a message means "rejected".
- SSH host keys: libgit2 checks `$HOME/.ssh/known_hosts` (HOME as libgit2 saw it
  when pygit2 was imported, or `pygit2.settings.homedir`) and hands the verdict
  to `certificate_check` as `valid`; pygit2's default would accept ANY key, so
  `valid` is returned as is. To say whether the host is unknown or its key
  changed, known_hosts is parsed here (plain, `[host]:port`, hashed `|1|`).
- The credentials callback offers every credential at most once per operation
  and then raises, so libgit2 stops instead of replaying (it replays a rejected
  SSH key indefinitely, HTTP credentials up to 15 times).
- Error strings are one line, name the URL without its credentials, and are
  scrubbed of the token and passphrase values as a last line of defense.
- Time: libgit2's process-wide connect and read timeouts
  (`pygit2.settings.server_connect_timeout` / `server_timeout`, used by the
  HTTP and SSH transports alike) are set from `timeout` on every call, and the
  credentials and host-key callbacks abort once the deadline has passed; the
  previous timeout values are restored after each call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pygit2
from pygit2.enums import CredentialType

try:  # the constant lives in the cffi module; 1 in every libgit2 release
    from pygit2.ffi import C as _C

    _DIRECTION_PUSH = int(_C.GIT_DIRECTION_PUSH)
except (ImportError, AttributeError):  # pragma: no cover
    _DIRECTION_PUSH = 1

KIND_DIVERGED = "diverged"
KIND_UNREACHABLE = "unreachable"
KIND_AUTH = "auth"
KIND_HOST_KEY = "host-key"
KIND_REJECTED = "rejected"
KIND_NO_REMOTE = "no-remote"
KIND_NO_BRANCH = "no-branch"
KIND_ERROR = "error"

DEFAULT_TIMEOUT = 60.0
_MAX_ERROR_LEN = 1000


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Credentials:
    """What the push layer may use to authenticate; built by the caller from the config.

    SSH: tried in this order, each at most once per connection: the agent
    (`ssh_agent`; libssh2 reads SSH_AUTH_SOCK itself, so the caller should set
    this to `"SSH_AUTH_SOCK" in os.environ`), `ssh_key` (with `ssh_passphrase`,
    using `<key>.pub` when it exists), then each existing `default_keys` file
    (with `ssh_passphrase` only when no `ssh_key` is given; a passphrase-protected
    default key is skipped without one). The SSH user name is the URL's, else
    `username`.

    HTTPS: `username` (the URL's user name wins when present) and `token`.

    `known_hosts` only serves to explain a refused host key ("unknown" vs
    "changed"); libgit2 itself reads `<homedir>/.ssh/known_hosts`. When None,
    `<pygit2.settings.homedir>/.ssh/known_hosts` is read.
    """

    ssh_key: Path | None = None
    ssh_passphrase: str | None = field(default=None, repr=False)
    username: str = "git"
    token: str | None = field(default=None, repr=False)
    ssh_agent: bool = True
    default_keys: tuple[Path, ...] = ()
    known_hosts: Path | None = None

    def __repr__(self) -> str:
        return (
            f"Credentials(ssh_key={self.ssh_key!r}, "
            f"ssh_passphrase={'***' if self.ssh_passphrase else None}, "
            f"username={self.username!r}, token={'***' if self.token else None}, "
            f"ssh_agent={self.ssh_agent!r}, default_keys={self.default_keys!r}, "
            f"known_hosts={self.known_hosts!r})"
        )

    __str__ = __repr__

    def secrets(self) -> tuple[str, ...]:
        """The secret values, for scrubbing messages (empty strings left out)."""
        return tuple(s for s in (self.token, self.ssh_passphrase) if s)


@dataclass(frozen=True)
class RemoteState:
    """Where the remote branch is relative to the local branch.

    `remote_oid` is None when the branch does not exist on the remote.
    `ahead`: local commits the remote lacks. `behind`: remote commits the local
    branch lacks (> 0 means diverged); -1 when the remote's commit is not in the
    local object database (diverged, count unknown; `ahead` then counts the
    local commits not reachable from any advertised remote commit known locally).
    """

    remote_oid: str | None
    ahead: int
    behind: int
    local_oid: str | None = None

    @property
    def diverged(self) -> bool:
        return self.behind != 0

    @property
    def up_to_date(self) -> bool:
        return self.ahead == 0 and self.behind == 0


@dataclass(frozen=True)
class PushResult:
    """The outcome of a push (or of a check).

    `ok` with `commits == 0` means the remote already had the local head.
    `kind` is None on success, else one of "diverged", "unreachable", "auth",
    "host-key", "rejected", "no-remote", "no-branch", "error".
    `error` is one line and never contains a secret. For "diverged", `behind`
    is the number of remote commits missing locally (-1: unknown).
    """

    ok: bool
    pushed_oid: str | None
    remote_before: str | None
    error: str | None
    kind: str | None
    commits: int = 0
    behind: int = 0
    warning: str | None = None  # the push succeeded, but something beside it did not


# ----------------------------------------------------------------------------- internal errors


class _Abort(Exception):
    """Raised inside a callback to stop libgit2; carries the result kind and message."""

    kind = KIND_ERROR

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _AuthFailed(_Abort):
    kind = KIND_AUTH


class _HostKeyRefused(_Abort):
    kind = KIND_HOST_KEY


class _Diverged(_Abort):
    kind = KIND_DIVERGED

    def __init__(self, message: str, behind: int = -1):
        super().__init__(message)
        self.behind = behind


class _TimedOut(_Abort):
    kind = KIND_UNREACHABLE


# ----------------------------------------------------------------------------- URLs


@dataclass(frozen=True)
class _Url:
    scheme: str  # "ssh", "http", "https", "file", "local", or another transport name
    host: str | None
    port: int | None
    user: str | None
    path: str | None
    display: str  # the URL without its password (and without any user info for http/https)


_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/]+):(?P<path>(?!//).*)$")


def _parse_url(url: str) -> _Url:
    if "://" in url:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in ("ssh+git", "git+ssh"):
            scheme = "ssh"
        try:
            port = parts.port
        except ValueError:
            port = None
        host = parts.hostname
        if scheme in ("http", "https"):
            netloc = host or ""
        else:
            netloc = (f"{parts.username}@" if parts.username else "") + (host or "")
        if host and ":" in host:
            netloc = netloc.replace(host, f"[{host}]")
        if port is not None:
            netloc += f":{port}"
        display = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        path = unquote(parts.path) if scheme == "file" else parts.path
        return _Url(scheme, host, port, parts.username, path, display)
    match = _SCP_LIKE.match(url)
    if match and not os.path.isabs(url) and "/" not in match.group("host"):
        host = match.group("host").strip("[]")
        return _Url("ssh", host, None, match.group("user"), match.group("path"), url)
    return _Url("local", None, None, None, url, url)


def _local_path(url: _Url) -> str | None:
    return url.path if url.scheme in ("local", "file") else None


# ----------------------------------------------------------------------------- known_hosts


def _host_patterns(host: str, port: int | None) -> tuple[str, ...]:
    """The names known_hosts uses for host:port (`host` for 22, `[host]:port` otherwise)."""
    if port in (None, 22):
        return (host,)
    return (f"[{host}]:{port}",)


def _hashed_match(entry: str, name: str) -> bool:
    try:
        _, magic, salt_b64, hash_b64 = entry.split("|", 3)
        if magic != "1":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(hash_b64)
    except (ValueError, TypeError):
        return False
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(digest, expected)


def _glob_match(name: str, pattern: str) -> bool:
    """ssh's host patterns: `*` and `?` are wildcards, everything else (`[`, `]`) is literal."""
    if "*" not in pattern and "?" not in pattern:
        return name.lower() == pattern.lower()
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None


def _pattern_list_matches(field_: str, name: str) -> bool:
    if field_.startswith("|"):
        return _hashed_match(field_, name)
    matched = False
    for pattern in field_.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if _glob_match(name, pattern):
            if negated:
                return False
            matched = True
    return matched


def known_host_entries(known_hosts: Path, host: str, port: int | None) -> list[str]:
    """The key types listed for `host`:`port` in a known_hosts file (plain or hashed names).

    Returns e.g. `["ssh-ed25519"]`; empty when the host is not listed or the file is missing.
    """
    try:
        text = known_hosts.read_text(errors="replace")
    except OSError:
        return []
    names = _host_patterns(host, port)
    found: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if fields[0].startswith("@"):
            if fields[0] == "@cert-authority" or len(fields) < 3:
                continue
            fields = fields[1:]
        if len(fields) < 2:
            continue
        if any(_pattern_list_matches(fields[0], name) for name in names):
            found.append(fields[1])
    return found


def _host_key_message(url: _Url, known_hosts: Path) -> str:
    host = url.host or "?"
    port = url.port or 22
    name = _host_patterns(host, port)[0]
    keyscan = f"ssh-keyscan -p {port} {host}" if port != 22 else f"ssh-keyscan {host}"
    if known_host_entries(known_hosts, host, port):
        return (
            f"host key for {name} has CHANGED: it does not match the entry in {known_hosts} "
            f"(possible man-in-the-middle attack); only if the change is expected, remove the old "
            f"entry with `ssh-keygen -R '{name}' -f {known_hosts}` and add the new key after "
            f"verifying its fingerprint: `{keyscan} >> {known_hosts}`"
        )
    return (
        f"host key for {name} is unknown: {name} is not in {known_hosts}; add it after "
        f"verifying its fingerprint: `{keyscan} >> {known_hosts}`"
    )


# ----------------------------------------------------------------------------- SSH keys


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
        except ValueError:
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


@dataclass(frozen=True)
class _KeyCandidate:
    label: str
    private: Path | None  # None: the agent
    passphrase: str | None = field(default=None, repr=False)


# ----------------------------------------------------------------------------- callbacks


class _Callbacks(pygit2.RemoteCallbacks):
    """Capped credentials, strict host keys, fast-forward-only negotiation, rejections."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        url: _Url,
        deadline: float,
        repo: pygit2.Repository | None = None,
    ):
        super().__init__()
        self._creds = credentials
        self._url = url
        self._deadline = deadline
        self._repo = repo
        self._ssh_candidates: Iterator[_KeyCandidate] | None = None
        self.tried: list[str] = []
        self.skipped: list[str] = []
        self._username_given = False
        self._passphrase_tried = False
        self._userpass_given = False
        self.rejections: dict[str, str] = {}
        self.accepted: set[str] = set()
        self.sideband: list[str] = []

    # -- time --

    def _check_deadline(self) -> None:
        if time.monotonic() > self._deadline:
            raise _TimedOut("timed out")

    # -- credentials --

    def _ssh_candidate_iter(self) -> Iterator[_KeyCandidate]:
        creds = self._creds
        if creds.ssh_agent:
            yield _KeyCandidate("ssh-agent", None)
        seen: set[Path] = set()
        if creds.ssh_key is not None:
            key = Path(creds.ssh_key).expanduser()
            seen.add(key)
            encrypted = _key_is_encrypted(key)
            if not key.exists():
                self.skipped.append(f"key {key} does not exist")
            elif encrypted is None and not os.access(key, os.R_OK):
                self.skipped.append(f"key {key} is not readable")
            elif encrypted and not creds.ssh_passphrase:
                self.skipped.append(f"key {key} is passphrase-protected and no passphrase was given")
            else:
                yield _KeyCandidate(f"key {key}", key, creds.ssh_passphrase)
        for key in creds.default_keys:
            key = Path(key).expanduser()
            if key in seen or not key.exists():
                continue
            seen.add(key)
            passphrase = creds.ssh_passphrase if creds.ssh_key is None else None
            encrypted = _key_is_encrypted(key)
            if encrypted is None and not os.access(key, os.R_OK):
                self.skipped.append(f"key {key} is not readable")
                continue
            if encrypted and not passphrase:
                self.skipped.append(f"key {key} is passphrase-protected and no passphrase was given")
                continue
            yield _KeyCandidate(f"key {key}", key, passphrase)

    def _auth_failure(self, detail: str) -> _AuthFailed:
        parts = [f"authentication failed for {self._url.display}: {detail}"]
        if self.tried:
            parts.append("tried " + ", ".join(self.tried))
        if self.skipped:
            parts.append("; ".join(self.skipped))
        return _AuthFailed("; ".join(parts))

    def credentials(self, url, username_from_url, allowed_types):
        self._check_deadline()
        allowed = CredentialType(allowed_types)
        user = username_from_url or self._creds.username or "git"
        if allowed & CredentialType.SSH_KEY:
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
                user,
                str(pub) if pub.exists() else None,
                str(candidate.private),
                candidate.passphrase or "",
            )
        if allowed & CredentialType.USERPASS_PLAINTEXT:
            if self._userpass_given:
                raise self._auth_failure("the server rejected the user name and token")
            if not self._creds.token:
                raise self._auth_failure("the server requires a token and none is configured")
            self._userpass_given = True
            self.tried.append(f"user {user!r} with a token")
            return pygit2.UserPass(user, self._creds.token)
        if allowed & CredentialType.USERNAME:
            if self._username_given:
                raise self._auth_failure("the server did not accept the user name")
            self._username_given = True
            return pygit2.Username(user)
        raise self._auth_failure(f"the server offers no supported method ({allowed!r})")

    # -- host keys / certificates --

    def certificate_check(self, certificate, valid, host):
        self._check_deadline()
        if valid:
            return True
        if self._url.scheme == "ssh":
            known_hosts = self._creds.known_hosts or Path(pygit2.settings.homedir) / ".ssh" / "known_hosts"
            raise _HostKeyRefused(_host_key_message(self._url, known_hosts))
        name = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
        raise _HostKeyRefused(
            f"TLS certificate of {name} is not trusted (self-signed, expired or wrong host); "
            "add its CA with the system trust store"
        )

    # -- push --

    def push_negotiation(self, updates):
        self._check_deadline()
        for update in updates:
            src, dst = update.src, update.dst
            if dst.raw == b"\0" * len(dst.raw):
                raise _Abort(f"refusing to delete {update.dst_refname} on the remote")
            if src.raw == b"\0" * len(src.raw):
                continue  # the branch is new on the remote
            if src == dst:
                continue
            if self._repo is None or src not in self._repo:
                raise _Diverged(
                    f"remote has diverged: remote branch at {str(src)[:12]} is not in the local branch"
                )
            if not self._repo.descendant_of(dst, src):
                _, behind = self._repo.ahead_behind(dst, src)
                raise _Diverged(f"remote has diverged: {_commits(behind)} not in local branch", behind)

    def push_update_reference(self, refname, message):
        if message is None:
            self.accepted.add(refname)
        else:
            self.rejections[refname] = message

    def sideband_progress(self, string):
        # No deadline here: a big transfer may take longer than `timeout`;
        # libgit2's read timeout bounds a stalled one.
        self.sideband.append(string)

    def remote_messages(self) -> str:
        """The server's sideband output (e.g. a hook's stderr) as one line."""
        text = "".join(self.sideband)
        lines = [re.sub(r"\s+", " ", ln).strip() for ln in re.split(r"[\r\n]+", text)]
        lines = [ln for ln in lines if ln]
        return " / ".join(lines[-5:])


# ----------------------------------------------------------------------------- helpers


def _commits(n: int) -> str:
    return f"{n} commit" if n == 1 else f"{n} commits"


def _scrub(message: str, credentials: Credentials) -> str:
    """One line, no secrets, bounded length."""
    text = " ".join(str(message).split())
    for secret in sorted(credentials.secrets(), key=len, reverse=True):
        text = text.replace(secret, "***")
    # user:password@ in any URL that slipped through
    text = re.sub(r"(\w+://)([^/@\s:]+):([^/@\s]+)@", r"\1\2:***@", text)
    if len(text) > _MAX_ERROR_LEN:
        text = text[: _MAX_ERROR_LEN - 3] + "..."
    return text


def _failure(kind: str, message: str, credentials: Credentials, **kw) -> PushResult:
    return PushResult(
        ok=False,
        pushed_oid=kw.pop("pushed_oid", None),
        remote_before=kw.pop("remote_before", None),
        error=_scrub(message, credentials),
        kind=kind,
        **kw,
    )


@contextmanager
def _network_timeouts(timeout: float) -> Iterator[float]:
    """libgit2's process-wide connect/read timeouts set to `timeout` for the call; yields the
    deadline for connecting and authenticating. The previous values are restored after."""
    ms = max(1000, int(timeout * 1000))
    settings = pygit2.settings
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


def _lookup_remote(repo: pygit2.Repository, remote_name: str) -> pygit2.Remote | None:
    try:
        return repo.remotes[remote_name]
    except (KeyError, ValueError, pygit2.GitError):
        return None


def _remote_url(remote: pygit2.Remote) -> str:
    return remote.push_url or remote.url or ""


def _classify(exc: BaseException, url: _Url, credentials: Credentials) -> tuple[str, str]:
    """Map an exception from a libgit2 network call to (kind, one-line message)."""
    if isinstance(exc, _TimedOut):
        return KIND_UNREACHABLE, f"cannot reach {url.display}: timed out"
    if isinstance(exc, _Abort):
        return exc.kind, exc.message
    text = " ".join(str(exc).split())
    low = text.lower()
    where = url.display
    local = _local_path(url)
    if (
        isinstance(exc, pygit2.AuthError)
        or "failed to authenticate ssh session" in low
        or "authentication replays" in low
        or "remote rejected authentication" in low
        or re.search(r"status code: 40[13]\b", low)
    ):
        return KIND_AUTH, f"authentication failed for {where}: {text}"
    if isinstance(exc, pygit2.CertificateError) or "hostkey" in low or "certificate" in low:
        if url.scheme == "ssh":
            known_hosts = credentials.known_hosts or Path(pygit2.settings.homedir) / ".ssh" / "known_hosts"
            return KIND_HOST_KEY, _host_key_message(url, known_hosts)
        return KIND_HOST_KEY, f"certificate of {url.host} is not trusted: {text}"
    if "contains commits that are not present locally" in low or "non-fast-forward" in low:
        return KIND_DIVERGED, "remote has diverged: the remote branch has commits not in the local branch"
    if local is not None and not os.path.exists(local):
        return KIND_UNREACHABLE, f"cannot reach {where}: no repository at {local} (moved or deleted?)"
    unreachable_markers = (
        "failed to connect",
        "connection refused",
        "could not resolve",
        "failed to resolve",
        "name or service not known",
        "timed out",
        "timeout",
        "network is unreachable",
        "no route to host",
        "could not read from socket",
        "could not write to socket",
        "connection reset",
        "broken pipe",
        "early eof",
        "does not appear to be a git repository",
        "repository not found",
        "not a git repository",
        "could not find repository",
        "failed to start ssh session",
        "status code: 404",
        "unexpected disconnect",
        "ssh channel",
    )
    if any(marker in low for marker in unreachable_markers):
        return KIND_UNREACHABLE, f"cannot reach {where}: {text}"
    return KIND_ERROR, f"{where}: {text}"


def _list_heads(
    repo: pygit2.Repository,
    remote_name: str,
    credentials: Credentials,
    deadline: float,
) -> tuple[dict[str, str], _Url] | PushResult:
    """Connect a FRESH Remote in the push direction and list its refs {name: oid}."""
    remote = _lookup_remote(repo, remote_name)
    if remote is None:
        return _failure(KIND_NO_REMOTE, f"no remote named {remote_name!r}", credentials)
    url = _parse_url(_remote_url(remote))
    callbacks = _Callbacks(credentials=credentials, url=url, deadline=deadline, repo=repo)
    try:
        remote.connect(callbacks=callbacks, direction=_DIRECTION_PUSH)
        heads = remote.list_heads(connect=False)
        return {h.name: str(h.oid) for h in heads if h.name}, url
    except Exception as exc:
        kind, message = _classify(exc, url, credentials)
        return _failure(kind, message, credentials)
    finally:
        del remote  # frees the C object: disconnects; never reused for the push


def _local_head(repo: pygit2.Repository, local_branch: str) -> pygit2.Oid | None:
    ref = repo.references.get(f"refs/heads/{local_branch}")
    if ref is None:
        return None
    try:
        return ref.peel(pygit2.Commit).id
    except (pygit2.GitError, ValueError):
        return None


def _count_commits(repo: pygit2.Repository, tip: pygit2.Oid, hide: list[pygit2.Oid]) -> int:
    walker = repo.walk(tip)
    for oid in hide:
        walker.hide(oid)
    return sum(1 for _ in walker)


def _known_commits(repo: pygit2.Repository, oids) -> list[pygit2.Oid]:
    known = []
    for oid in oids:
        try:
            obj = repo.get(oid)
        except (ValueError, pygit2.GitError):
            obj = None
        if isinstance(obj, pygit2.Commit):
            known.append(obj.id)
    return known


def _state(
    repo: pygit2.Repository,
    local: pygit2.Oid,
    remote_oid: str | None,
    heads: dict[str, str],
    tracking_ref: str,
) -> RemoteState:
    """Ahead/behind of `local` against `remote_oid`.

    When the remote commit is missing (or unknown locally), `ahead` counts local
    commits reachable from none of the advertised heads known locally nor the
    remote-tracking ref (which libgit2 updates after each push).
    """
    if remote_oid is None or not _known_commits(repo, [pygit2.Oid(hex=remote_oid)]):
        hide = set(heads.values())
        tracking = repo.references.get(tracking_ref)
        if tracking is not None and tracking.type == pygit2.enums.ReferenceType.DIRECT:
            hide.add(str(tracking.target))
        ahead = _count_commits(repo, local, _known_commits(repo, hide))
        return RemoteState(remote_oid, ahead, 0 if remote_oid is None else -1, str(local))
    remote = pygit2.Oid(hex=remote_oid)
    ahead, behind = repo.ahead_behind(local, remote)
    return RemoteState(remote_oid, ahead, behind, str(local))


# ----------------------------------------------------------------------------- implementation


def _remote_state(
    deadline: float,
    repo: pygit2.Repository,
    *,
    remote_name: str,
    local_branch: str,
    remote_branch: str,
    credentials: Credentials,
) -> RemoteState | PushResult:
    """List the remote's refs (fresh Remote) and count ahead/behind; a failed PushResult on error."""
    local = _local_head(repo, local_branch)
    if local is None:
        return _failure(
            KIND_NO_BRANCH, f"local branch {local_branch!r} does not exist (no commits yet?)", credentials
        )
    listed = _list_heads(repo, remote_name, credentials, deadline)
    if isinstance(listed, PushResult):
        return listed
    heads, _ = listed
    return _state(
        repo,
        local,
        heads.get(f"refs/heads/{remote_branch}"),
        heads,
        f"refs/remotes/{remote_name}/{remote_branch}",
    )


def _check_remote(
    deadline: float,
    repo: pygit2.Repository,
    *,
    remote_name: str,
    remote_branch: str,
    credentials: Credentials,
) -> PushResult:
    """Connect in the push direction with the credentials and list refs: ok, or a clear error.

    On success `remote_before` is the remote branch's commit (None when it does not exist yet).
    """
    listed = _list_heads(repo, remote_name, credentials, deadline)
    if isinstance(listed, PushResult):
        return listed
    heads, _ = listed
    return PushResult(
        ok=True,
        pushed_oid=None,
        remote_before=heads.get(f"refs/heads/{remote_branch}"),
        error=None,
        kind=None,
    )


def _push_branch(
    deadline: float,
    repo: pygit2.Repository,
    *,
    remote_name: str,
    local_branch: str,
    remote_branch: str,
    credentials: Credentials,
) -> PushResult:
    """Fast-forward `remote_branch` on the remote to the local branch's head. Never forces.

    Lists the remote's heads first (fresh Remote): a remote branch whose commit
    is unknown locally or not an ancestor of the local head is "diverged" and
    nothing is pushed. The push itself runs on another fresh Remote whose
    negotiation callback refuses non-fast-forward updates.
    """
    local = _local_head(repo, local_branch)
    if local is None:
        return _failure(
            KIND_NO_BRANCH, f"local branch {local_branch!r} does not exist (no commits yet?)", credentials
        )
    listed = _list_heads(repo, remote_name, credentials, deadline)
    if isinstance(listed, PushResult):
        return listed
    heads, url = listed
    dst_ref = f"refs/heads/{remote_branch}"
    remote_before = heads.get(dst_ref)
    state = _state(repo, local, remote_before, heads, f"refs/remotes/{remote_name}/{remote_branch}")
    if state.behind == -1:
        return _failure(
            KIND_DIVERGED,
            f"remote has diverged: remote branch at {remote_before[:12]} is not in the local branch",
            credentials,
            remote_before=remote_before,
            behind=-1,
        )
    if state.behind > 0:
        return _failure(
            KIND_DIVERGED,
            f"remote has diverged: {_commits(state.behind)} not in local branch",
            credentials,
            remote_before=remote_before,
            behind=state.behind,
        )
    if remote_before == str(local):
        return PushResult(True, str(local), remote_before, None, None, commits=0)

    remote = _lookup_remote(repo, remote_name)  # fresh: never the one that listed the heads
    if remote is None:
        return _failure(KIND_NO_REMOTE, f"no remote named {remote_name!r}", credentials)
    url = _parse_url(_remote_url(remote))
    callbacks = _Callbacks(credentials=credentials, url=url, deadline=deadline, repo=repo)
    try:
        remote.push([f"refs/heads/{local_branch}:{dst_ref}"], callbacks=callbacks)
    except Exception as exc:
        if dst_ref in callbacks.accepted and "failed to lock file" in str(exc):
            # The remote took the update; only the local remote-tracking ref could not
            # be moved (its lock is held, or left by a process that died). The lock is
            # not ours to remove: say so and count the push as done.
            return PushResult(
                True,
                str(local),
                remote_before,
                None,
                None,
                commits=state.ahead,
                warning=_scrub(
                    f"pushed, but the remote-tracking ref was not updated: {exc}; "
                    "if no git process is running, remove that .lock file",
                    credentials,
                ),
            )
        kind, message = _classify(exc, url, credentials)
        behind = exc.behind if isinstance(exc, _Diverged) else (-1 if kind == KIND_DIVERGED else 0)
        return _failure(kind, message, credentials, remote_before=remote_before, behind=behind)
    finally:
        del remote
    if dst_ref in callbacks.rejections:
        reason = callbacks.rejections[dst_ref]
        extra = callbacks.remote_messages()
        message = f"push to {url.display} rejected by the remote: {reason}"
        if extra:
            message += f" (remote: {extra})"
        return _failure(KIND_REJECTED, message, credentials, remote_before=remote_before)
    if dst_ref not in callbacks.accepted:
        return _failure(
            KIND_ERROR,
            f"push to {url.display}: the remote did not confirm the update of {dst_ref}",
            credentials,
            remote_before=remote_before,
        )
    return PushResult(True, str(local), remote_before, None, None, commits=state.ahead)


# ----------------------------------------------------------------------------- public API


def push_branch(
    repo: pygit2.Repository,
    *,
    remote_name: str,
    local_branch: str,
    remote_branch: str,
    credentials: Credentials,
    timeout: float = DEFAULT_TIMEOUT,
) -> PushResult:
    """Fast-forward `remote_branch` on the remote to the local branch's head. Never forces.

    Lists the remote's heads first (fresh Remote): a remote branch whose commit
    is unknown locally or not an ancestor of the local head is "diverged" and
    nothing is pushed. The push itself runs on another fresh Remote whose
    negotiation callback refuses non-fast-forward updates; a server-side
    rejection is kind "rejected". `timeout` bounds connecting, authenticating
    and every network read (a transfer that keeps moving may take longer).
    """
    with _network_timeouts(timeout) as deadline:
        return _push_branch(
            deadline,
            repo,
            remote_name=remote_name,
            local_branch=local_branch,
            remote_branch=remote_branch,
            credentials=credentials,
        )


def remote_state(
    repo: pygit2.Repository,
    *,
    remote_name: str,
    local_branch: str,
    remote_branch: str,
    credentials: Credentials,
    timeout: float = DEFAULT_TIMEOUT,
) -> RemoteState | PushResult:
    """List the remote's refs (fresh Remote) and count ahead/behind; a failed PushResult on error."""
    with _network_timeouts(timeout) as deadline:
        return _remote_state(
            deadline,
            repo,
            remote_name=remote_name,
            local_branch=local_branch,
            remote_branch=remote_branch,
            credentials=credentials,
        )


def check_remote(
    repo: pygit2.Repository,
    *,
    remote_name: str,
    remote_branch: str,
    credentials: Credentials,
    timeout: float = DEFAULT_TIMEOUT,
) -> PushResult:
    """For `mdbackup check`: connect in the push direction with the credentials and list the
    refs. `ok`, with `remote_before` the remote branch's commit (None when it does not exist
    yet), or a failed result with a clear error."""
    with _network_timeouts(timeout) as deadline:
        return _check_remote(
            deadline,
            repo,
            remote_name=remote_name,
            remote_branch=remote_branch,
            credentials=credentials,
        )


__all__ = [
    "Credentials",
    "PushResult",
    "RemoteState",
    "check_remote",
    "known_host_entries",
    "push_branch",
    "remote_state",
]
