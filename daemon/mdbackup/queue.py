"""The durable path queue and repository state, in SQLite through peewee.

The database is a cache of what git and the working tree say: deleting it loses
nothing, the next scan rebuilds it. The models are built per `Queue` and bound to
the database given at run time, so several queues (tests, a `status` beside the
daemon) never share global state.

Every change recorded bumps the path's `generation`. A batch remembers the
generation it took; when the batch is finished, a path whose generation moved on
goes back to pending, so a change that lands while its path is being committed
is never lost.

Read-then-write transactions are `BEGIN IMMEDIATE` (see LIBRARY-NOTES: plain
deferred transactions fail under contention even with busy_timeout).

Paths are stored as text. A file name that is not valid UTF-8 reaches us as a
`str` with surrogate escapes (os.fsdecode), which SQLite text cannot hold: it is
stored as `/` plus its bytes with `%` escapes (`/notes/caf%E9.md`); no real path
starts with `/`, so the form is unambiguous and `rows()` gives back the original.

A state database that SQLite finds corrupt (not a database, malformed) is moved
aside as `state.db.corrupt-<UTC time>` (with its -wal and -shm) and a new one is
made: the database is only a cache, the next scan rebuilds it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_to_bytes

import peewee as pw

from mdbackup import logs
from mdbackup.statuses import PathStatus, PushStatus

_IN_CLAUSE_CHUNK = 500  # stays below SQLite's host parameter limit


def _status_check(column: str, values: Iterable[str]) -> pw.SQL:
    listed = ", ".join(f"'{v}'" for v in values)
    return pw.Check(f"{column} IN ({listed})")


@dataclass(frozen=True)
class BatchItem:
    path: str
    generation: int
    first_seen_at: float | None = None


@dataclass(frozen=True)
class Batch:
    """Paths taken for one commit, with the generation each had when taken."""

    items: tuple[BatchItem, ...]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(item.path for item in self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Outcome:
    """What happened to one path of a batch.

    `status` is SUCCESS (committed, or nothing to commit), FAILED (with `error`),
    or PENDING (deferred: git was busy; no attempt counted). `forget` drops the row
    (the path is not one we back up, e.g. ignored by .gitignore).
    """

    status: PathStatus
    error: str | None = None
    forget: bool = False


SUCCESS = Outcome(PathStatus.SUCCESS)
DEFERRED = Outcome(PathStatus.PENDING)
FORGET = Outcome(PathStatus.SUCCESS, forget=True)


@dataclass(frozen=True)
class PathRow:
    path: str
    status: PathStatus
    generation: int
    first_seen_at: float | None
    last_event_at: float | None
    last_backup_at: float | None
    last_error: str | None
    attempts: int
    next_attempt_at: float | None
    updated_at: float


@dataclass(frozen=True)
class PushState:
    status: PushStatus
    last_push_at: float | None
    last_error: str | None
    next_attempt_at: float | None
    attempts: int
    ahead: int | None


@dataclass(frozen=True)
class Window:
    """What the worker needs to know to sleep until the next batch is due.

    Times are epoch seconds; None when there is no such path.
    """

    pending: int
    newest_event_at: float | None
    oldest_change_at: float | None
    next_retry_at: float | None


_RAW_PATH_MARK = "/"  # starts the stored form of a path that is not valid UTF-8
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_CORRUPT_MESSAGES = ("file is not a database", "malformed", "database corrupt")


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
        if isinstance(current, (sqlite3.DatabaseError, pw.DatabaseError)) and any(
            m in str(current).lower() for m in _CORRUPT_MESSAGES
        ):
            return True
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


class StateCorrupt(Exception):
    """The state database failed its integrity check."""


_RECORD_SQL = """
INSERT INTO paths (path, status, generation, first_seen_at, last_event_at, attempts, updated_at)
VALUES (?1, ?2, 1, ?3, ?3, 0, ?3)
ON CONFLICT(path) DO UPDATE SET
    status = CASE WHEN status = 'queued' THEN status ELSE excluded.status END,
    generation = generation + 1,
    last_event_at = excluded.last_event_at,
    first_seen_at = COALESCE(first_seen_at, excluded.first_seen_at),
    next_attempt_at = NULL,
    updated_at = excluded.updated_at
