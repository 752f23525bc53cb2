"""Fast-forward-only push of one branch with libgit2; never forces, never fetches.

Reads no config and no environment variables: everything comes in as arguments
(`Credentials`), and results are frozen records (`PushResult`).

Safety rules (see docs/ARCHITECTURE.md and the library notes):

- `repo.remotes[name]` is looked up FRESH for every network operation: a
  `Remote` reused after `list_heads()` stays connected and a later push on it
  can overwrite a commit another clone pushed meanwhile.
- Before pushing, the remote's heads are listed (on a fresh Remote); when the
  remote branch's commit is not known locally or is not an ancestor of the
  local head, nothing is pushed (kind "diverged"). The `push_negotiation`
  callback refuses any non-fast-forward update as a second line of defense.
- A server-side rejection (hook, protected branch) only arrives through
  `push_update_reference(refname, message)`: a message means "rejected".
- A path or file:// remote is not pushed through libgit2's local transport (it checks
  for a fast-forward, then writes the ref without comparing again): `local_push`
  writes the objects and moves the branch by compare-and-swap; a lost race is
  "the remote moved while pushing, retry".
- The push writes the remote-tracking ref inside a `leftovers.writing` marker naming
  that ref's lock, so a lock left by a kill is cleared at the next start.
- Time: libgit2's connect and read timeouts come from `timeout` for each call
  (`transport.network_timeouts`); the auth and host-key callbacks abort past the deadline.
- Error strings are one line naming the URL without credentials, scrubbed of the token,
  passphrase and URL user-part secrets (`remote_errors.error_line`, `remote_url_secrets`).
- Credentials stay with their host (`credentials.AuthCallbacks`); a password over plain
  http to a host that is not loopback is refused before connecting.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.remotes import PushUpdate

from mdbackup.git import history, layout, leftovers, local_push, transport
from mdbackup.git.credentials import AuthCallbacks, Credentials, plain_http_refusal, tls_refusal
from mdbackup.git.remote_errors import (
    KIND_AUTH,
    KIND_DIVERGED,
    KIND_ERROR,
    KIND_HOST_KEY,
    KIND_NO_BRANCH,
    KIND_NO_REMOTE,
    KIND_REJECTED,
    Abort,
    Diverged,
    RemoteUrl,
    classify,
    error_line,
    parse_url,
    remote_url_secrets,
)

try:  # the constant lives in the cffi module; 1 in every libgit2 release
    from pygit2.ffi import C as _C

    _DIRECTION_PUSH = int(_C.GIT_DIRECTION_PUSH)
except (ImportError, AttributeError):  # pragma: no cover
    _DIRECTION_PUSH = 1

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True, kw_only=True)
class PushResult:
    """The outcome of a push (or of a check).

    `ok` with `commits == 0` means the remote already had the local head.
    `kind` is None on success, else one of the `remote_errors.KIND_*` values:
    "diverged", "unreachable", "auth", "host-key", "rejected", "no-remote",
    "no-branch", "error". `error` is one line and never contains a secret. For
    "diverged", `behind` is the number of remote commits missing locally (-1: unknown).
    `warning`: the push succeeded, but something beside it did not.
    """

    ok: bool
    pushed_oid: str | None = None
    remote_before: str | None = None
    error: str | None = None
    kind: str | None = None
    commits: int = 0
    behind: int = 0
    warning: str | None = None


@dataclass(frozen=True, kw_only=True)
class _RemoteState:
    """The local head against the remote branch: `ahead` local commits the remote lacks,
    `behind` remote commits the local branch lacks (> 0: diverged; -1: the remote's
    commit is not in the local object database, diverged with the count unknown)."""

    ahead: int
    behind: int


class _PushCallbacks(AuthCallbacks):
    """`AuthCallbacks` plus the push's own: fast-forward-only negotiation against `repo`,
    the remote's per-ref verdicts (`accepted`, `rejections`) and its sideband messages."""

    def __init__(
        self, *, credentials: Credentials, url: RemoteUrl, deadline: float, repo: pygit2.Repository
    ) -> None:
        super().__init__(credentials=credentials, url=url, deadline=deadline)
        self._repo = repo
        self.rejections: dict[str, str] = {}
        self.accepted: set[str] = set()
        self.sideband: list[str] = []

    def push_negotiation(self, updates: list[PushUpdate]) -> None:
        """Refuse (raise `Abort` / `Diverged`) a deletion or any update whose current remote
        commit is not known locally or is not an ancestor of the commit pushed."""
        self.check_deadline()
        for update in updates:
            src, dst = update.src, update.dst
            if dst.raw == b"\0" * len(dst.raw):
                raise Abort(f"refusing to delete {update.dst_refname} on the remote")
            if src.raw == b"\0" * len(src.raw):
                continue  # the branch is new on the remote
            if src == dst:
                continue
            if src not in self._repo:
                raise Diverged(
                    f"remote has diverged: remote branch at {str(src)[:12]} is not in the local branch"
                )
            if not self._repo.descendant_of(dst, src):
                _, behind = self._repo.ahead_behind(dst, src)
                raise Diverged(f"remote has diverged: {_commits(behind)} not in local branch", behind)

    def push_update_reference(self, refname: str, message: str | None) -> None:
        """Record the remote's verdict on `refname`: accepted when `message` is None."""
        if message is None:
            self.accepted.add(refname)
        else:
            self.rejections[refname] = message

    def sideband_progress(self, string: str) -> None:
        """Keep the server's messages. No deadline here: a big transfer may take longer
        than `timeout`; libgit2's read timeout bounds a stalled one."""
        self.sideband.append(string)
        self.progress()

    def remote_messages(self) -> str:
        """The server's sideband output (e.g. a hook's stderr) as one line: its last 5 lines."""
        text = "".join(self.sideband)
        lines = [re.sub(r"\s+", " ", ln).strip() for ln in re.split(r"[\r\n]+", text)]
        return " / ".join([ln for ln in lines if ln][-5:])


