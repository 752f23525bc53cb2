"""`check`: validate the config, open the repository, reach the remote; commits nothing.

Exit 0 when everything is fine, 1 when something is not (each line says what and
how to fix it); a config error has already exited 2 before this runs.
"""

from __future__ import annotations

import argparse

from mdbackup.config import Config
from mdbackup.exitcodes import ExitCode
from mdbackup.git import push as gitpush
from mdbackup.git import repo as gitrepo
from mdbackup.logs import scrub
from mdbackup.pushing import credentials


def check(config: Config, _args: argparse.Namespace) -> int:
    print(f"config: ok ({config.source or 'defaults'})")
    try:
        repo = gitrepo.open_repository(config.repo)
    except gitrepo.NotAWorkTree as exc:
        print(f"repository: {exc}")
        return ExitCode.FAILED
    head = gitrepo.head_info(repo)
    if head.detached:
        print(f"repository: {config.repo}: HEAD is detached; check out a branch to resume backups")
        return ExitCode.FAILED
    busy = gitrepo.busy_reason(repo)
    print(
        f"repository: ok ({config.repo}, branch {head.branch}"
        + (f"; busy now: {busy}, commits wait until it is done" if busy else "")
        + ")"
    )
    if not config.push.enabled:
        print("remote: push disabled")
        return ExitCode.OK
    remote_branch = config.push.branch or head.branch or ""
    result = gitpush.check_remote(
        repo, remote_name=config.push.remote, remote_branch=remote_branch, credentials=credentials(config)
    )
    if not result.ok:
        print(f"remote: {scrub(result.error or 'unreachable')}")
        return ExitCode.FAILED
    where = (
        f"{remote_branch} at {result.remote_before[:12]}"
        if result.remote_before
        else f"{remote_branch} not there yet (the first push creates it)"
    )
    print(f"remote: ok ({config.push.remote}, {where})")
    return ExitCode.OK
