"""`status`: what is pending, failed, the last commit and the push state.

`--json` prints the contract's shape; exit 0 when nothing failed, 1 when a path or
the push is failed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mdbackup.actions.common import daemon_pid, iso_utc
from mdbackup.backup import Backup
from mdbackup.config import Config
from mdbackup.exitcodes import ExitCode
from mdbackup.statuses import PathStatus, PushStatus


def report(backup: Backup, *, all_paths: bool) -> dict[str, Any]:
    """The `status --json` document for this repository."""
    config = backup.config
    snapshot = backup.snapshot(all_paths=all_paths)
    head = snapshot.head
    pid = daemon_pid(backup)
    push = snapshot.push
    push_status = push.status if config.push.enabled else PushStatus.DISABLED
    return {
        "repo": str(config.repo),
        "store": config.store_prefix or ".",
        "daemon": {"running": pid is not None, "pid": pid},
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
        "push": {
            "enabled": config.push.enabled,
            "remote": config.push.remote,
            "branch": config.push.branch or head.branch,
            "status": push_status.value,
            "ahead": push.ahead if config.push.enabled else None,
            "last_push_at": iso_utc(push.last_push_at),
            "last_error": push.last_error if config.push.enabled else None,
            "next_attempt_at": iso_utc(push.next_attempt_at) if config.push.enabled else None,
        },
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


def status(config: Config, args: argparse.Namespace) -> int:
    backup = Backup.open(config)
    try:
        doc = report(backup, all_paths=args.all)
    finally:
        backup.close()
    print(json.dumps(doc, indent=2) if args.json else render_text(doc))
    return exit_code(doc)
