"""OpenSSH known_hosts files: is a host listed, and what to tell the user when its key is refused.

libgit2 itself decides whether a host key is valid; it only says yes or no. This
module tells "unknown host" from "key CHANGED" by reading the file the same way
OpenSSH does: plain names and comma lists, `*`/`?` patterns, `!` negations,
`[host]:port` for ports other than 22, hashed names (`|1|salt|hash`), and the
`@revoked` marker (`@cert-authority` lines are skipped). Pure: reads the file, nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

SSH_PORT = 22


def _names(host: str, port: int | None) -> tuple[str, ...]:
    """The names known_hosts uses for host:port (`host` for 22, `[host]:port` otherwise)."""
    if port in (None, SSH_PORT):
        return (host,)
    return (f"[{host}]:{port}",)


def _hashed_match(entry: str, name: str) -> bool:
    """Whether a hashed entry `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` is `name`;
    False for a malformed entry."""
    try:
        _, magic, salt_b64, hash_b64 = entry.split("|", 3)
        if magic != "1":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(hash_b64)
    except ValueError:  # binascii.Error included
        return False
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(digest, expected)


def _glob_match(name: str, pattern: str) -> bool:
    """ssh's host patterns: `*` and `?` are wildcards, everything else (`[`, `]`) is literal."""
    if "*" not in pattern and "?" not in pattern:
        return name.lower() == pattern.lower()
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None


def _pattern_list_matches(field: str, name: str) -> bool:
    """Whether a known_hosts host field (one hashed name, or a comma list of patterns where
    a matching `!pattern` wins) names `name`."""
    if field.startswith("|"):
        return _hashed_match(field, name)
    matched = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        if _glob_match(name, pattern[1:] if negated else pattern):
            if negated:
                return False
            matched = True
    return matched


def _entries(known_hosts: Path, host: str, port: int | None) -> list[str]:
    """The key types listed for `host`:`port` (e.g. `["ssh-ed25519"]`); empty when the
    host is not listed or the file cannot be read."""
    try:
        text = known_hosts.read_text(errors="replace")
    except OSError:
        return []
    names = _names(host, port)
    found: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
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


def host_key_message(known_hosts: Path, *, host: str, port: int | None) -> str:
    """Why the SSH host key of `host`:`port` (None: 22) was refused, with the fix, in one line.

    When `known_hosts` lists the host, its key has CHANGED (possible man-in-the-middle;
    the message says how to replace the entry after checking the fingerprint).
    Otherwise the host is unknown (also when the file is missing or unreadable) and the
    message says how to add it. Names the host as known_hosts does (`[host]:port`).
    """
    port = port or SSH_PORT
    name = _names(host, port)[0]
    keyscan = f"ssh-keyscan -p {port} {host}" if port != SSH_PORT else f"ssh-keyscan {host}"
    if _entries(known_hosts, host, port):
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
