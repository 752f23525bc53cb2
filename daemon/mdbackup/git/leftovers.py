"""Lock files that our own killed process left behind, and only those: told apart by identity.

Git's locks (`index.lock`, `refs/heads/NAME.lock`) are created with
O_CREAT|O_EXCL, written, and renamed over the file they guard. A kill -9 (or power
cut) in between leaves the `.lock`, and every git command then fails with "Another
git process seems to be running". A lock is removed at the next start only when it
is PROVABLY ours; anything else is git's (a user's `git commit` whose editor is
open holds `index.lock` on disk, closed) and is never touched.

Two kinds of proof:

- A lock we create ourselves (`claim`): its identity is recorded BEFORE it exists.
  We create a file in our state folder (`claims/NAME`), record its inode in
  `claims/NAME.json`, and only then hard-link it to the lock's path;
  `link()` fails with EEXIST exactly as O_CREAT|O_EXCL does, so the lock is taken
  atomically or not at all. While our link exists the inode cannot be reused, so
  "the lock is the same file as `claims/NAME`" proves it is ours. A claim may note a
  completion (`note_completion`): a fully written file (the lock itself, or a file of
  ours beside it) belongs at `target` once a condition (e.g. "the branch points at our
  commit") holds; the recovery then finishes the rename instead of dropping the lock.
- A lock libgit2 creates for us (`writing`, around a branch update or a push): the
  marker lists the lock with the exact bytes libgit2 will write into it (the new
  commit id) when they are known; such a lock is removed only when its content is
  exactly those bytes. A lock listed without content is removed only when it was
  created after the marker (older rule, kept for the push's remote-tracking ref).

In every case a lock that any process has open is left alone, and every decision is
made at start, holding mdbackup's repository lock (no other mdbackup runs).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MARKER_NAME = "writing"
CLAIMS = "claims"
_SUFFIX = ".json"


@dataclass(frozen=True)
class Claim:
    """A lock file we created and hold: `fd` is open on it for writing."""

    lock: Path
    own: Path  # our hard link to the same file, in the state folder
    record: Path  # what we recorded about it, before it existed
    fd: int


@dataclass(frozen=True)
class Cleared:
    """One leftover dealt with at start: `removed` (rolled back) or `completed` (renamed
    into place, finishing the write our killed process had made durable)."""

    lock: Path
    action: Literal["removed", "completed"]


# -- claims: locks we create ourselves --------------------------------------------------------


def claim(state_dir: Path, lock: Path) -> Claim:
    """Take `lock` as git does (exclusive creation), its identity recorded first.

    Raises FileExistsError when the lock exists (someone holds it: nothing was
    changed). Raises OSError when our state folder or the lock cannot be written.
    """
    folder = state_dir / CLAIMS
    folder.mkdir(parents=True, exist_ok=True)
    own = folder / lock.name
    record = folder / f"{lock.name}{_SUFFIX}"
    _drop_stale(own, record, lock)
    fd = os.open(own, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        st = os.fstat(fd)
        _write_record(record, {"lock": os.fsdecode(lock), "dev": st.st_dev, "ino": st.st_ino})
        try:
            os.link(own, lock)  # atomic and exclusive: EEXIST when held, like O_EXCL
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise
            # No hard links on this file system: create the lock itself (O_EXCL) and
            # record it after; a kill in between leaves a lock we cannot prove is ours,
            # so it stays (the user is told how to remove it), never the other way round.
            os.close(fd)  # `own` stays, empty: it says "the recorded inode is the proof"
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            st = os.fstat(fd)
            _write_record(record, {"lock": os.fsdecode(lock), "dev": st.st_dev, "ino": st.st_ino})
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(own)
        with contextlib.suppress(OSError):
            os.unlink(record)
        raise
    return Claim(lock=lock, own=own, record=record, fd=fd)


def note_completion(
    held: Claim, *, source: Path | None = None, target: Path, content_id: str, condition: Mapping[str, str]
) -> None:
    """Record that `source` (default: `held.lock` itself) is now fully written (its SHA-1
    trailer is `content_id`) and belongs at `target` once `condition` holds (checked by
    the recovery's callback); the lock is then released."""
    data = _read_record(held.record) or {}
    data.update(
        {
            "source": os.fsdecode(held.lock if source is None else source),
            "target": os.fsdecode(target),
            "sha1": content_id,
            "condition": dict(condition),
        }
    )
    _write_record(held.record, data)


def finish(held: Claim, *, into: Path | None) -> None:
    """Release the lock: rename it over `into` (the write takes effect), or remove it
    (`into` None: rolled back). Then forget the claim."""
    try:
        if into is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(held.lock)
        else:
            os.rename(held.lock, into)
    finally:
        with contextlib.suppress(OSError):
            os.close(held.fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(held.own)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(held.record)


def _drop_stale(own: Path, record: Path, lock: Path) -> None:
    """A claim file left by an earlier process of ours whose lock is gone (or is not ours)
    is only our bookkeeping: drop it. One that is still the lock is a leftover for
    `clear_left_behind`: the lock is held."""
    if not (own.exists() or record.exists()):
        return
    if _is_ours(lock, own, _read_record(record)):
        raise FileExistsError(errno.EEXIST, "left by an interrupted mdbackup", os.fsdecode(lock))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(own)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record)


def _is_ours(lock: Path, own: Path, data: Mapping[str, object] | None) -> bool:
    """True when `lock` is the very file we created: the recorded device and inode are
    its own, and our link to it still exists (or, on a file system without hard links,
    our claim file is still there and the lock has no other name)."""
    try:
        st = os.lstat(lock)
    except FileNotFoundError:
        return False
    if data is None or (data.get("dev"), data.get("ino")) != (st.st_dev, st.st_ino):
        return False
    try:
        mine = os.lstat(own)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino) or st.st_nlink == 1


