"""OpenSSH known_hosts files: does a server's host key check out, as strict OpenSSH decides.

Reads the user's file and the global one (`/etc/ssh/ssh_known_hosts`) the way OpenSSH's
hostfile.c/sshconnect.c do: plain names and comma lists, `*`/`?` patterns, `!` negations
(a matching negation drops the line), `[host]:port` names for ports other than 22, hashed
names (`|1|salt|hash`), `@revoked` (refuses that key, whatever else matches) and
`@cert-authority` (only for host certificates, which mdbackup cannot verify: never trusted
for a plain key, and a certificate presented as the host key is refused). Lines end in LF or
CRLF; blank lines and `#` comments are skipped; a line that cannot be parsed (a bare host
name, an unknown marker, an undecodable key, a bad hash) is skipped and reported once in
`Verdict.warnings` naming the file and line (this module logs nothing: the caller does).

The host key is matched by its decoded blob, or, when only digests of it are known, by the
SHA-256, SHA-1 or MD5 of the blob (as libgit2 hands them over).

Lookup, as OpenSSH: the name is `host` for port 22 and `[host]:port` otherwise. Every entry
for that name, from both files, is considered: a key equal to the server's is OK; any other
key makes it CHANGED; an `@revoked` entry for the server's key makes it REVOKED. Only when no
entry names `[host]:port` at all (NEW), a port-less `host` entry may vouch for the key
(OpenSSH's "checking without port identifier"): it is trusted only when that lookup is OK;
otherwise the host stays unknown. Pure: reads the files, nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from mdbackup.git.known_hosts_file import (
    SSH_PORT,
    Entry,
    Marker,
    blob_type,
    host_name,
    libssh2_text,
    names_host,
    read_entries,
)

GLOBAL_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")
_CERT_SUFFIX = "-cert-v01@openssh.com"


class Status(Enum):
    """OpenSSH's HostStatus for one lookup."""

    OK = "ok"
    NEW = "new"  # no entry for the name: unknown host
    CHANGED = "changed"
    REVOKED = "revoked"
    CERTIFICATE = "certificate"  # the server presented a host certificate: cannot verify


@dataclass(frozen=True, kw_only=True)
class ServerKey:
    """The host key the server presented: its wire blob, or only digests of it."""

    blob: bytes | None = field(default=None, repr=False)
    sha256: bytes | None = None
    sha1: bytes | None = None
    md5: bytes | None = None

    def matches(self, blob: bytes) -> bool:
        """Whether `blob` (a known_hosts key, decoded) is this key."""
        if self.blob is not None:
            return hmac.compare_digest(self.blob, blob)
        for digest, algo in ((self.sha256, "sha256"), (self.sha1, "sha1"), (self.md5, "md5")):
            if digest:
                return hmac.compare_digest(digest, hashlib.new(algo, blob).digest())
        return False

    @property
    def key_type(self) -> str | None:
        """The key type inside the blob (`ssh-ed25519`, ...); None when only digests are known."""
        return blob_type(self.blob) if self.blob is not None else None


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The outcome of checking one server key: `ok`, or `status` and OpenSSH's `message`.

    `entry` is the offending (CHANGED) or revoking (REVOKED) line when there is one.
    `warnings` name each malformed line skipped (file and line), once per line.
    """

    status: Status
    name: str
    message: str
    entry: Entry | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


def _display_type(key_type: str | None) -> str:
    """OpenSSH's short key type name (`ED25519`, `RSA`, `ECDSA`, ...)."""
    if key_type is None:
        return ""
    base = key_type.removesuffix(_CERT_SUFFIX)
    for prefix, name in (
        ("ssh-ed25519", "ED25519"),
        ("sk-ssh-ed25519", "ED25519-SK"),
        ("ssh-rsa", "RSA"),
        ("ssh-dss", "DSA"),
        ("ecdsa-sha2-", "ECDSA"),
        ("sk-ecdsa-sha2-", "ECDSA-SK"),
    ):
        if base.startswith(prefix):
            return name + ("-CERT" if key_type.endswith(_CERT_SUFFIX) else "")
    return key_type


def _lookup(entries: Sequence[Entry], name: str, key: ServerKey) -> tuple[Status, Entry | None]:
    """OpenSSH's check_hostkeys_by_key_or_type for a plain key and the entries for `name`."""
    status, found = Status.NEW, None
    for entry in entries:
        if entry.marker is not Marker.NONE or not names_host(entry, name):
            continue
        if key.matches(entry.blob):
            status, found = Status.OK, entry
            break
        status, found = Status.CHANGED, entry
    for entry in entries:
        if entry.marker is Marker.REVOKED and names_host(entry, name) and key.matches(entry.blob):
            return Status.REVOKED, entry
    return status, found


def _fix_hint(name: str, host: str, port: int, files: Sequence[Path]) -> str:
    keyscan = f"ssh-keyscan -p {port} {host}" if port != SSH_PORT else f"ssh-keyscan {host}"
    target = files[0] if files else Path("~/.ssh/known_hosts")
    return f"add it after verifying its fingerprint: `{keyscan} >> {target}`"


