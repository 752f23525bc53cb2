"""When to push, with which credentials, and the push state it leaves.

Owned and called by `Backup` only. Push state is the repository's, apart from the
paths (see `mdbackup.state.repository`); a failed push is retried with backoff from
`push.retry_min` to `push.retry_max` seconds, and a retry pushes whatever the
remote lacks, whether or not anything new was committed.

What the pusher uses (push on/off, remote, remote branch) is recorded with the push
state, so `status` shows what the pushing process did, not its own config. The local
head the remote was last known to have is recorded too: while the push is `success`,
the pusher looks every `push.retry_min` seconds whether the branch moved (a commit
made by hand) and pushes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import pygit2

from mdbackup import logs
from mdbackup.clock import Clock, backoff
from mdbackup.config import Config
from mdbackup.crashpoints import Step
from mdbackup.git import known_hosts_file, transport
from mdbackup.git import push as gitpush
from mdbackup.git.credentials import Credentials
from mdbackup.git.history import commits_ahead, ref_commit
from mdbackup.git.remote_errors import parse_url
from mdbackup.git.repo import head_info
from mdbackup.state.repository import PushTarget, RepositoryState
from mdbackup.statuses import PushStatus

RemoteCheck = gitpush.PushResult


def credentials(
    config: Config, environ: Mapping[str, str] = os.environ, *, repo: pygit2.Repository | None = None
) -> Credentials:
    """Credentials from `[auth]`; secrets are read from the named environment variables
    and registered with the log scrubber before anything can log them. With `repo`, the
    secrets in the push remote's URL user part (`https://TOKEN@host/...`) are registered
    and carried too (`Credentials.url_secrets`)."""
    auth = config.auth
    passphrase = environ.get(auth.ssh_passphrase_env) if auth.ssh_passphrase_env else None
    token = environ.get(auth.token_env) if auth.token_env else None
    found = gitpush.remote_url_secrets(repo, config.push.remote) if repo is not None else ()
    logs.redact(passphrase, token, *found)
    home = transport.home_dir() or Path.home()
    return Credentials(
        ssh_key=Path(auth.ssh_key).expanduser() if auth.ssh_key else None,
        ssh_passphrase=passphrase or None,
        username=auth.username or "git",
        token=token or None,
        ssh_agent="SSH_AUTH_SOCK" in environ,
        default_keys=(home / ".ssh" / "id_ed25519", home / ".ssh" / "id_rsa"),
        url_secrets=found,
        allow_plain_http=auth.allow_plain_http,
    )


_WARNED: set[str] = set()  # known_hosts warnings logged by this process


class Pusher:
    """Pushes one repository's branch as configured and records the push state."""

    def __init__(
        self, *, config: Config, repo: pygit2.Repository, state: RepositoryState, clock: Clock, step: Step
    ) -> None:
        self._config = config
        self._push = config.push
        self._repo = repo
        self._state = state
        self._clock = clock
        self._step = step
        self._next_head_check = clock.wall() + config.push.retry_min
        self.log = logs.get()
        # A token in the remote URL's user part is a secret from the start: before any
        # connection, any log line, any state written.
        logs.redact(*gitpush.remote_url_secrets(repo, self._push.remote))

    def target(self) -> PushTarget:
        """What this pusher uses: push on/off, the remote and the remote branch."""
        return PushTarget(enabled=self._push.enabled, remote=self._push.remote, branch=self._branches()[1])

    def _record_target(self, *, always: bool = False) -> None:
        """Record the target with the push state when it differs from the recorded one."""
        target = self.target()
        state = self._state.push_state()
        recorded = PushTarget(enabled=bool(state.enabled), remote=state.remote or "", branch=state.branch)
        if always or state.enabled is None or recorded != target:
            self._state.record_push_target(target, at=self._clock.wall())

    def _local_head(self) -> str | None:
        local = self._branches()[0]
        oid = ref_commit(self._repo, f"refs/heads/{local}") if local else None
        return None if oid is None else str(oid)

    def _branches(self) -> tuple[str | None, str | None]:
        """(local branch, remote branch); None when HEAD is detached."""
        local = head_info(self._repo).branch
        return local, (self._push.branch or local)

    def committed(self) -> None:
        """A commit was made: the push becomes pending unless it is failed (keeps its backoff)."""
        if self._push.enabled:
            self._state.mark_push_pending(ahead=self._ahead())

    def deadline(self) -> float | None:
        """When a push is due (epoch seconds), or None when none is."""
        if not self._push.enabled:
            return None
        state = self._state.push_state()
        if state.status is PushStatus.PENDING:
            return 0.0
        if state.status is PushStatus.FAILED:
            return state.next_attempt_at or 0.0
        return self._next_head_check  # success: look whether the branch moved by hand

    def push_if_due(self, *, force: bool = False, timeout: float | None = None) -> bool:
        """Push when due (or at once when `force`); True when the remote has our head."""
        self._record_target()
        if not self._push.enabled:
            if self._state.push_state().status is not PushStatus.DISABLED:
                self._state.mark_push_disabled()
            return True
        due = self.deadline()
        now = self._clock.wall()
        if not force and (due is None or due > now):
            return self._state.push_state().status is PushStatus.SUCCESS
        state = self._state.push_state()
        if not force and state.status is PushStatus.SUCCESS:
            self._next_head_check = now + self._push.retry_min
            if state.head == self._local_head():
                return True
            self.log.info("push_head_moved", detail="the branch moved since the last push (a commit by hand)")
            self._state.mark_push_pending(ahead=self._ahead())
        return self._push_now(timeout=timeout)

    def _warn_known_hosts(self, creds: Credentials) -> None:
        """Log each known_hosts line the host-key check skips (malformed), once per process,
        when the remote is reached over SSH."""
        try:
            url = self._repo.remotes[self._push.remote].url or ""
        except (KeyError, ValueError, pygit2.GitError):
            return
        if parse_url(url).scheme != "ssh":
            return
        for path in creds.known_hosts_files():
            for warning in known_hosts_file.read_entries(path)[1]:
                if warning not in _WARNED:
                    _WARNED.add(warning)
                    self.log.warning("known_hosts_line_skipped", detail=warning)

    def _push_now(self, *, timeout: float | None) -> bool:
        """Push what the remote lacks now (network steps bounded by `timeout` seconds,
        default `gitpush.DEFAULT_TIMEOUT`); record and log the outcome."""
        local, remote_branch = self._branches()
        if local is None or remote_branch is None:
            return self._failed("HEAD is detached (not on a branch); nothing to push")
        if self._repo.head_is_unborn:
            self._state.mark_pushed(at=None)
            return True
        head = self._local_head()
        creds = credentials(self._config, repo=self._repo)
        self._warn_known_hosts(creds)
        self._step("push_started")
        result = gitpush.push_branch(
            self._repo,
            remote_name=self._push.remote,
            local_branch=local,
            remote_branch=remote_branch,
            credentials=creds,
            timeout=timeout or gitpush.DEFAULT_TIMEOUT,
            progress=partial(self._step, "pushing"),  # the heartbeat, while libgit2 reports progress
        )
        if not result.ok:
            return self._failed(result.error or "push failed", kind=result.kind)
        self._step("push_done")
        if result.warning:
            self.log.warning("push_warning", warning=result.warning)
        self._state.mark_pushed(at=self._clock.wall(), head=head)
        self._record_target(always=True)
        if result.commits:
            self.log.info(
                "push",
                remote=self._push.remote,
                branch=remote_branch,
                commit=result.pushed_oid,
                commits=result.commits,
            )
        return True

    def _failed(self, error: str, *, kind: str | None = None) -> bool:
        attempts = self._state.push_state().attempts + 1
        retry_in = backoff(attempts, minimum=self._push.retry_min, maximum=self._push.retry_max)
        self._state.mark_push_failed(
            error=logs.scrub(error),
            attempts=attempts,
            next_attempt_at=self._clock.wall() + retry_in,
            ahead=self._ahead(),
        )
        self._record_target(always=True)
        self.log.warning("push_failed", error=error, kind=kind, attempts=attempts, retry_in_s=retry_in)
        return False

    def ahead(self, *, remote: str | None = None, branch: str | None = None) -> int | None:
        """Commits of the local branch that `remote`'s tracking branch `branch` lacks (default:
        this pusher's), counted from the refs now."""
        return self._ahead(remote=remote, branch=branch)

    def _ahead(self, *, remote: str | None = None, branch: str | None = None) -> int | None:
        local, remote_branch = self._branches()
        remote_branch = branch or remote_branch
        if local is None or remote_branch is None:
            return None
        return commits_ahead(
            self._repo,
            local_branch=local,
            tracking_ref=f"refs/remotes/{remote or self._push.remote}/{remote_branch}",
        )

    def summary(self) -> str | None:
        """A few words for systemd's STATUS= line, or None when push is disabled."""
        if not self._push.enabled:
            return None
        state = self._state.push_state()
        if state.status is PushStatus.FAILED:
            return f"failed ({state.last_error})"
        return state.status.value

    def check(self) -> RemoteCheck:
        """For `mdbackup check`: reach the remote in the push direction with the credentials."""
        local, remote_branch = self._branches()
        return gitpush.check_remote(
            self._repo,
            remote_name=self._push.remote,
            remote_branch=remote_branch or local or "",
            credentials=credentials(self._config, repo=self._repo),
        )
