"""The tree an index file says it holds: the root of git's cache-tree (the `TREE` extension).

git records, beside the index entries, the tree object each folder's entries make, and
marks a folder invalid (entry count -1) as soon as an entry under it changes. A valid
root is therefore exactly the tree the whole index would write. git rewrites the whole
cache-tree when it checks out a commit (`git switch`, `git checkout`, a fast-forward
`git merge` or `git pull`), so right after such a command the root names the tree of
the commit it is moving HEAD to. libgit2 keeps the extension but exposes no reader: this
module reads the file itself (index format versions 2, 3 and 4; the `EOIE` extension,
when present, spares walking the entries).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pygit2

__all__ = ["root_tree"]

_HEADER = 12
_TRAILER = 20
_ENTRY_FIXED = 62  # ctime, mtime, dev, ino, mode, uid, gid, size (4 bytes each), oid (20), flags (2)
_EXTENDED = 0x4000
_NAME_MASK = 0xFFF


def root_tree(path: Path) -> pygit2.Oid | None:
    """The tree the index file at `path` records for its root, or None when it records
    none (no cache-tree, the root invalidated by a change since, or a file this reader
    does not know: then nothing is claimed)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        return _root_tree(data)
    except (struct.error, ValueError, IndexError):
        return None


def _root_tree(data: bytes) -> pygit2.Oid | None:
    if len(data) < _HEADER + _TRAILER or data[:4] != b"DIRC":
        return None
    version, count = struct.unpack_from(">II", data, 4)
    if version not in (2, 3, 4):
        return None
    end = len(data) - _TRAILER
    pos = _extensions_offset(data, end)
    if pos is None:
        pos = _skip_entries(data, version, count)
    while pos + 8 <= end:
        signature = data[pos : pos + 4]
        (size,) = struct.unpack_from(">I", data, pos + 4)
        if signature == b"TREE":
            return _root_of(data[pos + 8 : pos + 8 + size])
        pos += 8 + size
    return None


def _extensions_offset(data: bytes, end: int) -> int | None:
    """Where the extensions start, from the `EOIE` extension (always the last one, 12 + 20
    bytes) when the index has it."""
    start = end - 32
    if start < _HEADER or data[start : start + 4] != b"EOIE":
        return None
    (size,) = struct.unpack_from(">I", data, start + 4)
    if size != 24:
        return None
    (offset,) = struct.unpack_from(">I", data, start + 8)
    return offset if _HEADER <= offset <= start else None


def _skip_entries(data: bytes, version: int, count: int) -> int:
    """The offset after the `count` entries (read-cache.c: v2/v3 entries padded with NULs
    to a multiple of 8 bytes; v4 names prefix-compressed and NUL-terminated, no padding)."""
    pos = _HEADER
    unpack_flags = struct.Struct(">H").unpack_from
    for _ in range(count):
        (flags,) = unpack_flags(data, pos + 60)
        fixed = _ENTRY_FIXED + (2 if version >= 3 and flags & _EXTENDED else 0)
        if version == 4:
            name = pos + fixed
            while data[name] & 0x80:  # the varint of the stripped prefix length
                name += 1
            pos = data.index(b"\0", name + 1) + 1
            continue
        length = flags & _NAME_MASK
        if length == _NAME_MASK:
            length = data.index(b"\0", pos + fixed) - (pos + fixed)
        pos += (fixed + length + 8) & ~7
    return pos


def _root_of(body: bytes) -> pygit2.Oid | None:
    """The root's tree in a `TREE` extension body: "" NUL, "<entries> <subtrees>\\n", and
    the 20-byte id when entries is not -1 (cache-tree.c)."""
    if not body.startswith(b"\0"):
        return None
    newline = body.index(b"\n")
    entries, _subtrees = body[1:newline].split(b" ")
    if int(entries) < 0:
        return None
    raw = body[newline + 1 : newline + 21]
    return pygit2.Oid(raw=raw) if len(raw) == 20 else None