def _commits(n: int) -> str:
    """`n` commits in words: "1 commit", "2 commits"."""
    return f"{n} commit" if n == 1 else f"{n} commits"


def _failure(
    kind: str, message: str, credentials: Credentials, *, remote_before: str | None = None, behind: int = 0
) -> PushResult:
    """A failed result of `kind` whose error is `message` made one line without secrets."""
    return PushResult(
        ok=False,
        remote_before=remote_before,
        error=error_line(message, credentials.secrets()),
        kind=kind,
        behind=behind,
    )


def _classify(exc: BaseException, url: RemoteUrl, credentials: Credentials) -> tuple[str, str]:
    """`remote_errors.classify`, except that an https TLS failure libgit2 words as a network
    error (a certificate for another host gives "SSL error: received early EOF") is checked
    again (`transport.tls_problem`) and, when the certificate is at fault, named as such."""
    kind, message = classify(exc, url, known_hosts=credentials.known_hosts_file())
    if url.scheme == "https" and kind != KIND_HOST_KEY and "ssl error" in str(exc).lower():
        port = url.port or 443
        if url.host and transport.tls_problem(url.host, port):
            return KIND_HOST_KEY, tls_refusal(url)
    return kind, message


def _lookup_remote(repo: pygit2.Repository, remote_name: str) -> pygit2.Remote | None:
    """A new `Remote` object for `remote_name` (never cached), or None when there is none."""
    try:
        return repo.remotes[remote_name]
    except (KeyError, ValueError, pygit2.GitError):
        return None


def _remote_url(remote: pygit2.Remote) -> str:
    """The URL a push goes to: `pushurl` when set, else `url`."""
    return remote.push_url or remote.url or ""


def _with_url_secrets(repo: pygit2.Repository, remote_name: str, credentials: Credentials) -> Credentials:
    """`credentials` with the remote URL's secrets added to `url_secrets`."""
    found = remote_url_secrets(repo, remote_name)
    if not found:
        return credentials
    return dataclasses.replace(credentials, url_secrets=tuple(dict.fromkeys(credentials.url_secrets + found)))


