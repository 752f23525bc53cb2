"""Push orchestration: when to push, with which credentials, and the push state it leaves.

Push state is the repository's, apart from the paths: `disabled`, `success` (the
remote has the local head), `pending` (local is ahead, a push is due), `failed`
(`last_error`, `next_attempt_at`; retried with backoff). A retry pushes whatever
the remote lacks, whether or not anything new was committed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pygit2

from mdbackup import crashpoints, logs
from mdbackup.config import Config
from mdbackup.git import leftovers
from mdbackup.git import push as gitpush
from mdbackup.git import repo as gitrepo
from mdbackup.git.credentials import Credentials
from mdbackup.git.layout import state_dir
from mdbackup.git.repo import commits_ahead, head_info
from mdbackup.queue import Queue, backoff
from mdbackup.statuses import PushStatus


def use_extra_ca(environ: Mapping[str, str] = os.environ) -> None:
    """HTTPS trusts the system CA store; `SSL_CERT_FILE` / `SSL_CERT_DIR` add CAs
    (a self-hosted server's own CA), as they do for OpenSSL-based tools."""
    cafile, capath = environ.get("SSL_CERT_FILE"), environ.get("SSL_CERT_DIR")
    if cafile or capath:
        pygit2.settings.set_ssl_cert_locations(cafile, capath)


def credentials(config: Config, environ: Mapping[str, str] = os.environ) -> Credentials:
    """Credentials from `[auth]`; secrets are read from the named environment variables
    and registered with the log scrubber before anything can log them."""
    auth = config.auth
    passphrase = environ.get(auth.ssh_passphrase_env) if auth.ssh_passphrase_env else None
    token = environ.get(auth.token_env) if auth.token_env else None
    logs.redact(passphrase, token)
    home = Path(pygit2.settings.homedir or Path.home())
    return Credentials(
        ssh_key=Path(auth.ssh_key).expanduser() if auth.ssh_key else None,
        ssh_passphrase=passphrase or None,
        username=auth.username or "git",
        token=token or None,
        ssh_agent="SSH_AUTH_SOCK" in environ,
        default_keys=(home / ".ssh" / "id_ed25519", home / ".ssh" / "id_rsa"),
    )


class Pusher:
    """Pushes one repository's branch as configured and records the push state."""

    def __init__(self, *, config: Config, repo: pygit2.Repository, queue: Queue) -> None:
        use_extra_ca()
        self.config = config
        self.repo = repo
        self.queue = queue
        self.log = logs.get()

    @property
    def enabled(self) -> bool:
        return self.config.push.enabled

    def branches(self) -> tuple[str | None, str | None]:
        """(local branch, remote branch); None when HEAD is detached."""
        local = head_info(self.repo).branch
        return local, (self.config.push.branch or local)

    def committed(self) -> None:
        """A commit was made: the push becomes pending unless it is failed (keeps its backoff)."""
        if not self.enabled:
            return
        state = self.queue.push_state()
        fields: dict[str, object] = {"ahead": self._ahead()}
        if state.status is not PushStatus.FAILED:
            fields["status"] = PushStatus.PENDING
        self.queue.set_push_state(**fields)

    def deadline(self) -> float | None:
        """When a push is due (epoch seconds), or None when none is."""
        if not self.enabled:
            return None
        state = self.queue.push_state()
        if state.status is PushStatus.PENDING:
            return 0.0
        if state.status is PushStatus.FAILED:
            return state.next_attempt_at or 0.0
        return None

    def push_if_due(self, *, now: float, force: bool = False, timeout: float | None = None) -> bool:
        """Push when due (or at once when `force`); True when the remote has our head."""
        if not self.enabled:
            if self.queue.push_state().status is not PushStatus.DISABLED:
                self.queue.set_push_state(status=PushStatus.DISABLED, ahead=None)
            return True
        due = self.deadline()
        if not force and (due is None or due > now):
            return self.queue.push_state().status is PushStatus.SUCCESS
        return self.push(now=now, timeout=timeout)

    def push(self, *, now: float, timeout: float | None = None) -> bool:
        """Push what the remote lacks now (network steps bounded by `timeout` seconds,
        default 60); record and log the outcome."""
        local, remote_branch = self.branches()
        if local is None or remote_branch is None:
            return self._failed(now, "HEAD is detached (not on a branch); nothing to push")
        if self.repo.head_is_unborn:
            self.queue.set_push_state(status=PushStatus.SUCCESS, ahead=0, last_error=None)
            return True
        crashpoints.reach("push_started")
        tracking_lock = (
            gitrepo.git_dir(self.repo)
            / "refs"
            / "remotes"
            / self.config.push.remote
            / f"{remote_branch}.lock"
        )
        with leftovers.writing(state_dir(gitrepo.git_dir(self.repo)), [tracking_lock]):
            result = gitpush.push_branch(
                self.repo,
                remote_name=self.config.push.remote,
                local_branch=local,
                remote_branch=remote_branch,
                credentials=credentials(self.config),
                timeout=timeout or gitpush.DEFAULT_TIMEOUT,
            )
        if not result.ok:
            return self._failed(now, result.error or "push failed", kind=result.kind)
        crashpoints.reach("push_done")
        if result.warning:
            self.log.warning("push_warning", warning=result.warning)
        self.queue.set_push_state(
            status=PushStatus.SUCCESS,
            last_push_at=now,
            last_error=None,
            next_attempt_at=None,
            attempts=0,
            ahead=0,
        )
        if result.commits:
            self.log.info(
                "push",
                remote=self.config.push.remote,
                branch=remote_branch,
                commit=result.pushed_oid,
                commits=result.commits,
            )
        return True

    def _failed(self, now: float, error: str, *, kind: str | None = None) -> bool:
        state = self.queue.push_state()
        attempts = state.attempts + 1
        retry_in = backoff(attempts, minimum=self.config.push.retry_min, maximum=self.config.push.retry_max)
        self.queue.set_push_state(
            status=PushStatus.FAILED,
            last_error=logs.scrub(error),
            attempts=attempts,
            next_attempt_at=now + retry_in,
            ahead=self._ahead(),
        )
        self.log.warning("push_failed", error=error, kind=kind, attempts=attempts, retry_in_s=retry_in)
        return False

    def _ahead(self) -> int | None:
        local, remote_branch = self.branches()
        if local is None or remote_branch is None:
            return None
        return commits_ahead(
            self.repo,
            local_branch=local,
            tracking_ref=f"refs/remotes/{self.config.push.remote}/{remote_branch}",
        )

    def summary(self) -> str | None:
        """A few words for systemd's STATUS= line, or None when push is disabled."""
        if not self.enabled:
            return None
        state = self.queue.push_state()
        if state.status is PushStatus.FAILED:
            return f"failed ({state.last_error})"
        return state.status.value
