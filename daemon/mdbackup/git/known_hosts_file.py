"""The known_hosts file format as OpenSSH's hostfile.c reads it: lines, markers, host patterns.

Plain names and comma lists, `*`/`?` patterns, `!` negations (a matching negation drops the
line), `[host]:port` names, hashed names (`|1|salt|hash`), the `@revoked` and
`@cert-authority` markers. Lines end in LF or CRLF; blank lines and `#` comments are
skipped; a line that cannot be parsed (a bare host name, an unknown marker, an undecodable
key, a bad hash) is skipped with one warning naming the file and line, returned as data.
Also writes the narrow file libssh2 is given (`libssh2_text`). Pure: reads files only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

SSH_PORT = 22
_MAX_SUBPATTERN = 1022  # OpenSSH's match_pattern_list: a longer subpattern never matches


class Marker(Enum):
    NONE = ""
    REVOKED = "@revoked"
    CERT_AUTHORITY = "@cert-authority"


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One parsed known_hosts line: where it is, its marker, host field and key."""

    path: Path
    line: int
    marker: Marker
    hosts: str
    key_type: str  # the type named inside the blob, e.g. "ssh-ed25519"
    blob: bytes = field(repr=False)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def host_name(host: str, port: int | None) -> str:
    """How known_hosts names host:port: `host` for 22 (or None), `[host]:port` otherwise."""
    host = host.lower()
    if port in (None, SSH_PORT):
        return host
    return f"[{host}]:{port}"


def blob_type(blob: bytes) -> str | None:
    if len(blob) < 4:
        return None
    n = int.from_bytes(blob[:4], "big")
    if n == 0 or len(blob) < 4 + n:
        return None
    try:
        return blob[4 : 4 + n].decode("ascii")
    except UnicodeDecodeError:
        return None


def _hashed_match(field_: str, name: str) -> bool | None:
    """Whether a hashed host field `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` is `name`;
    None when the field is malformed (OpenSSH skips the line)."""
    parts = field_.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return None
    try:
        salt = base64.b64decode(parts[2], validate=True)
        expected = base64.b64decode(parts[3], validate=True)
    except (ValueError, binascii.Error):
        return None
    if len(salt) != 20:
        return None
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(digest, expected)


def _match_pattern(name: str, pattern: str) -> bool:
    """OpenSSH's match_pattern: `*` any run, `?` one character, the rest literal."""
    if not pattern:
        return not name
    if pattern[0] == "*":
        rest = pattern.lstrip("*")
        if not rest:
            return True
        return any(_match_pattern(name[i:], rest) for i in range(len(name) + 1))
    if not name:
        return False
    if pattern[0] == "?" or pattern[0] == name[0]:
        return _match_pattern(name[1:], pattern[1:])
    return False


def _pattern_list_matches(field_: str, name: str) -> bool:
    """OpenSSH's match_hostname: a comma list where a matching `!pattern` drops the line."""
    matched = False
    for raw in field_.split(","):
        negated = raw.startswith("!")
        pattern = (raw[1:] if negated else raw).lower()
        if len(pattern) > _MAX_SUBPATTERN:
            return False
        if _match_pattern(name, pattern):
            if negated:
                return False
            matched = True
    return matched


def _parse_line(path: Path, number: int, raw: str) -> Entry | str | None:
    """An entry, None for a blank/comment line, or a warning for a malformed one."""
    line = raw.rstrip("\r\n").lstrip(" \t")
    if not line or line.startswith("#"):
        return None
    fields = line.split()
    marker = Marker.NONE
    if fields[0].startswith("@"):
        try:
            marker = Marker(fields[0])
        except ValueError:
            return f"{path}:{number}: unknown marker {fields[0][:40]!r}; line skipped"
        fields = fields[1:]
    if len(fields) < 3:
        return f"{path}:{number}: no key on this line; line skipped"
    hosts, named_type, b64 = fields[0], fields[1], fields[2]
    try:
        blob = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        return f"{path}:{number}: the key is not valid base64; line skipped"
    key_type = blob_type(blob)
    if key_type is None or key_type != named_type:
        return f"{path}:{number}: the key does not parse as {named_type[:40]!r}; line skipped"
    if hosts.startswith("|") and _hashed_match(hosts, "") is None:
        return f"{path}:{number}: malformed hashed host name; line skipped"
    return Entry(path=path, line=number, marker=marker, hosts=hosts, key_type=key_type, blob=blob)


def read_entries(path: Path) -> tuple[list[Entry], list[str]]:
    """The entries of one known_hosts file and a warning per malformed line; a missing or
    unreadable file has none."""
    try:
        data = path.read_bytes()
    except OSError:
        return [], []
    entries: list[Entry] = []
    warnings: list[str] = []
    for number, raw in enumerate(data.decode("utf-8", errors="replace").split("\n"), start=1):
        parsed = _parse_line(path, number, raw)
        if isinstance(parsed, Entry):
            entries.append(parsed)
        elif parsed is not None:
            warnings.append(parsed)
    return entries, warnings


def names_host(entry: Entry, name: str) -> bool:
    """Whether the entry's host field names `name` (already lower-case)."""
    if entry.hosts.startswith("|"):
        return _hashed_match(entry.hosts, name) is True
    return _pattern_list_matches(entry.hosts, name)


_LIBSSH2_TYPES = frozenset(
    {"ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"}
)


def libssh2_text(*, host: str, port: int | None, files: Sequence[Path]) -> str:
    """A known_hosts text libssh2 can always parse, for libgit2's own (advisory) check and its
    choice of host key algorithm: the plain keys the `files` list for `host`:`port` (or, when
    none names `[host]:port`, for the port-less `host`, as OpenSSH falls back), one per line
    under the exact name libssh2 looks up; key types libssh2 does not know are left out.
    Markers, patterns and hashes are resolved here, so nothing in it can fail to parse."""
    host = host.lower()
    name = host_name(host, port)
    entries = [e for path in files for e in read_entries(path)[0] if e.marker is Marker.NONE]
    chosen = [e for e in entries if names_host(e, name)]
    if not chosen and name != host:
        chosen = [e for e in entries if names_host(e, host)]
    lines = [
        f"{name} {e.key_type} {base64.b64encode(e.blob).decode()}"
        for e in chosen
        if e.key_type in _LIBSSH2_TYPES
    ]
    return "".join(line + "\n" for line in dict.fromkeys(lines))
