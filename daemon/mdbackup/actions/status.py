"""`status`: what is pending, failed, the last commit and the push state.

`--json` prints the contract's shape; exit 0 when nothing failed, 1 when a path or
the push is failed.

Read-only: the state database is opened with SQLite's `mode=ro` and never created,
written or moved aside. A missing database shows an empty state (with a note on
stderr); a locked one exits 75 and an unreadable or foreign one 1 (2 when it belongs
to another repository), each with one line on stderr.

What is shown is the truth of the processes that act: while a daemon runs, its
recorded effective config (store, push on/off, where it came from); the push state
with the remote and branch the last pushing process used and when; `ahead` counted
from the refs now, so a commit made by hand shows as `pending`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mdbackup.actions.common import daemon_pid, iso_utc
from mdbackup.backup import ERRORS, Backup
from mdbackup.config import Config
from mdbackup.exitcodes import ExitCode
from mdbackup.reading import Snapshot
from mdbackup.state.db import StateLocked, StateOwnedElsewhere, StateUnavailable
from mdbackup.state.repository import DaemonConfig
from mdbackup.statuses import PathStatus, PushStatus, SyncStatus


def report(backup: Backup, *, all_paths: bool) -> dict[str, Any]:
    """The `status --json` document for this repository."""
    config = backup.config
    snapshot = backup.snapshot(all_paths=all_paths)
    head = snapshot.head
    pid = daemon_pid(backup)
    daemon = snapshot.daemon if snapshot.daemon is not None and snapshot.daemon.pid == pid else None
    return {
        "repo": str(config.repo),
        "store": daemon.store if daemon else (config.store_prefix or "."),
        "daemon": {"running": pid is not None, "pid": pid},
        "config": {
            "source": (daemon.source if daemon else (str(config.source) if config.source else None)),
            "from": "daemon" if daemon else "this command",
            "recorded_at": iso_utc(daemon.recorded_at) if daemon else None,
        },
        "paused": snapshot.paused,
        "counts": snapshot.counts,
        "paths": [
            {
                "path": row.path,
                "status": row.status.value,
                "last_backup_at": iso_utc(row.last_backup_at),
                "last_error": row.last_error,
                "attempts": row.attempts,
                "updated_at": iso_utc(row.updated_at),
                "next_attempt_at": iso_utc(row.next_attempt_at),
            }
            for row in snapshot.rows
        ],
        "head": {"branch": head.branch, "commit": head.commit},
        "last_backup_at": iso_utc(snapshot.last_backup_at),
        "push": _push(snapshot, daemon),
        "sync": _sync(snapshot, daemon),
    }


def _sync(snapshot: Snapshot, daemon: DaemonConfig | None) -> dict[str, Any]:
    """The sync as the last syncing process recorded it (this command's config when nothing
    was recorded); `behind`/`ahead` from the refs now."""
    sync = snapshot.sync
    recorded = sync is not None and sync.enabled is not None
    enabled = bool(sync.enabled) if sync is not None and recorded else snapshot.sync_enabled
    if daemon is not None and sync is not None and not recorded:
        enabled = False  # a running daemon that never recorded a sync has it off
    status = sync.status if sync is not None and recorded and enabled else SyncStatus.DISABLED
    if enabled and status is SyncStatus.DISABLED:
        status = SyncStatus.IDLE  # on, but nothing fetched yet
    behind = snapshot.behind if enabled else 0
    if enabled and status is SyncStatus.IDLE and behind:
        status = SyncStatus.BEHIND  # fetched, not yet merged
    return {
        "enabled": enabled,
        "status": status.value,
        "last_fetch_at": iso_utc(sync.last_fetch_at) if sync is not None else None,
        "behind": behind or 0,
        "ahead": (snapshot.sync_ahead or 0) if enabled else 0,
        "conflicts": list(sync.conflicts) if sync is not None and enabled else [],
        "blocked_by": sync.blocked_by if sync is not None and status is SyncStatus.BLOCKED else None,
        "last_error": sync.last_error if sync is not None and status is SyncStatus.FAILED else None,
    }


def _push(snapshot: Snapshot, daemon: DaemonConfig | None) -> dict[str, Any]:
    """The push as the last pushing process recorded it (a running daemon's setting wins
    for on/off; this command's config only when nothing was recorded), `ahead` from the
    refs now."""
    push = snapshot.push
    own = snapshot.push_target
    recorded = push.enabled is not None
    enabled = daemon.push_enabled if daemon else (bool(push.enabled) if recorded else own.enabled)
    remote = push.remote if recorded and push.remote else own.remote
    branch = (push.branch if recorded else own.branch) or snapshot.head.branch
    status = push.status if enabled else PushStatus.DISABLED
    ahead = snapshot.ahead if enabled else None
    if enabled and status in (PushStatus.SUCCESS, PushStatus.DISABLED) and ahead:
        status = PushStatus.PENDING  # a commit the pusher has not seen yet (made by hand)
    return {
        "enabled": enabled,
        "remote": remote,
        "branch": branch,
        "status": status.value,
        "ahead": ahead,
        "last_push_at": iso_utc(push.last_push_at),
        "last_error": push.last_error if status is PushStatus.FAILED else None,
        "next_attempt_at": iso_utc(push.next_attempt_at) if status is PushStatus.FAILED else None,
        "recorded_at": iso_utc(push.recorded_at),
        "recorded_by": "daemon" if daemon else ("last pushing process" if recorded else "this command"),
    }


def exit_code(doc: dict[str, Any]) -> ExitCode:
    failed = doc["counts"][PathStatus.FAILED.value] > 0 or doc["push"]["status"] == "failed"
    return ExitCode.FAILED if failed else ExitCode.OK


def _printable(path: str) -> str:
    """A path as text any terminal can print: bytes that are not UTF-8 as `\\xNN`."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def render_text(doc: dict[str, Any]) -> str:
    """A short human summary of `report`'s document."""
    counts = ", ".join(f"{n} {s}" for s, n in doc["counts"].items())
    daemon = doc["daemon"]
    head = doc["head"]
    push = doc["push"]
    commit = (head["commit"] or "none yet")[:12]
    lines = [
        f"repo:    {doc['repo']} (store: {doc['store']})",
        "daemon:  " + (f"running (pid {daemon['pid']})" if daemon["running"] else "not running"),
        "paused:  "
        + ("yes: changes are recorded, nothing is committed (mdbackup resume)" if doc["paused"] else "no"),
        f"head:    {head['branch'] or '(detached)'} {commit}",
        f"paths:   {counts}",
        f"last backup: {doc['last_backup_at'] or 'never'}",
        "push:    " + _push_line(push),
    ]
    if doc.get("sync", {}).get("enabled"):
        lines.append("sync:    " + _sync_line(doc["sync"]))
    rows = doc["paths"]
    if rows:
        lines.append(
            "paths not backed up yet:" if not any(r["status"] == "success" for r in rows) else "paths:"
        )
        for row in rows:
            extra = f" ({row['attempts']} attempts): {row['last_error']}" if row["last_error"] else ""
            lines.append(f"  {row['status']:<8} {_printable(row['path'])}{extra}")
    return "\n".join(lines)


def _push_line(push: dict[str, Any]) -> str:
    if not push["enabled"]:
        return "disabled"
    line = f"{push['status']} to {push['remote']}/{push['branch']}"
    if push["ahead"]:
        line += f", {push['ahead']} commit(s) ahead"
    if push["last_error"]:
        line += f": {push['last_error']} (next try {push['next_attempt_at']})"
    if push["last_push_at"]:
        line += f"; last push {push['last_push_at']}"
    return line


def _sync_line(sync: dict[str, Any]) -> str:
    if not sync["enabled"]:
        return "disabled"
    line = str(sync["status"])
    if sync["behind"] or sync["ahead"]:
        line += f", {sync['behind']} behind, {sync['ahead']} ahead"
    if sync["blocked_by"]:
        line += (
            f": blocked by your change to {sync['blocked_by']} (outside the store; the remote changed it too)"
        )
    if sync["last_error"]:
        line += f": {sync['last_error']}"
    if sync["last_fetch_at"]:
        line += f"; last fetch {sync['last_fetch_at']}"
    if sync["conflicts"]:
        line += "; conflict copies of the last merge: " + ", ".join(sync["conflicts"])
    return line


def status(config: Config, args: argparse.Namespace) -> int:
    try:
        backup = Backup.open(config, read_only=True)
    except StateOwnedElsewhere as exc:
        print(f"mdbackup: [state] db: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except StateLocked as exc:
        print(f"mdbackup: {exc}; try again later", file=sys.stderr)
        return ExitCode.BUSY
    except StateUnavailable as exc:
        print(f"mdbackup: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    try:
        doc = report(backup, all_paths=args.all)
    except ERRORS as exc:  # locked or damaged after it opened
        print(f"mdbackup: cannot read the state database: {_one_line(exc)}", file=sys.stderr)
        return ExitCode.BUSY if "locked" in str(exc).lower() else ExitCode.FAILED
    finally:
        backup.close()
    if backup.state_note:
        print(f"mdbackup: {backup.state_note}", file=sys.stderr)
    print(json.dumps(doc, indent=2) if args.json else render_text(doc))
    return exit_code(doc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
