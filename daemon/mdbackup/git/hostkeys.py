"""The SSH host key libgit2 hands to the certificate check, which pygit2 does not pass on.

pygit2 1.21 calls `RemoteCallbacks.certificate_check(None, valid, host)`: the
`git_cert *` libgit2 gave its C callback stays in pygit2's `_certificate_check_cb`
frame as `cert_i`, and its cffi declaration of `git_cert_hostkey` stops after
`hash_sha1`. libgit2 1.9's libssh2 transport fills the whole struct:

    git_cert parent;            /* cert_type: GIT_CERT_HOSTKEY_LIBSSH2 */   offset 0
    git_cert_ssh_t type;        /* MD5 1 | SHA1 2 | SHA256 4 | RAW 8 */    offset 4
    unsigned char hash_md5[16];                                            offset 8
    unsigned char hash_sha1[20];                                           offset 24
    unsigned char hash_sha256[32];                                         offset 44
    git_cert_ssh_raw_type_t raw_type;                                      offset 76
    const char *hostkey;                                                   offset 80
    size_t hostkey_len;                                                    offset 88

This module reads it from there (only while the callback runs, on its thread) and
returns the key as a `ServerKey`: the raw blob when libgit2 gave it, else the digests.
`None` when it cannot be found (another pygit2 version, not an SSH certificate).
"""

from __future__ import annotations

import struct
import sys
from types import FrameType
from typing import Any

from pygit2.ffi import C, ffi

from mdbackup.git.known_hosts import ServerKey

_SSH_MD5, _SSH_SHA1, _SSH_SHA256, _SSH_RAW = 1, 2, 4, 8
_HEADER = struct.Struct("=ii16s20s32siQQ")  # up to hostkey_len, x86-64/aarch64 LP64 layout
_MAX_FRAMES = 8
_MAX_KEY_LEN = 16384


def _cert_pointer(frame: FrameType | None) -> Any:
    """The `cert_i` argument of pygit2's C-level certificate callback, searching up from `frame`."""
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return None
        if frame.f_code.co_name == "_certificate_check_cb" and "cert_i" in frame.f_locals:
            return frame.f_locals["cert_i"]
        frame = frame.f_back
    return None


def decode(cert: Any) -> ServerKey | None:
    """The host key in a `git_cert *` of type GIT_CERT_HOSTKEY_LIBSSH2, else None."""
    if cert is None or cert == ffi.NULL or ffi.sizeof("void *") != 8:
        return None
    if cert.cert_type != C.GIT_CERT_HOSTKEY_LIBSSH2:
        return None
    raw = bytes(ffi.buffer(ffi.cast("unsigned char *", cert), _HEADER.size))
    _, kind, md5, sha1, sha256, _raw_type, key_ptr, key_len = _HEADER.unpack(raw)
    blob = None
    if kind & _SSH_RAW and key_ptr and 0 < key_len <= _MAX_KEY_LEN:
        blob = bytes(ffi.buffer(ffi.cast("const char *", key_ptr), key_len))
    return ServerKey(
        blob=blob,
        sha256=sha256 if kind & _SSH_SHA256 else None,
        sha1=sha1 if kind & _SSH_SHA1 else None,
        md5=md5 if kind & _SSH_MD5 else None,
    )


def server_key_from_callback() -> ServerKey | None:
    """Called from inside `certificate_check`: the SSH host key libgit2 is asking about,
    or None when it cannot be read (the caller then falls back to libssh2's verdict)."""
    try:
        return decode(_cert_pointer(sys._getframe(1)))
    except (AttributeError, TypeError, ValueError, struct.error):
        return None
