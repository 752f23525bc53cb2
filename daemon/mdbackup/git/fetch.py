"""Fetch one branch of a remote with libgit2, with the push's credentials and host checks.

Reads no config and no environment variable: everything comes in as arguments
(`Credentials`), and the result is a frozen record (`FetchResult`).

- `repo.remotes[name]` is looked up FRESH for the fetch (never a Remote reused from
  another operation); the fetch URL (`remote.<name>.url`) is used.
- Credentials and host keys go through `credentials.AuthCallbacks`, exactly as for the
  push: each credential offered once, OpenSSH's known_hosts rules, TLS checked, the
  credentials kept with their host, plain http with a secret refused before connecting.
- Time: libgit2's connect and read timeouts come from `timeout` (`transport.network_timeouts`).
- A path or file:// remote goes through libgit2's local transport: a fetch only reads the
  remote, so the compare-and-swap the push needs (`local_push`) is not needed here.
- `fetch_branch` writes the remote-tracking ref `refs/remotes/<remote>/<branch>` (libgit2
  moves it as git does, under its `.lock`) and FETCH_HEAD inside a `leftovers.writing`
  marker naming both locks, so a lock left by a kill is cleared at the next start (a lock
  older than the marker is git's and stays). `peek_branch` (for `check`) fetches through
  an anonymous remote: no ref of ours moves, no marker is written.
- The remote branch's commit is the one the remote advertised in that very fetch, never
  read back from FETCH_HEAD (a `FETCH_HEAD.lock` left by a killed `git fetch` keeps it
  empty while the fetch itself succeeds).
- Nothing else is written: no local branch, no index, no working-tree file. Never a force
  of anything but the remote-tracking ref (which mirrors the remote, as in git).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FetchPrune

from mdbackup.git import history, layout, leftovers, transport
from mdbackup.git.credentials import AuthCallbacks, Credentials, plain_http_refusal
from mdbackup.git.remote_errors import (
    KIND_AUTH,
    KIND_ERROR,
    KIND_NO_REMOTE,
    classify,
    error_line,
    parse_url,
    remote_url_secrets,
)

DEFAULT_TIMEOUT = 60.0
REFLOG_MESSAGE = "fetch (mdbackup sync)"


@dataclass(frozen=True, kw_only=True)
class FetchResult:
    """The outcome of a fetch.

    `ok`: the remote was reached and its branch fetched; `remote_oid` is the remote
    branch's commit (now in the local object database), None when the branch does not
    exist on the remote. On failure `kind` is one of the `remote_errors.KIND_*` values and
    `error` one line without secrets. `received` counts the objects transferred.
    """

    ok: bool
    remote_oid: str | None = None
    tracking_ref: str | None = None
    error: str | None = None
    kind: str | None = None
    received: int = 0
    elapsed_ms: float = 0.0


def tracking_ref(remote_name: str, remote_branch: str) -> str:
    """The remote-tracking ref of `remote_branch` of `remote_name`."""
    return f"refs/remotes/{remote_name}/{remote_branch}"


def _with_url_secrets(repo: pygit2.Repository, remote_name: str, credentials: Credentials) -> Credentials:
    found = remote_url_secrets(repo, remote_name)
    if not found:
        return credentials
    return dataclasses.replace(credentials, url_secrets=tuple(dict.fromkeys(credentials.url_secrets + found)))


def _failure(kind: str, message: str, credentials: Credentials, started: float) -> FetchResult:
    return FetchResult(
        ok=False, error=error_line(message, credentials.secrets()), kind=kind, elapsed_ms=_ms(started)
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _run_fetch(
    repo: pygit2.Repository,
    *,
    remote_name: str,
    refspec: str,
    credentials: Credentials,
    timeout: float,
    marked: Path | None,
    started: float,
) -> FetchResult | tuple[int, dict[str, str]]:
    """Fetch `refspec` from a fresh Remote; (objects received, the refs the remote advertised
    {name: oid}), or a failure.
    `marked`: the ref lock the fetch may leave, named in a `leftovers.writing` marker;
    None: fetch through an anonymous remote of the same URL, which moves no ref (libgit2
    would otherwise update the configured remote-tracking refs on its own)."""
    credentials = _with_url_secrets(repo, remote_name, credentials)
    try:
        remote = repo.remotes[remote_name]
    except (KeyError, ValueError, pygit2.GitError):
        return _failure(KIND_NO_REMOTE, f"no remote named {remote_name!r}", credentials, started)
    url = parse_url(remote.url or "")
    if marked is None:  # no ref of ours may move: an anonymous remote has no refspecs to follow
        remote = repo.remotes.create_anonymous(remote.url or "")
    refusal = plain_http_refusal(url, credentials)
    if refusal is not None:
        return _failure(KIND_AUTH, refusal, credentials, started)
    git_dir = Path(repo.path)
    # No marker for `check`: it moves no ref of ours, and the marker file is the daemon's.
    marker = (
        contextlib.nullcontext() if marked is None else leftovers.writing(layout.state_dir(git_dir), [marked])
    )
    with transport.network_timeouts(timeout) as deadline, marker:
        callbacks = AuthCallbacks(credentials=credentials, url=url, deadline=deadline)
        try:
            with callbacks.libssh2_known_hosts():
                progress = remote.fetch(
                    [refspec], callbacks=callbacks, message=REFLOG_MESSAGE, prune=FetchPrune.NO_PRUNE
                )
            heads = {h.name: str(h.oid) for h in remote.list_heads(connect=False) if h.name}
            return int(progress.received_objects), heads
        except Exception as exc:  # any libgit2 / callback failure: classified, one line, no secret
            kind, message = classify(exc, url, known_hosts=credentials.known_hosts_file())
            return _failure(kind, message, credentials, started)
        finally:
            del remote  # frees the C object: disconnects; never reused


def fetch_branch(
    repo: pygit2.Repository,
    *,
    remote_name: str,
    remote_branch: str,
    credentials: Credentials,
    timeout: float = DEFAULT_TIMEOUT,
) -> FetchResult:
    """Fetch `remote_branch` of `remote_name` into `refs/remotes/<remote>/<branch>`.

    Network and git errors come back as a failed result (one line, no secret); raises
    only OSError when our marker cannot be written. `timeout` bounds connecting,
    authenticating and every network read.
    """
    started = time.perf_counter()
    ref = tracking_ref(remote_name, remote_branch)
    git_dir = Path(repo.path)
    done = _run_fetch(
        repo,
        remote_name=remote_name,
        refspec=f"+refs/heads/{remote_branch}:{ref}",
        credentials=credentials,
        timeout=timeout,
        marked=layout.ref_lock(git_dir, ref),
        started=started,
    )
    if isinstance(done, FetchResult):
        return done
    return _fetched(repo, done, remote_branch, credentials, started, tracking=ref)


def peek_branch(
    repo: pygit2.Repository,
    *,
    remote_name: str,
    remote_branch: str,
    credentials: Credentials,
    timeout: float = DEFAULT_TIMEOUT,
) -> FetchResult:
    """For `check`: fetch the objects of `remote_branch` without moving any ref of ours
    (only git's FETCH_HEAD is written); `remote_oid` is the remote branch's commit."""
    started = time.perf_counter()
    done = _run_fetch(
        repo,
        remote_name=remote_name,
        refspec=f"refs/heads/{remote_branch}",
        credentials=credentials,
        timeout=timeout,
        marked=None,
        started=started,
    )
    if isinstance(done, FetchResult):
        return done
    return _fetched(repo, done, remote_branch, credentials, started, tracking=None)


def _fetched(
    repo: pygit2.Repository,
    done: tuple[int, dict[str, str]],
    remote_branch: str,
    credentials: Credentials,
    started: float,
    *,
    tracking: str | None,
) -> FetchResult:
    """The result of a fetch that went through: the remote branch's commit as the remote
    advertised it (never read back from FETCH_HEAD, which a lock left by a killed `git fetch`
    keeps empty), which must now be in the local object database."""
    received, heads = done
    advertised = heads.get(f"refs/heads/{remote_branch}")
    if advertised is not None and not history.known_commits(repo, [advertised]):
        message = f"fetched, but the remote's commit {advertised[:12]} is not in the local object database"
        return _failure(KIND_ERROR, message, credentials, started)
    return FetchResult(
        ok=True, remote_oid=advertised, tracking_ref=tracking, received=received, elapsed_ms=_ms(started)
    )


__all__ = ["DEFAULT_TIMEOUT", "FetchResult", "fetch_branch", "peek_branch", "tracking_ref"]