def _message(
    status: Status,
    *,
    name: str,
    host: str,
    port: int,
    key: ServerKey,
    entry: Entry | None,
    files: Sequence[Path],
    ca_entries: Sequence[Entry],
) -> str:
    kind = _display_type(key.key_type)
    kind_ = f"{kind} " if kind else ""
    if status is Status.REVOKED:
        where = f" ({entry.where})" if entry else ""
        return (
            "WARNING: REVOKED HOST KEY DETECTED! "
            f"The {kind_}host key for {name} is marked as revoked{where}. "
            "This could mean that a stolen key is being used to impersonate this host. "
            "Host key verification failed."
        )
    if status is Status.CHANGED:
        assert entry is not None
        return (
            "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! "
            "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY! "
            f"The {kind_}host key for {name} has CHANGED (possible man-in-the-middle attack). "
            f"Offending {_display_type(entry.key_type)} key in {entry.where}. "
            f"Host key for {name} has changed and you have requested strict checking. "
            "Host key verification failed. Only if the change is expected, remove the old entry "
            f"with `ssh-keygen -R '{name}' -f {entry.path}` and " + _fix_hint(name, host, port, files)
        )
    if status is Status.CERTIFICATE:
        return (
            f"{name} presented a host certificate ({key.key_type}); mdbackup cannot verify host "
            "certificates (@cert-authority), so it is refused. Host key verification failed."
        )
    ca_note = ""
    if ca_entries:
        ca_note = (
            f" ({ca_entries[0].where} trusts a @cert-authority for this host, but mdbackup cannot "
            "verify host certificates: list the host's own key instead)"
        )
    searched = ", ".join(str(f) for f in files)
    return (
        f"No {kind_}host key is known for {name} and you have requested strict checking. "
        f"Host key verification failed: host {name} is unknown (searched {searched}){ca_note}; "
        + _fix_hint(name, host, port, files)
    )


def verify(*, host: str, port: int | None, key: ServerKey, files: Sequence[Path]) -> Verdict:
    """Check the server's `key` for `host`:`port` (None: 22) against the known_hosts `files`
    (user file first, then the global one), as `ssh -o StrictHostKeyChecking=yes` would.

    Returns a `Verdict`: `ok`, or the status with the message OpenSSH would print (plus the
    fix), and the warnings for malformed lines. Never raises for a file problem: a missing
    or unreadable file lists nothing.
    """
    port = port or SSH_PORT
    host = host.lower()
    entries: list[Entry] = []
    warnings: list[str] = []
    for path in files:
        found, bad = read_entries(path)
        entries.extend(found)
        warnings.extend(bad)
    name = host_name(host, port)
    ca_entries = [e for e in entries if e.marker is Marker.CERT_AUTHORITY and names_host(e, name)]
    if key.key_type is not None and key.key_type.endswith(_CERT_SUFFIX):
        status: Status = Status.CERTIFICATE
        entry: Entry | None = None
    else:
        status, entry = _lookup(entries, name, key)
        if status is Status.NEW and port != SSH_PORT:
            # OpenSSH retries without the port and trusts only an exact match there.
            bare_status, bare_entry = _lookup(entries, host, key)
            if bare_status is Status.OK:
                status, entry = bare_status, bare_entry
            if not ca_entries:
                ca_entries = [e for e in entries if e.marker is Marker.CERT_AUTHORITY and names_host(e, host)]
    message = (
        ""
        if status is Status.OK
        else _message(
            status, name=name, host=host, port=port, key=key, entry=entry, files=files, ca_entries=ca_entries
        )
    )
    return Verdict(status=status, name=name, message=message, entry=entry, warnings=tuple(warnings))


def any_revoked(*, host: str, port: int | None, files: Sequence[Path]) -> bool:
    """Whether any `@revoked` entry names `host`:`port` (or `host` alone): used only when the
    server's key is not available, to refuse rather than trust libssh2's verdict blindly."""
    names = {host_name(host, port), host.lower()}
    for path in files:
        for entry in read_entries(path)[0]:
            if entry.marker is Marker.REVOKED and any(names_host(entry, n) for n in names):
                return True
    return False


def host_key_message(known_hosts: Path, *, host: str, port: int | None) -> str:
    """Why the SSH host key of `host`:`port` (None: 22) was refused when the key itself is not
    known (libgit2 refused it without our check): CHANGED when `known_hosts` lists the
    host (with the OpenSSH wording and the fix), else unknown."""
    verdict = verify(host=host, port=port, key=ServerKey(), files=(known_hosts,))
    return verdict.message


__all__ = [
    "GLOBAL_KNOWN_HOSTS",
    "ServerKey",
    "Status",
    "Verdict",
    "any_revoked",
    "host_key_message",
    "host_name",
    "libssh2_text",
    "read_entries",
    "verify",
]
