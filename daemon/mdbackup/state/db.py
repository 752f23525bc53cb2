"""The state database's plumbing: open SQLite, bind the models at run time, check
integrity, move a damaged file aside.

The database is a cache of what git and the working tree say: deleting it loses
nothing, the next scan rebuilds it. The models are built per `StateDB` and bound to
the database given at run time, so several databases in one process (tests, a
`status` beside the daemon) never share global state.

A state database that SQLite finds corrupt (not a database, malformed, failed
integrity check) is moved aside as `state.db.corrupt-<UTC time>` (with its -wal and
-shm) and a new one is made.

Paths are stored as text. A file name that is not valid UTF-8 reaches us as a `str`
with surrogate escapes (os.fsdecode), which SQLite text cannot hold: it is stored as
`/` plus its bytes with `%` escapes (`/notes/caf%E9.md`); no real path starts with
`/`, so the form is unambiguous and `path_from_db` gives back the original.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import peewee as pw

from mdbackup import logs
from mdbackup.statuses import PathStatus, PushStatus

_RAW_PATH_MARK = "/"  # starts the stored form of a path that is not valid UTF-8
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_CORRUPT_MESSAGES = ("file is not a database", "malformed", "database corrupt")
BUSY_TIMEOUT_MS = 10000


def path_to_db(path: str) -> str:
    """The stored form of a repo-relative path (itself, unless it is not valid UTF-8)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "surrogateescape")
        return _RAW_PATH_MARK + "".join(
            chr(b) if 0x20 <= b < 0x7F and b != 0x25 else f"%{b:02X}" for b in raw
        )
    return path


def path_from_db(stored: str) -> str:
    """The path whose stored form is `stored` (inverse of `path_to_db`)."""
    if stored.startswith(_RAW_PATH_MARK):
        return unquote_to_bytes(stored[len(_RAW_PATH_MARK) :]).decode("utf-8", "surrogateescape")
    return stored


def is_corruption(exc: BaseException) -> bool:
    """True when SQLite says the database file is damaged (not when it is busy, read-only,
    on a full disk, ...)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        code = getattr(current, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return True
        if isinstance(current, sqlite3.DatabaseError | pw.DatabaseError) and any(
            m in str(current).lower() for m in _CORRUPT_MESSAGES
        ):
            return True
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


class StateCorrupt(Exception):
    """The state database failed its integrity check."""


def _status_check(column: str, values: Iterable[str]) -> Any:
    listed = ", ".join(f"'{v}'" for v in values)
    return pw.Check(f"{column} IN ({listed})")


class StateDB:
    """One open state database file and its models (`PathRecord`, `RepoRecord`).

    Opening runs a quick integrity check and creates the tables; a damaged file is
    moved aside (`moved_aside` says where) and a new one made.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.moved_aside: Path | None = None
        self.corruption: str | None = None  # what was wrong with a file moved aside
        try:
            self._open()
        except (pw.DatabaseError, sqlite3.DatabaseError, StateCorrupt) as exc:
            if not (isinstance(exc, StateCorrupt) or is_corruption(exc)):
                raise
            self.close()
            self.moved_aside = _move_aside(path)
            self.corruption = str(exc)
            logs.get().error(
                "state_db_corrupt",
                path=str(path),
                moved_to=str(self.moved_aside),
                error=str(exc),
                detail="the state database is damaged; it was moved aside and a new one is "
                "built from a scan of the store (nothing in git or the working tree is "
                "lost; the paused flag and failure history start afresh)",
            )
            self._open()

    def _open(self) -> None:
        self.db = pw.SqliteDatabase(
            str(self.path),
            pragmas={"journal_mode": "wal", "synchronous": "normal", "busy_timeout": BUSY_TIMEOUT_MS},
        )
        self.PathRecord, self.RepoRecord = _models(self.db)
        with self.db.connection_context():
            verdict = self.db.execute_sql("PRAGMA quick_check(1)").fetchone()
            if verdict is None or verdict[0] != "ok":
                raise StateCorrupt(f"integrity check failed: {verdict[0] if verdict else 'no answer'}")
            self.db.create_tables([self.PathRecord, self.RepoRecord], safe=True)
            self.RepoRecord.insert(id=1).on_conflict_ignore().execute()

    def immediate(self) -> Any:
        """A `BEGIN IMMEDIATE` transaction: read-then-write never fails under contention
        (LIBRARY-NOTES: plain deferred transactions do, even with busy_timeout)."""
        return self.db.atomic("IMMEDIATE")

    def close(self) -> None:
        """Close this thread's connection (other threads' close with them)."""
        if not self.db.is_closed():
            self.db.close()


def _models(db: pw.SqliteDatabase) -> tuple[Any, Any]:
    """The two models, bound to `db`: one row per tracked path, one row for the repository."""

    class PathRecord(pw.Model):
        path = pw.TextField(primary_key=True)
        status = pw.TextField(constraints=[_status_check("status", PathStatus)])
        generation = pw.IntegerField(default=0)
        first_seen_at = pw.FloatField(null=True)
        last_event_at = pw.FloatField(null=True)
        last_backup_at = pw.FloatField(null=True)
        last_error = pw.TextField(null=True)
        attempts = pw.IntegerField(default=0)
        next_attempt_at = pw.FloatField(null=True)
        updated_at = pw.FloatField()

        class Meta:
            database = db
            table_name = "paths"
            indexes = ((("status",), False),)

    class RepoRecord(pw.Model):
        id = pw.IntegerField(primary_key=True)
        paused = pw.BooleanField(default=False)
        push_status = pw.TextField(
            default=PushStatus.DISABLED.value, constraints=[_status_check("push_status", PushStatus)]
        )
        push_last_push_at = pw.FloatField(null=True)
        push_last_error = pw.TextField(null=True)
        push_next_attempt_at = pw.FloatField(null=True)
        push_attempts = pw.IntegerField(default=0)
        push_ahead = pw.IntegerField(null=True)

        class Meta:
            database = db
            table_name = "repository"

    return PathRecord, RepoRecord


def _move_aside(db_path: Path) -> Path:
    """Rename a damaged database (and its -wal/-shm, which belong to it) out of the way."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = db_path.with_name(f"{db_path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = db_path.with_name(f"{db_path.name}.corrupt-{stamp}-{n}")
    for suffix in ("", "-wal", "-shm"):
        try:
            os.replace(f"{db_path}{suffix}", f"{target}{suffix}")
        except FileNotFoundError:
            continue
    return target
