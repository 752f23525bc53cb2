"""What went wrong talking to a remote: remote URLs for display, error kinds and one-line messages.

Every message names the remote by `RemoteUrl.display`, which never holds a
password (nor any user info for http/https), and goes through `error_line`,
which also removes the given secret values as a last line of defense.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pygit2

from mdbackup import redact
from mdbackup.git.known_hosts import host_key_message

KIND_DIVERGED = "diverged"
KIND_UNREACHABLE = "unreachable"
KIND_AUTH = "auth"
KIND_HOST_KEY = "host-key"
KIND_REJECTED = "rejected"
KIND_NO_REMOTE = "no-remote"
KIND_NO_BRANCH = "no-branch"
KIND_ERROR = "error"

MAX_ERROR_LEN = 1000

# ----------------------------------------------------------------------------- raised in callbacks


class Abort(Exception):
    """Raised inside a libgit2 callback to stop the operation; carries the kind and the message."""

    kind = KIND_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthFailed(Abort):
    kind = KIND_AUTH


class HostKeyRefused(Abort):
    kind = KIND_HOST_KEY


class Diverged(Abort):
    """The remote branch has commits the local branch lacks; `behind` counts them (-1: unknown)."""

    kind = KIND_DIVERGED

    def __init__(self, message: str, behind: int = -1) -> None:
        super().__init__(message)
        self.behind = behind


class TimedOut(Abort):
    kind = KIND_UNREACHABLE


# ----------------------------------------------------------------------------- URLs


@dataclass(frozen=True, kw_only=True)
class RemoteUrl:
    """A remote URL taken apart. `scheme` is "ssh" (also for scp-like `user@host:path`),
    "http", "https", "file", "local" (a plain path) or another transport's name;
    `display` is the URL without its password (and without any user info for http/https)."""

    scheme: str
    host: str | None
    port: int | None
    user: str | None
    path: str | None
    display: str

    @property
    def local_path(self) -> str | None:
        """The filesystem path of a local remote (plain path or file://), else None."""
        return self.path if self.scheme in ("local", "file") else None


_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/]+):(?P<path>(?!//).*)$")


def parse_url(url: str) -> RemoteUrl:
    """Take a remote URL apart as git does: `scheme://...`, scp-like `[user@]host:path`
    (ssh), or else a local path. Never raises; never puts a password in `display`."""
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
        return RemoteUrl(scheme=scheme, host=host, port=port, user=parts.username, path=path, display=display)
    match = _SCP_LIKE.match(url)
    if match and not os.path.isabs(url) and "/" not in match.group("host"):
        host = match.group("host").strip("[]")
        return RemoteUrl(
            scheme="ssh",
            host=host,
            port=None,
            user=match.group("user"),
            path=match.group("path"),
            display=url,
        )
    return RemoteUrl(scheme="local", host=None, port=None, user=None, path=url, display=url)


URL_TOKEN_MIN_LEN = 8
"""A URL user name this long or longer is taken as a token (`https://TOKEN@host/...`)."""


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets in `url`'s user part, as written and percent-decoded: the password, and
    the user name too when it is at least `URL_TOKEN_MIN_LEN` characters long (a token used
    as the user name; short names such as `git` or `oauth2` are not). Never raises."""
    if "://" not in url:
        return ()
    netloc = urlsplit(url).netloc
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return ()
    user, colon, password = userinfo.partition(":")
    found: list[str] = []
    if colon and password:
        found += [password, unquote(password)]
    if len(unquote(user)) >= URL_TOKEN_MIN_LEN:
        found += [user, unquote(user)]
    return tuple(dict.fromkeys(found))


def remote_url_secrets(repo: pygit2.Repository, remote_name: str) -> tuple[str, ...]:
    """The secrets written in `remote_name`'s URL and push URL user parts (`url_secrets`);
    () when there is no such remote. Register them with the log scrubber before any
    network operation."""
    try:
        remote = repo.remotes[remote_name]
    except (KeyError, ValueError, pygit2.GitError):
        return ()
    return tuple(dict.fromkeys(url_secrets(remote.url or "") + url_secrets(remote.push_url or "")))


# ----------------------------------------------------------------------------- messages


def error_line(message: str, secrets: Iterable[str]) -> str:
    """`message` as one line (whitespace runs collapsed) of at most `MAX_ERROR_LEN`
    characters, with each of `secrets` and any `scheme://user:password@` password
    replaced by `***`."""
    text = redact.scrub(" ".join(message.split()), secrets)
    text = re.sub(r"(\w+://)([^/@\s:]+):([^/@\s]+)@", r"\1\2:***@", text)
    if len(text) > MAX_ERROR_LEN:
        text = text[: MAX_ERROR_LEN - 3] + "..."
    return text


_UNREACHABLE_MARKERS = (
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


def classify(exc: BaseException, url: RemoteUrl, *, known_hosts: Path) -> tuple[str, str]:
    """The kind (a `KIND_*`) and message of an exception from a libgit2 network call on `url`.

    An `Abort` raised by a callback keeps its own kind and message. Otherwise the kind
    is read from the exception type and libgit2's text: "auth", "host-key" (for SSH the
    message tells an unknown host from a CHANGED key, read from `known_hosts`),
    "diverged", "unreachable" (also: a local remote's path no longer exists), else
    "error". The message names `url.display`; it is not yet passed through `error_line`.
    """
    if isinstance(exc, TimedOut):
        return KIND_UNREACHABLE, f"cannot reach {url.display}: timed out"
    if isinstance(exc, Abort):
        return exc.kind, exc.message
    text = " ".join(str(exc).split())
    low = text.lower()
    where = url.display
    local = url.local_path
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
            return KIND_HOST_KEY, host_key_message(known_hosts, host=url.host or "?", port=url.port)
        return KIND_HOST_KEY, f"certificate of {url.host} is not trusted: {text}"
    if "contains commits that are not present locally" in low or "non-fast-forward" in low:
        return KIND_DIVERGED, "remote has diverged: the remote branch has commits not in the local branch"
    if local is not None and not os.path.exists(local):
        return KIND_UNREACHABLE, f"cannot reach {where}: no repository at {local} (moved or deleted?)"
    if any(marker in low for marker in _UNREACHABLE_MARKERS):
        return KIND_UNREACHABLE, f"cannot reach {where}: {text}"
    return KIND_ERROR, f"{where}: {text}"