"""


def backoff(attempts: int, *, minimum: float, maximum: float) -> float:
    """Seconds to wait after the `attempts`-th consecutive failure (1, 2, ...)."""
    return min(maximum, minimum * (2 ** max(0, attempts - 1)))


class Queue:
    """The path queue of one repository, stored in the SQLite file `db_path`."""

    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.path = db_path
        self.moved_aside: Path | None = None  # where a corrupt database went, if one did
        try:
            self._open()
        except (pw.DatabaseError, sqlite3.DatabaseError, StateCorrupt) as exc:
            if not (isinstance(exc, StateCorrupt) or is_corruption(exc)):
                raise
            self.close()
            self.moved_aside = _move_aside(db_path)
            logs.get().error(
                "state_db_corrupt",
                path=str(db_path),
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
            pragmas={"journal_mode": "wal", "synchronous": "normal", "busy_timeout": 10000},
        )
        self._define_models()
        with self.db.connection_context():
            verdict = self.db.execute_sql("PRAGMA quick_check(1)").fetchone()
            if verdict is None or verdict[0] != "ok":
                raise StateCorrupt(f"integrity check failed: {verdict[0] if verdict else 'no answer'}")
            self.db.create_tables([self.PathRecord, self.RepoRecord], safe=True)
            self.RepoRecord.insert(id=1).on_conflict_ignore().execute()

    def _define_models(self) -> None:
        db = self.db

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
                default=PushStatus.DISABLED.value,
                constraints=[_status_check("push_status", PushStatus)],
            )
            push_last_push_at = pw.FloatField(null=True)
            push_last_error = pw.TextField(null=True)
            push_next_attempt_at = pw.FloatField(null=True)
            push_attempts = pw.IntegerField(default=0)
            push_ahead = pw.IntegerField(null=True)

            class Meta:
                database = db
                table_name = "repository"

        self.PathRecord = PathRecord
        self.RepoRecord = RepoRecord

    def close(self) -> None:
        """Close this thread's connection (other threads' close with them)."""
        if not self.db.is_closed():
            self.db.close()

    # -- recording -----------------------------------------------------------------

    def record(self, paths: Iterable[str], *, now: float, disabled: bool = False) -> int:
        """Record a change to each path: pending (or disabled), generation + 1.

        A path being committed right now stays queued; its bumped generation sends
        it back to pending when its batch finishes. A failed path becomes due now.
        Returns how many paths were recorded.
        """
        status = PathStatus.DISABLED if disabled else PathStatus.PENDING
        rows = [(path_to_db(p), status.value, now) for p in dict.fromkeys(paths)]
        if not rows:
            return 0
        # One prepared upsert run for every row (executemany): a 10,000-file burst is
        # recorded in ~0.2 s where a peewee insert_many per 100 rows took over 1 s.
        with self.db.atomic("IMMEDIATE"):
            self.db.connection().executemany(_RECORD_SQL, rows)
        return len(rows)

    def requeue_interrupted(self, *, now: float) -> int:
        """Paths left `queued` by a crash go back to pending. Returns how many."""
        return self._move_status(PathStatus.QUEUED, PathStatus.PENDING, now=now)

    def enable_disabled(self, *, now: float) -> int:
        """Paths recorded while commits were disabled become pending."""
        return self._move_status(PathStatus.DISABLED, PathStatus.PENDING, now=now)

    def _move_status(self, old: PathStatus, new: PathStatus, *, now: float) -> int:
        R = self.PathRecord
        with self.db.atomic("IMMEDIATE"):
            return R.update(status=new.value, updated_at=now).where(R.status == old.value).execute()

    # -- batches ---------------------------------------------------------------------

    def take_batch(self, *, now: float, include_failed_early: bool = False) -> Batch:
        """Mark every due path queued and return them with their generations.

        Due: pending, or failed whose `next_attempt_at` has come (any failed path
        when `include_failed_early`). Done in one IMMEDIATE transaction.
        """
        R = self.PathRecord
        due_failed = R.status == PathStatus.FAILED.value
        if not include_failed_early:
            due_failed &= (R.next_attempt_at.is_null()) | (R.next_attempt_at <= now)
        condition = (R.status == PathStatus.PENDING.value) | due_failed
        with self.db.atomic("IMMEDIATE"):
            rows = list(
                R.select(R.path, R.generation, R.first_seen_at).where(condition).order_by(R.path).tuples()
            )
            for chunk in pw.chunked([stored for stored, _, _ in rows], _IN_CLAUSE_CHUNK):
                R.update(status=PathStatus.QUEUED.value, updated_at=now).where(R.path.in_(chunk)).execute()
        return Batch(
            tuple(
                BatchItem(path_from_db(stored), generation, first_seen)
                for stored, generation, first_seen in rows
            )
        )

    def finish_batch(
        self,
        batch: Batch,
        outcomes: Mapping[str, Outcome],
        *,
        now: float,
        retry_min: float,
        retry_max: float,
    ) -> None:
        """Apply each path's outcome, in one IMMEDIATE transaction.

        A path whose generation moved on since `take_batch` goes back to pending
        (its newest content is not in the commit); `last_backup_at` still records a
        success. A path missing from `outcomes` is deferred.
        """
        R = self.PathRecord
        with self.db.atomic("IMMEDIATE"):
            current = self._generations_and_attempts(batch.paths)
            # Paths with the same outcome get one UPDATE ... WHERE path IN (...): a
            # batch of 10,000 successes is a handful of statements, not 10,000.
            groups: dict[tuple[Outcome, bool, float], list[str]] = {}
            forgotten: list[str] = []
            for item in batch.items:
                outcome = outcomes.get(item.path, DEFERRED)
                generation, attempts = current.get(item.path, (item.generation, 0))
                changed_since = generation != item.generation
                stored = path_to_db(item.path)
                if outcome.forget and not changed_since:
                    forgotten.append(stored)
                    continue
                retry_after = (
                    backoff(attempts + 1, minimum=retry_min, maximum=retry_max)
                    if outcome.status is PathStatus.FAILED
                    else 0.0
                )
                groups.setdefault((outcome, changed_since, retry_after), []).append(stored)
            for (outcome, changed_since, retry_after), stored_paths in groups.items():
                update = self._outcome_update(
                    outcome, changed_since=changed_since, now=now, retry_after=retry_after
                )
                for chunk in pw.chunked(stored_paths, _IN_CLAUSE_CHUNK):
                    R.update(update).where(R.path.in_(chunk)).execute()
            for chunk in pw.chunked(forgotten, _IN_CLAUSE_CHUNK):
                R.delete().where(R.path.in_(chunk)).execute()

    def _generations_and_attempts(self, paths: Iterable[str]) -> dict[str, tuple[int, int]]:
        R = self.PathRecord
        found: dict[str, tuple[int, int]] = {}
        for chunk in pw.chunked([path_to_db(p) for p in paths], _IN_CLAUSE_CHUNK):
            query = R.select(R.path, R.generation, R.attempts).where(R.path.in_(chunk))
            found.update((path_from_db(stored), (gen, att)) for stored, gen, att in query.tuples())
        return found

    def _outcome_update(
        self,
        outcome: Outcome,
        *,
        changed_since: bool,
        now: float,
        retry_after: float,
    ) -> dict:
        R = self.PathRecord
        update: dict = {R.updated_at: now}
        if outcome.status is PathStatus.SUCCESS:
            update.update(
                {
                    R.last_backup_at: now,
                    R.last_error: None,
                    R.attempts: 0,
                    R.next_attempt_at: None,
                }
            )
        elif outcome.status is PathStatus.FAILED:
            update.update(
                {
                    R.last_error: outcome.error,
                    R.attempts: R.attempts + 1,
                    R.next_attempt_at: now + retry_after,
                }
            )
        if changed_since:
            update.update({R.status: PathStatus.PENDING.value, R.first_seen_at: now})
            if outcome.status is PathStatus.FAILED:
                update[R.next_attempt_at] = None
        elif outcome.status is PathStatus.PENDING:
            update[R.status] = PathStatus.PENDING.value
        else:
            update[R.status] = outcome.status.value
            if outcome.status is PathStatus.SUCCESS:
                update[R.first_seen_at] = None
        return update

    # -- what the worker and `status` read ----------------------------------------------

    def window(self) -> Window:
        """Timing facts of the pending paths and the next failed retry."""
        R = self.PathRecord
        pending = R.status == PathStatus.PENDING.value
        count, newest, oldest = (
            R.select(pw.fn.COUNT(R.path), pw.fn.MAX(R.last_event_at), pw.fn.MIN(R.first_seen_at))
            .where(pending)
            .tuples()
            .get()
        )
        next_retry = (
            R.select(pw.fn.MIN(pw.fn.COALESCE(R.next_attempt_at, 0)))
            .where(R.status == PathStatus.FAILED.value)
            .scalar()
        )
        return Window(
            pending=count, newest_event_at=newest, oldest_change_at=oldest, next_retry_at=next_retry
        )

    def counts(self) -> dict[str, int]:
        """Number of paths in each status (every status present, zero included)."""
        R = self.PathRecord
        counts = {s.value: 0 for s in PathStatus}
        for status, n in R.select(R.status, pw.fn.COUNT(R.path)).group_by(R.status).tuples():
            counts[status] = n
        return counts

    def rows(self, *, include_success: bool = False) -> list[PathRow]:
        """Tracked paths sorted by path; only those not `success` unless asked."""
        R = self.PathRecord
        query = R.select().order_by(R.path)
        if not include_success:
            query = query.where(R.status != PathStatus.SUCCESS.value)
        return [
            PathRow(
                path=path_from_db(r.path),
                status=PathStatus(r.status),
                generation=r.generation,
                first_seen_at=r.first_seen_at,
                last_event_at=r.last_event_at,
                last_backup_at=r.last_backup_at,
                last_error=r.last_error,
                attempts=r.attempts,
                next_attempt_at=r.next_attempt_at,
                updated_at=r.updated_at,
            )
            for r in query
        ]

    def last_backup_at(self) -> float | None:
        R = self.PathRecord
        return R.select(pw.fn.MAX(R.last_backup_at)).scalar()

    def retry_failed(self, *, now: float) -> int:
        """Failed paths become pending and due now. Returns how many."""
        R = self.PathRecord
        with self.db.atomic("IMMEDIATE"):
            return (
                R.update(status=PathStatus.PENDING.value, next_attempt_at=None, updated_at=now)
                .where(R.status == PathStatus.FAILED.value)
                .execute()
            )

    # -- repository state ------------------------------------------------------------------

    def paused(self) -> bool:
        return bool(self.RepoRecord.get_by_id(1).paused)

    def set_paused(self, paused: bool) -> None:
        with self.db.atomic("IMMEDIATE"):
            self.RepoRecord.update(paused=paused).where(self.RepoRecord.id == 1).execute()

    def push_state(self) -> PushState:
        r = self.RepoRecord.get_by_id(1)
        return PushState(
            status=PushStatus(r.push_status),
            last_push_at=r.push_last_push_at,
            last_error=r.push_last_error,
            next_attempt_at=r.push_next_attempt_at,
            attempts=r.push_attempts,
            ahead=r.push_ahead,
        )

    def set_push_state(self, **fields: object) -> None:
        """Update the push columns named without their `push_` prefix (status, ahead, ...)."""
        values = {f"push_{k}": (v.value if isinstance(v, PushStatus) else v) for k, v in fields.items()}
        with self.db.atomic("IMMEDIATE"):
            self.RepoRecord.update(**values).where(self.RepoRecord.id == 1).execute()

    def retry_push(self) -> bool:
        """A failed push becomes pending and due now. True when it was failed."""
        R = self.RepoRecord
        with self.db.atomic("IMMEDIATE"):
            return bool(
                R.update(push_status=PushStatus.PENDING.value, push_next_attempt_at=None)
                .where((R.id == 1) & (R.push_status == PushStatus.FAILED.value))
                .execute()
            )


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
            pass
    return target


def now() -> float:
    """The queue's clock: epoch seconds."""
    return time.time()
