"""`check`: validate the config, open the repository, reach the remote; commits nothing.

Exit 0 when everything is fine, 1 when something is not (each line says what and
how to fix it); a config error has already exited 2 before this runs. The state
database is opened read-only (a missing one is fine: nothing recorded yet); one that
belongs to another repository is a configuration error (2).
"""

from __future__ import annotations

import argparse
import os

from mdbackup.backup import HOOKS_NOT_RUN, Backup
from mdbackup.config import Config
from mdbackup.exitcodes import ExitCode
from mdbackup.git import repo as gitrepo
from mdbackup.git import transport
from mdbackup.logs import scrub
from mdbackup.state.db import StateOwnedElsewhere, StateUnavailable


def check(config: Config, _args: argparse.Namespace) -> int:
    print(f"config: ok ({config.source or 'defaults'})")
    try:
        backup = Backup.open(config, read_only=True)  # check changes nothing, the database neither
    except gitrepo.NotAWorkTree as exc:
        print(f"repository: {exc}")
        return ExitCode.FAILED
    except StateOwnedElsewhere as exc:
        print(f"state: [state] db: {exc}")
        return ExitCode.USAGE
    except StateUnavailable as exc:
        print(f"state: {exc}")
        return ExitCode.FAILED
    try:
        return _check_repository(backup)
    finally:
        backup.close()


def _check_repository(backup: Backup) -> int:
    config = backup.config
    facts = backup.repository_facts()
    if facts.head.detached:
        print(f"repository: {config.repo}: HEAD is detached; check out a branch to resume backups")
        return ExitCode.FAILED
    print(
        f"repository: ok ({config.repo}, branch {facts.head.branch}"
        + (f"; busy now: {facts.busy}, commits wait until it is done" if facts.busy else "")
        + ")"
    )
    if facts.hooks:
        print(f"hooks: {', '.join(facts.hooks)} installed, not run for backup commits ({HOOKS_NOT_RUN})")
    transport.configure(ca_file=os.environ.get("SSL_CERT_FILE"), ca_dir=os.environ.get("SSL_CERT_DIR"))
    synced = _check_sync(backup)
    if not config.push.enabled:
        print("remote: push disabled")
        return ExitCode.OK if synced else ExitCode.FAILED
    remote_branch = config.push.branch or facts.head.branch or ""
    result = backup.check_remote()
    if not result.ok:
        print(f"remote: {scrub(result.error or 'unreachable')}")
        return ExitCode.FAILED
    where = (
        f"{remote_branch} at {result.remote_before[:12]}"
        if result.remote_before
        else f"{remote_branch} not there yet (the first push creates it)"
    )
    print(f"remote: ok ({config.push.remote}, {where})")
    return ExitCode.OK if synced else ExitCode.FAILED


def _check_sync(backup: Backup) -> bool:
    """With sync on: fetch and say whether a merge would conflict or be blocked."""
    if not backup.config.sync.enabled:
        return True
    ok, line = backup.check_sync()
    print(f"sync: {scrub(line)}")
    return ok