def _write_record(path: Path, data: Mapping[str, object]) -> None:
    """Write `data` as JSON, whole or not at all (temp file, rename).

    Not fsynced, on purpose (it is on the path of every commit): a kill -9 keeps the
    page cache, so the record is there before the lock, in program order; after a power
    cut a record lost with its lock kept only makes that lock unprovable, so it stays
    (the user is told) and is never removed wrongly.
    """
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(data))
    os.replace(temp, path)


def _read_record(path: Path) -> dict[str, object] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _content_sha1(path: Path) -> str | None:
    """The git-style trailer check of an index-like file: SHA-1 of all but the last 20
    bytes, when it equals those 20 bytes; else None (incomplete or not that format)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < 20 or hashlib.sha1(data[:-20]).digest() != data[-20:]:
        return None
    return data[-20:].hex()


# -- markers: locks libgit2 creates inside a write of ours ------------------------------------


@contextmanager
def writing(state_dir: Path, locks: Sequence[Path], *, content: bytes | None = None) -> Iterator[None]:
    """Mark a write that may create `locks` (libgit2 creates them) for as long as it runs.

    `content`: the exact bytes libgit2 will write into each lock (a ref lock holds the
    new commit id and a newline). Given, a left lock is ours only when it holds exactly
    them; without it, only when it was created after the marker.
    """
    marker = state_dir / MARKER_NAME
    state_dir.mkdir(parents=True, exist_ok=True)
    # A bare path when the content is unknown (the format older versions wrote and read).
    lines = [
        os.fsdecode(lock)
        if content is None
        else json.dumps({"lock": os.fsdecode(lock), "content": content.hex()})
        for lock in locks
    ]
    marker.write_text("".join(f"{line}\n" for line in lines))
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def _marked(line: str) -> tuple[Path, bytes | None]:
    if not line.startswith("{"):
        return Path(line), None  # a bare path: content unknown
    data = json.loads(line)
    content = data.get("content")
    return Path(data["lock"]), None if content is None else bytes.fromhex(content)


# -- at start ---------------------------------------------------------------------------------


def clear_left_behind(
    state_dir: Path, *, condition_holds: Callable[[Mapping[str, str]], bool] = lambda _c: False
) -> list[Cleared]:
    """Finish or remove the locks an interrupted write of ours left; returns what was done.

    A claimed lock that is provably ours and closed is renamed into its target when
    its completion was noted, its content is intact and `condition_holds(condition)`;
    otherwise it is removed (the write is rolled back: the guarded file was never
    replaced). Every other lock is left alone.
    """
    done = _clear_claims(state_dir, condition_holds)
    marker = state_dir / MARKER_NAME
    try:
        started_ns = marker.stat().st_mtime_ns
        listed = marker.read_text().splitlines()
    except FileNotFoundError:
        return done
    for line in listed:
        if not line.strip():
            continue
        lock, content = _marked(line)
        try:
            created_ns = lock.stat().st_mtime_ns
        except FileNotFoundError:
            continue
        if content is not None:
            try:
                mine = lock.read_bytes() == content
            except OSError:
                mine = False
        else:
            mine = created_ns >= started_ns
        if mine and not _open_anywhere(lock):
            lock.unlink(missing_ok=True)
            done.append(Cleared(lock, "removed"))
    marker.unlink(missing_ok=True)
    return done


def _clear_claims(state_dir: Path, condition_holds: Callable[[Mapping[str, str]], bool]) -> list[Cleared]:
    folder = state_dir / CLAIMS
    try:
        records = sorted(p for p in folder.iterdir() if p.name.endswith(_SUFFIX))
    except FileNotFoundError:
        return []
    done = []
    for record in records:
        own = folder / record.name.removesuffix(_SUFFIX)
        data = _read_record(record)
        lock = Path(str(data["lock"])) if data and "lock" in data else None
        if lock is not None and _is_ours(lock, own, data) and not _open_anywhere(lock):
            assert data is not None
            target = data.get("target")
            source = Path(str(data.get("source", lock)))
            condition = data.get("condition")
            if (
                isinstance(target, str)
                and isinstance(condition, dict)
                and _content_sha1(source) == data.get("sha1")
                and condition_holds({str(k): str(v) for k, v in condition.items()})
            ):
                os.rename(source, target)
                lock.unlink(missing_ok=True)
                done.append(Cleared(lock, "completed"))
            else:
                lock.unlink(missing_ok=True)
                done.append(Cleared(lock, "removed"))
        own.unlink(missing_ok=True)
        record.unlink(missing_ok=True)
    return done


def _open_anywhere(path: Path) -> bool:
    """True when a process we can see has `path` open (or we cannot tell)."""
    target = os.fsencode(os.path.realpath(path))
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return True  # no /proc: cannot tell, so it is not ours to remove
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's process
        for fd in fds:
            try:
                if os.readlink(os.fsencode(f"/proc/{pid}/fd/{fd}")) == target:
                    return True
            except OSError:
                continue
    return False
