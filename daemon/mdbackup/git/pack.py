"""The blobs of a large batch, written as one pack instead of one loose object each.

libgit2 writes a loose object through a temporary file, a link and an unlink, after
rescanning the pack folder (it looks for the object first): some 13 system calls and a
new inode per blob, 70 us of a 5,000-note burst's commit each, several times that when
the file system is busy reusing inodes. `BlobPack` hashes each blob (`pygit2.hash`: the
same object id) and keeps it in memory; `flush` writes them all as one pack file and its
index (version 2, what `git index-pack` writes) in the object folder, each synced and
renamed into place, the index last (git and libgit2 see a pack once its index is there).

Only for batches of `PACK_MIN` paths or more (one commit of a few notes stays loose, as
git's own `add` does), SHA-1 repositories only, and at most `BUFFER_LIMIT` bytes held:
past that, and whenever the pack cannot be written, blobs are written loose as before.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import pygit2

from mdbackup.git import layout
from mdbackup.git.objects import storing

PACK_MIN = 64
"""Paths in a batch from which its blobs are packed."""
BUFFER_LIMIT = 64 << 20
"""Bytes of blob content held for one pack (offsets stay far below the index's 2 GiB)."""
_BLOB = 3
_LEVEL = 1  # zlib level: git's core.looseCompression default, fast


class BlobPack:
    """Blobs stored for one batch: held, then written as one pack by `flush`."""

    def __init__(self, repo: pygit2.Repository, *, limit: int = BUFFER_LIMIT) -> None:
        self._repo = repo
        self._limit = limit
        self._held: dict[bytes, bytes] = {}
        self._needed: dict[bytes, int] = {}
        self._size = 0

    def store(self, data: bytes) -> pygit2.Oid:
        """The blob's id; its content is held for the pack (written loose at once when
        the pack is full)."""
        if self._size + len(data) > self._limit:
            with storing("store the file"):
                return self._repo.create_blob(data)
        oid = pygit2.hash(data)
        key = oid.raw
        if key not in self._held:
            self._held[key] = data
            self._size += len(data)
        self._needed[key] = self._needed.get(key, 0) + 1
        return oid

    def release(self, oid: pygit2.Oid) -> None:
        """One path no longer needs `oid` stored (its content was already committed)."""
        key = oid.raw
        left = self._needed.get(key, 0) - 1
        if left > 0:
            self._needed[key] = left
            return
        self._needed.pop(key, None)
        data = self._held.pop(key, None)
        if data is not None:
            self._size -= len(data)

    def flush(self) -> int:
        """Write what is held into the object database; how many blobs went in the pack.
        A pack that cannot be written falls back to loose objects, which raise
        RepositoryUnwritable when the repository cannot be written at all."""
        held, self._held, self._needed, self._size = self._held, {}, {}, 0
        if not held:
            return 0
        try:
            write_pack(objects_dir(self._repo) / "pack", held)
        except OSError:
            with storing("store the file"):
                for data in held.values():
                    self._repo.create_blob(data)
            return 0
        return len(held)


def packable(repo: pygit2.Repository, paths: int) -> bool:
    """Whether a batch of `paths` paths gets its blobs packed in `repo`."""
    if paths < PACK_MIN:
        return False
    try:
        fmt = repo.config["extensions.objectformat"]
    except (KeyError, pygit2.GitError):
        fmt = "sha1"
    return str(fmt).lower() == "sha1" and "GIT_OBJECT_DIRECTORY" not in os.environ


def objects_dir(repo: pygit2.Repository) -> Path:
    return layout.common_dir(Path(repo.path)) / "objects"


def write_pack(pack_dir: Path, blobs: dict[bytes, bytes]) -> str:
    """Write `blobs` (raw SHA-1 -> content) as `pack-<sum>.pack` and `.idx` (v2) in
    `pack_dir`; returns the pack's name. Both are synced before their rename; the index
    is renamed last. Raises OSError (nothing is left behind but, at worst, a temporary
    file named tmp_pack_*)."""
    entries: list[tuple[bytes, int, int]] = []  # (raw id, offset, crc32)
    checksum = hashlib.sha1(usedforsecurity=False)
    pack_tmp = _temp_name(pack_dir, "tmp_pack_")
    try:
        with open(pack_tmp, "xb", buffering=1 << 20) as out:
            header = b"PACK" + struct.pack(">II", 2, len(blobs))
            out.write(header)
            checksum.update(header)
            offset = len(header)
            for key, data in blobs.items():
                chunk = _object_header(_BLOB, len(data)) + zlib.compress(data, _LEVEL)
                entries.append((key, offset, zlib.crc32(chunk)))
                out.write(chunk)
                checksum.update(chunk)
                offset += len(chunk)
            trailer = checksum.digest()
            out.write(trailer)
            out.flush()
            os.fsync(out.fileno())
        index = _index(entries, trailer)
        name = f"pack-{trailer.hex()}"
        idx_tmp = _temp_name(pack_dir, "tmp_idx_")
        try:
            with open(idx_tmp, "xb") as out:
                out.write(index)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(pack_tmp, 0o444)
            os.chmod(idx_tmp, 0o444)
            os.replace(pack_tmp, pack_dir / f"{name}.pack")
            os.replace(idx_tmp, pack_dir / f"{name}.idx")
        finally:
            _remove(idx_tmp)
    finally:
        _remove(pack_tmp)
    _sync_folder(pack_dir)
    return name


def _object_header(kind: int, size: int) -> bytes:
    """A pack entry's type and size: 3 type bits and 4 size bits, then 7 size bits a byte."""
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def _index(entries: list[tuple[bytes, int, int]], pack_sum: bytes) -> bytes:
    """The version 2 index of a pack holding `entries` (all offsets below 2 GiB)."""
    entries = sorted(entries)
    fanout = [0] * 256
    for key, _, _ in entries:
        fanout[key[0]] += 1
    total = 0
    for i, n in enumerate(fanout):
        total += n
        fanout[i] = total
    count = len(entries)
    body = b"".join(
        (
            b"\xfftOc",
            struct.pack(">I", 2),
            struct.pack(">256I", *fanout),
            b"".join(key for key, _, _ in entries),
            struct.pack(f">{count}I", *(crc for _, _, crc in entries)),
            struct.pack(f">{count}I", *(offset for _, offset, _ in entries)),
            pack_sum,
        )
    )
    return body + hashlib.sha1(body, usedforsecurity=False).digest()


def _temp_name(folder: Path, prefix: str) -> Path:
    return folder / f"{prefix}{os.getpid()}_{os.urandom(6).hex()}"


def _remove(path: Path) -> None:
    try:
        os.chmod(path, 0o644)
        path.unlink()
    except FileNotFoundError:
        pass


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
