"""`check`: validate the config, open the repository, reach the remote; commits nothing."""

from __future__ import annotations

import argparse

from daemon.config import Config
from daemon.exitcodes import ExitCode
from daemon.git import repo as gitrepo


def check(config: Config, _args: argparse.Namespace) -> int:
    print(f"config: ok ({config.source or 'defaults'})")
    try:
        repo = gitrepo.open_repository(config.repo)
    except gitrepo.NotAWorkTree as exc:
        print(f"repository: {exc}")
        return ExitCode.FAILED
    head = gitrepo.head_info(repo)
    if head.detached:
        print(f"repository: {config.repo}: HEAD is detached; check out a branch")
        return ExitCode.FAILED
    busy = gitrepo.busy_reason(repo)
    print(f"repository: ok ({config.repo}, branch {head.branch}"
          + (f"; busy now: {busy}" if busy else "") + ")")
    if not config.push.enabled:
        print("remote: push disabled")
    return ExitCode.OK
