"""`run`: the daemon, or with `--once` one pass (scan, commit, push) and exit."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from mdbackup import crashpoints, logs, reading
from mdbackup.backup import ERRORS, Backup
from mdbackup.clock import Heartbeat
from mdbackup.config import Config, Overrides
from mdbackup.exitcodes import ExitCode
from mdbackup.git import transport
from mdbackup.git.layout import lock_path
from mdbackup.git.repo import NotAWorkTree, UnsupportedRepository
from mdbackup.lock import LockBusy, RepositoryLock
from mdbackup.state.db import StateOwnedElsewhere


def run(config: Config, args: argparse.Namespace) -> int:
    """Take the repository lock first, then open the state database under it: nothing
    here creates, writes or moves aside the database while another process runs."""
    transport.configure(ca_file=os.environ.get("SSL_CERT_FILE"), ca_dir=os.environ.get("SSL_CERT_DIR"))
    heartbeat = Heartbeat()  # the daemon's liveness: beaten at every step of a commit or push
    try:
        git_dir = reading.locate(config)
    except NotAWorkTree as exc:
        print(f"mdbackup: --repo: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        lock = RepositoryLock.acquire(lock_path(git_dir))
    except LockBusy as exc:
        print(f"mdbackup: {exc}", file=sys.stderr)
        return ExitCode.BUSY
    except OSError as exc:
        print(f"mdbackup: cannot take the lock {lock_path(git_dir)}: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    try:
        return _run_locked(config, args, heartbeat)
    finally:
        lock.release()


def _run_locked(config: Config, args: argparse.Namespace, heartbeat: Heartbeat) -> int:
    try:
        backup = Backup.open(config, step=crashpoints.from_environ(os.environ, on_step=heartbeat.beat))
    except NotAWorkTree as exc:
        print(f"mdbackup: --repo: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except StateOwnedElsewhere as exc:
        print(f"mdbackup: [state] db: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except UnsupportedRepository as exc:
        print(f"mdbackup: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except ERRORS as exc:  # full disk, read-only .git, ...
        print(
            f"mdbackup: cannot open the state database in {config.repo}: {exc}" + _space_hint(config.repo),
            file=sys.stderr,
        )
        return ExitCode.FAILED
    try:
        if args.once:
            return run_once(backup)
        from mdbackup.service import Service  # the long-running parts only when needed

        backup.serving(pid=os.getpid())
        overrides = Overrides(repo=args.repo, store=args.store, push=args.push)
        return Service(backup, config_path=config.source, overrides=overrides, heartbeat=heartbeat).run()
    finally:
        backup.close()


def _space_hint(path: Path) -> str:
    """SQLite says only "disk I/O error"; say when the disk is full."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return ""
    return " (No space left on the device)" if free < 1 << 20 else ""


def run_once(backup: Backup) -> int:
    """Recover and commit everything pending (failed paths too) in one commit, push; exit code."""
    if backup.paused():
        logs.get().info("paused", detail="commits nothing while paused; `mdbackup resume` to resume")
        print("mdbackup: paused; nothing committed (run `mdbackup resume`)", file=sys.stderr)
        return ExitCode.OK
    report, pushed = backup.recover(reason="once")
    if report.busy:
        print(f"mdbackup: git is busy ({report.busy}); changes stay pending", file=sys.stderr)
        return ExitCode.BUSY
    return ExitCode.FAILED if report.failed or not pushed else ExitCode.OK
