"""mdbackup.git.hostkeys: reading libgit2's git_cert_hostkey (the full libgit2 1.9 layout).

The end-to-end proof that the key read this way is the server's is in
tests/e2e/test_push_git.py (the known_hosts tests against the real sshd: a push
only succeeds when the decoded key matches the known_hosts line).
"""

from __future__ import annotations

import hashlib
import struct

from pygit2.ffi import C, ffi  # type: ignore[attr-defined]

from mdbackup.git import hostkeys

BLOB = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))


def _cert(kind: int, *, with_key: bool = True) -> tuple[object, object]:
    """A git_cert_hostkey laid out as libgit2 1.9 fills it; returns (pointer, keep-alive)."""
    key = ffi.new("char[]", BLOB)
    raw = struct.pack(
        "=ii16s20s32siQQ",
        C.GIT_CERT_HOSTKEY_LIBSSH2,
        kind,
        hashlib.md5(BLOB).digest(),
        hashlib.sha1(BLOB).digest(),
        hashlib.sha256(BLOB).digest(),
        5,
        int(ffi.cast("uintptr_t", key)) if with_key else 0,
        len(BLOB) if with_key else 0,
    )
    buf = ffi.new("unsigned char[]", raw)
    return ffi.cast("git_cert *", buf), (buf, key)


def test_raw_key_and_digests_are_read() -> None:
    cert, _keep = _cert(1 | 2 | 4 | 8)
    key = hostkeys.decode(cert)
    assert key is not None
    assert key.blob == BLOB and key.key_type == "ssh-ed25519"
    assert key.sha256 == hashlib.sha256(BLOB).digest()
    assert key.sha1 == hashlib.sha1(BLOB).digest() and key.md5 == hashlib.md5(BLOB).digest()


def test_only_digests_still_match_the_blob() -> None:
    cert, _keep = _cert(4, with_key=False)
    key = hostkeys.decode(cert)
    assert key is not None and key.blob is None and key.sha1 is None
    assert key.matches(BLOB) and not key.matches(BLOB[:-1] + b"\x00")


def test_not_an_ssh_certificate() -> None:
    buf = ffi.new("unsigned char[]", 96)
    assert hostkeys.decode(ffi.cast("git_cert *", buf)) is None  # GIT_CERT_NONE
    assert hostkeys.decode(None) is None
    assert hostkeys.server_key_from_callback() is None  # not inside pygit2's callback