def _list_heads(
    repo: pygit2.Repository, remote_name: str, credentials: Credentials, deadline: float
) -> tuple[dict[str, str], RemoteUrl] | PushResult:
    """Connect a FRESH Remote in the push direction and list its refs {name: oid}, with
    the remote's URL; a failed PushResult when there is no such remote or it fails."""
    remote = _lookup_remote(repo, remote_name)
    if remote is None:
        return _failure(KIND_NO_REMOTE, f"no remote named {remote_name!r}", credentials)
    url = parse_url(_remote_url(remote))
    refusal = plain_http_refusal(url, credentials)
    if refusal is not None:
        return _failure(KIND_AUTH, refusal, credentials)
    callbacks = AuthCallbacks(credentials=credentials, url=url, deadline=deadline)
    try:
        with callbacks.libssh2_known_hosts():
            remote.connect(callbacks=callbacks, direction=_DIRECTION_PUSH)
        heads = remote.list_heads(connect=False)
        return {h.name: str(h.oid) for h in heads if h.name}, url
    except Exception as exc:
        kind, message = _classify(exc, url, credentials)
        return _failure(kind, message, credentials)
    finally:
        del remote  # frees the C object: disconnects; never reused for the push


def _state(
    repo: pygit2.Repository,
    local: pygit2.Oid,
    remote_oid: str | None,
    heads: dict[str, str],
    tracking_ref: str,
) -> _RemoteState:
    """Ahead/behind of `local` against `remote_oid`.

    When the remote commit is missing (or unknown locally), `ahead` counts local
    commits reachable from none of the advertised heads known locally nor the
    remote-tracking ref (which libgit2 updates after each push).
    """
    if remote_oid is None or not history.known_commits(repo, [remote_oid]):
        hide = history.known_commits(repo, set(heads.values()))
        tracking = history.ref_commit(repo, tracking_ref)
        if tracking is not None:
            hide.append(tracking)
        ahead = history.count_commits(repo, local, hide)
        return _RemoteState(ahead=ahead, behind=0 if remote_oid is None else -1)
    ahead, behind = repo.ahead_behind(local, pygit2.Oid(hex=remote_oid))
    return _RemoteState(ahead=ahead, behind=behind)


