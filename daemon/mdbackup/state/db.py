"""The state database's plumbing: open SQLite, bind the models at run time, check
integrity, move a damaged file aside.

The database is a cache of what git and the working tree say: deleting it loses
nothing, the next scan rebuilds it. The models are built per `StateDB` and bound to
the database given at run time, so several databases in one process (tests, a
`status` beside the daemon) never share global state.

A state database that SQLite finds corrupt (not a database, malformed, failed
integrity check) or whose tables are not ours (a valid SQLite file with other tables or
columns: an unknown schema) is moved aside as `state.db.corrupt-<UTC time>` (with its -wal and
-shm) and a new one is made.

Paths are stored as text. A file name that is not valid UTF-8 reaches us as a `str`
with surrogate escapes (os.fsdecode), which SQLite text cannot hold: it is stored as
`/` plus its bytes with `%` escapes (`/notes/caf%E9.md`); no real path starts with
`/`, so the form is unambiguous and `path_from_db` gives back the original.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

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
    """The state database failed its integrity check, or its schema is not ours."""


class StateUnavailable(Exception):
    """A read-only open found no usable database: missing, locked, unreadable or of an
    unknown schema. The message is one line naming the file."""


class StateMissing(StateUnavailable):
    """A read-only open found no database file (nothing was ever recorded)."""


class StateLocked(StateUnavailable):
    """A read-only open found the database locked by another process past the busy timeout."""


class StateOwnedElsewhere(Exception):
    """The database records another repository as its owner (two repositories were
    configured with one `state.db`). The message names the file and both repositories."""

    def __init__(self, path: Path, *, owner: str, other: str) -> None:
        super().__init__(
            f"{path} is the state database of the repository {other}, not of {owner}: "
            "give each repository its own [state] db"
        )
        self.path = path
        self.owner = owner
        self.other = other


ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "repository": {
        "owner": "TEXT",
        "push_enabled": "INTEGER",
        "push_remote": "TEXT",
        "push_branch": "TEXT",
        "push_head": "TEXT",
        "push_recorded_at": "REAL",
        "daemon_pid": "INTEGER",
        "daemon_source": "TEXT",
        "daemon_store": "TEXT",
        "daemon_push_enabled": "INTEGER",
        "daemon_recorded_at": "REAL",
        "sync_enabled": "INTEGER",
        "sync_remote": "TEXT",
        "sync_branch": "TEXT",
        "sync_status": "TEXT",
        "sync_last_fetch_at": "REAL",
        "sync_conflicts": "TEXT",
        "sync_blocked_by": "TEXT",
        "sync_last_error": "TEXT",
        "sync_recorded_at": "REAL",
    }
}
"""Columns added after the first release: an older database gets them added (all
nullable); any other difference of schema moves the file aside."""


def _status_check(column: str, values: Iterable[str]) -> Any:
    listed = ", ".join(f"'{v}'" for v in values)
    return pw.Check(f"{column} IN ({listed})")


class StateDB:
    """One open state database file and its models (`PathRecord`, `RepoRecord`).

    Opening runs a quick integrity check and creates the tables; a damaged file is
    moved aside (`moved_aside` says where) and a new one made.
    """

    def __init__(
        self, path: Path, *, owner: str | None = None, read_only: bool = False, repair: bool = True
    ) -> None:
        """Open `path`. `owner` (the repository's git dir) is recorded in a new database
        and checked in an existing one: a database whose recorded owner is another
        repository that still exists raises StateOwnedElsewhere (one whose owner is gone,
        e.g. a repository moved with its git dir, is adopted). `read_only` opens with
        SQLite's `mode=ro`: nothing is created, written or moved aside, and a missing,
        locked, unreadable or foreign file raises StateUnavailable. Without `repair` (another
        process holds the repository lock and has the file open) a damaged or foreign
        file raises StateCorrupt instead of being moved aside."""
        self.path = path
        self.read_only = read_only
        self.moved_aside: Path | None = None
        self.corruption: str | None = None  # what was wrong with a file moved aside
        if read_only:
            self._open_read_only()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except (pw.DatabaseError, sqlite3.DatabaseError, StateCorrupt) as exc:
            if not (isinstance(exc, StateCorrupt) or is_corruption(exc)):
                raise
            self.close()
            if not repair:
                raise StateCorrupt(f"{path}: {exc}") from exc
            self.moved_aside = _move_aside(path)
            self.corruption = str(exc)
            logs.get().error(
                "state_db_corrupt",
                path=str(path),
                moved_to=str(self.moved_aside),
                error=str(exc),
                detail="the state database is damaged or not ours; it was moved aside and a new "
                "one is built from a scan of the store (nothing in git or the working tree is "
                "lost; the paused flag and failure history start afresh)",
            )
            self._open()
        if owner is not None:
            self._claim(owner)

    def _open_read_only(self) -> None:
        if not self.path.is_file():
            raise StateMissing(f"{self.path}: no state database yet (nothing recorded)")
        self.db = pw.SqliteDatabase(
            f"file:{quote(str(self.path))}?mode=ro",
            uri=True,
            pragmas={"busy_timeout": BUSY_TIMEOUT_MS},
        )
        self.PathRecord, self.RepoRecord = _models(self.db)
        try:
            with self.db.connection_context():
                problem = self._schema_problem(fix=False)
                if problem is None and self.RepoRecord.get_or_none(self.RepoRecord.id == 1) is None:
                    problem = "no repository row"
        except (pw.DatabaseError, sqlite3.DatabaseError) as exc:
            if "locked" in str(exc).lower() or "busy" in str(exc).lower():
                raise StateLocked(f"{self.path}: locked by another process: {exc}") from exc
            raise StateUnavailable(f"{self.path}: cannot read the state database: {exc}") from exc
        if problem is not None:
            fix = "adds them" if problem.startswith("older") else "moves it aside and rebuilds it"
            raise StateUnavailable(f"{self.path}: {problem}; the next `mdbackup run` {fix}")

    def _open(self) -> None:
        self.db = pw.SqliteDatabase(
            str(self.path),
            pragmas={"journal_mode": "wal", "synchronous": "normal", "busy_timeout": BUSY_TIMEOUT_MS},
        )
        self.PathRecord, self.RepoRecord = _models(self.db)
        in_memory = str(self.path) == ":memory:"  # an empty stand-in: keep its one connection
        with contextlib.nullcontext() if in_memory else self.db.connection_context():
            verdict = self.db.execute_sql("PRAGMA quick_check(1)").fetchone()
            if verdict is None or verdict[0] != "ok":
                raise StateCorrupt(f"integrity check failed: {verdict[0] if verdict else 'no answer'}")
            with self.db.atomic("IMMEDIATE"):
                problem = self._schema_problem(fix=True)
                if problem is not None:
                    raise StateCorrupt(problem)
                self.db.create_tables([self.PathRecord, self.RepoRecord], safe=True)
                self.RepoRecord.insert(id=1).on_conflict_ignore().execute()

    def _schema_problem(self, *, fix: bool) -> str | None:
        """What makes the tables that exist not ours (None: ours, or none yet). With `fix`,
        columns of `ADDED_COLUMNS` that an older database lacks are added."""
        tables = {row[0] for row in self.db.execute_sql("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return None
        for model in (self.PathRecord, self.RepoRecord):
            name = model._meta.table_name
            if name not in tables:
                return f"unknown schema: table {name} is missing"
            have = {c.name for c in self.db.get_columns(name)}
            want = {f.column_name for f in model._meta.sorted_fields}
            added = ADDED_COLUMNS.get(name, {})
            if have - want:
                return f"unknown schema: table {name} has columns {sorted(have - want)}"
            missing = want - have
            if missing - set(added):
                return f"unknown schema: table {name} lacks columns {sorted(missing)}"
            if missing and not fix:
                return f"older schema: table {name} lacks columns {sorted(missing)}"
            for column in sorted(missing):
                self.db.execute_sql(f"ALTER TABLE {name} ADD COLUMN {column} {added[column]}")
        return None

    def _claim(self, owner: str) -> None:
        """Record `owner` in a new database; refuse one that belongs to another repository."""
        R = self.RepoRecord
        with self.immediate():
            recorded = R.get_by_id(1).owner
            foreign = recorded not in (None, owner) and os.path.isdir(recorded)
            if recorded != owner and not foreign:
                R.update(owner=owner).where(R.id == 1).execute()
        if foreign:
            self.close()
            raise StateOwnedElsewhere(self.path, owner=owner, other=recorded)

    def owner(self) -> str | None:
        """The git dir of the repository this database belongs to (None: not recorded yet)."""
        with self.db.connection_context():
            row = self.RepoRecord.get_or_none(self.RepoRecord.id == 1)
        return None if row is None else row.owner

    def immediate(self) -> Any:
        """A `BEGIN IMMEDIATE` transaction: read-then-write never fails under contention
        (LIBRARY-NOTES: plain deferred transactions do, even with busy_timeout)."""
        return self.db.atomic("IMMEDIATE")

    def close(self) -> None:
        """Close this thread's connection (other threads' close with them)."""
        if hasattr(self, "db") and not self.db.is_closed():
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
        owner = pw.TextField(null=True)  # the git dir of the repository this database belongs to
        # what the process that last pushed (or decided not to) used, and when
        push_enabled = pw.BooleanField(null=True)
        push_remote = pw.TextField(null=True)
        push_branch = pw.TextField(null=True)
        push_head = pw.TextField(null=True)  # the local head the remote was last known to have
        push_recorded_at = pw.FloatField(null=True)
        # a running daemon's effective config (recorded at start and on reload)
        daemon_pid = pw.IntegerField(null=True)
        daemon_source = pw.TextField(null=True)
        daemon_store = pw.TextField(null=True)
        daemon_push_enabled = pw.BooleanField(null=True)
        daemon_recorded_at = pw.FloatField(null=True)
        # the sync as the process that last fetched recorded it (conflicts: a JSON list)
        sync_enabled = pw.BooleanField(null=True)
        sync_remote = pw.TextField(null=True)
        sync_branch = pw.TextField(null=True)
        sync_status = pw.TextField(null=True)
        sync_last_fetch_at = pw.FloatField(null=True)
        sync_conflicts = pw.TextField(null=True)
        sync_blocked_by = pw.TextField(null=True)
        sync_last_error = pw.TextField(null=True)
        sync_recorded_at = pw.FloatField(null=True)

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