def push_branch(
    repo: pygit2.Repository,
    *,
    remote_name: str,
    local_branch: str,
    remote_branch: str,
    credentials: Credentials,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[], object] = lambda: None,
) -> PushResult:
    """Fast-forward `remote_branch` on the remote to the local branch's head. Never forces.

    Lists the remote's heads first (fresh Remote): a remote branch whose commit
    is unknown locally or not an ancestor of the local head is "diverged" and
    nothing is pushed. The push itself runs on another fresh Remote whose
    negotiation callback refuses non-fast-forward updates; a server-side
    rejection is kind "rejected". It runs inside the tracking ref's `leftovers.writing` marker.
    `timeout` bounds connecting, authenticating and every network read (a moving transfer
    may take longer; `progress()` is called as it moves). Network and git errors come back
    as a failed result; raises only OSError when the marker cannot be written.
    """
    credentials = _with_url_secrets(repo, remote_name, credentials)
    with transport.network_timeouts(timeout) as deadline:
        local = history.ref_commit(repo, f"refs/heads/{local_branch}")
        if local is None:
            return _failure(
                KIND_NO_BRANCH, f"local branch {local_branch!r} does not exist (no commits yet?)", credentials
            )
        listed = _list_heads(repo, remote_name, credentials, deadline)
        if isinstance(listed, PushResult):
            return listed
        heads, url = listed
        dst_ref = f"refs/heads/{remote_branch}"
        tracking_ref = f"refs/remotes/{remote_name}/{remote_branch}"
        remote_before = heads.get(dst_ref)
        state = _state(repo, local, remote_before, heads, tracking_ref)
        if remote_before is not None and state.behind > 0 and state.ahead == 0:
            # only the remote moved (known locally: fetched): it has the local head already
            return PushResult(ok=True, pushed_oid=str(local), remote_before=remote_before)
        if remote_before is not None and state.behind != 0:
            lacking = (
                f"remote branch at {remote_before[:12]} is not in the local branch"
                if state.behind == -1
                else f"{_commits(state.behind)} not in local branch"
            )
            return _failure(
                KIND_DIVERGED,
                f"remote has diverged: {lacking}",
                credentials,
                remote_before=remote_before,
                behind=state.behind,
            )
        if remote_before == str(local):
            return PushResult(ok=True, pushed_oid=str(local), remote_before=remote_before)

        if url.local_path is not None:
            done = local_push.push_local(
                repo, remote_path=url.local_path, ref_name=dst_ref, tip=local, tracking_ref=tracking_ref
            )
            if not done.ok:
                kind = KIND_DIVERGED if done.problem in ("diverged", "moved") else KIND_ERROR
                lead = {
                    "diverged": "remote has diverged",
                    "moved": f"push to {url.display}: the remote moved, retry",
                }
                message = f"{lead.get(done.problem or '', f'push to {url.display} failed')}: {done.message}"
                behind = -1 if kind == KIND_DIVERGED else 0
                return _failure(kind, message, credentials, remote_before=done.before, behind=behind)
            warning = f"pushed, but the remote-tracking ref was not updated: {done.tracking_error}"
            return PushResult(
                ok=True,
                pushed_oid=str(local),
                remote_before=done.before,
                commits=done.commits,
                warning=error_line(warning, credentials.secrets()) if done.tracking_error else None,
            )
        remote = _lookup_remote(repo, remote_name)  # fresh: never the one that listed the heads
        if remote is None:
            return _failure(KIND_NO_REMOTE, f"no remote named {remote_name!r}", credentials)
        url = parse_url(_remote_url(remote))
        callbacks = _PushCallbacks(credentials=credentials, url=url, deadline=deadline, repo=repo)
        callbacks.progress = progress
        git_dir = Path(repo.path)
        with leftovers.writing(layout.state_dir(git_dir), [layout.ref_lock(git_dir, tracking_ref)]):
            try:
                with callbacks.libssh2_known_hosts():
                    remote.push([f"refs/heads/{local_branch}:{dst_ref}"], callbacks=callbacks)
            except Exception as exc:
                if dst_ref in callbacks.accepted and "failed to lock file" in str(exc):
                    # The remote took the update; only the local remote-tracking ref could not
                    # be moved (its lock is held, or left by a process that died). The lock is
                    # not ours to remove: say so and count the push as done.
                    warning = (
                        f"pushed, but the remote-tracking ref was not updated: {exc}; "
                        "if no git process is running, remove that .lock file"
                    )
                    return PushResult(
                        ok=True,
                        pushed_oid=str(local),
                        remote_before=remote_before,
                        commits=state.ahead,
                        warning=error_line(warning, credentials.secrets()),
                    )
                kind, message = _classify(exc, url, credentials)
                behind = exc.behind if isinstance(exc, Diverged) else (-1 if kind == KIND_DIVERGED else 0)
                return _failure(kind, message, credentials, remote_before=remote_before, behind=behind)
            finally:
                del remote
        if dst_ref in callbacks.rejections:
            message = f"push to {url.display} rejected by the remote: {callbacks.rejections[dst_ref]}"
            extra = callbacks.remote_messages()
            if extra:
                message += f" (remote: {extra})"
            return _failure(KIND_REJECTED, message, credentials, remote_before=remote_before)
        if dst_ref not in callbacks.accepted:
            return _failure(
                KIND_ERROR,
                f"push to {url.display}: the remote did not confirm the update of {dst_ref}",
                credentials,
                remote_before=remote_before,
            )
        return PushResult(ok=True, pushed_oid=str(local), remote_before=remote_before, commits=state.ahead)


def check_remote(
    repo: pygit2.Repository,
    *,
    remote_name: str,
    remote_branch: str,
    credentials: Credentials,
    timeout: float = DEFAULT_TIMEOUT,
) -> PushResult:
    """For `mdbackup check`: connect in the push direction with the credentials and list the
    refs, within `timeout`. `ok`, with `remote_before` the remote branch's commit (None when
    it does not exist yet), or a failed result with a clear error. Pushes nothing."""
    credentials = _with_url_secrets(repo, remote_name, credentials)
    with transport.network_timeouts(timeout) as deadline:
        listed = _list_heads(repo, remote_name, credentials, deadline)
    if isinstance(listed, PushResult):
        return listed
    heads, _ = listed
    return PushResult(ok=True, remote_before=heads.get(f"refs/heads/{remote_branch}"))


__all__ = ["DEFAULT_TIMEOUT", "PushResult", "check_remote", "push_branch", "remote_url_secrets"]
