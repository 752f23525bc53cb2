"""Sync across machines (issue 12): real daemons on clones of one bare remote.

    python bench/run.py sync
    MDBACKUP_BENCH_SYNC_EDITS=20 MDBACKUP_BENCH_SYNC_IDLE=10 python bench/run.py sync  # quick

Rows, each with a baseline measured in the same run:

1. two machines, `sync.interval = 5`, one edit on each per second for 60 s to different
   notes: time from the last write to all three (two clones and the remote) equal. Baseline:
   two other clones of another remote, edited at the same moments, each synced by a
   git-sync-style loop of the git CLI (`add`, `commit`, `pull --no-rebase`, `push` every
   `interval` s). Target: debounce + interval + 2 s.
2. CPU per fetch with nothing new: a syncing daemon (interval 1) against a daemon with sync
   off, idle side by side; the difference divided by the fetches made. Baseline: `git fetch`
   with nothing new (CPU of the child). Target: 20 ms.
3. fetch + merge of 100 remote commits touching 1,000 notes (a local commit too, so a real
   merge): the daemon started with the remote ahead, time from start until its branch is the
   merge and the store is updated, less the same daemon's start on the same clone with nothing
   to fetch. Baseline: `git fetch` + `git merge` in a copy of the clone. Target: 2 s.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

from bench.bench_daemon import iso_epoch
from bench.common import Row, env_without_git_vars
from tests.support.daemon import CLK_TCK
from tests.support.sync import STORE, Cluster, Machine, is_ancestor, status_lines, worktree_entries
from tests.support.wait import wait_until

EDITS_ENV = "MDBACKUP_BENCH_SYNC_EDITS"  # seconds of edits in row 1 (default 60)
IDLE_ENV = "MDBACKUP_BENCH_SYNC_IDLE"  # idle window of row 2 (default 30)
DEBOUNCE = 1.0
INTERVAL = 5


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, env=env_without_git_vars(), check=False
    )


# -- 1. convergence after a minute of edits --------------------------------------------------


class GitSyncLoop:
    """The peers' way (git-sync, gitwatch with pull): every `interval` s, commit everything,
    pull with a merge, push; a thread per clone, stopped through an Event."""

    def __init__(self, repo: Path, interval: float) -> None:
        self.repo = repo
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"git-sync {repo.name}")

    def _loop(self) -> None:
        while not self.stop.wait(self.interval):
            _git(self.repo, "add", "-A", STORE)
            if _git(self.repo, "diff", "--cached", "--quiet").returncode:
                _git(self.repo, "commit", "-q", "-m", "git-sync")
            _git(self.repo, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
            _git(self.repo, "push", "-q", "origin", "main")


def _converged_at(cluster: Cluster, *, timeout: float) -> float:
    """The monotonic time of the first snapshot where all agree (each ref read once)."""
    return wait_until(
        lambda: time.monotonic() if cluster.convergence()[0] is not None else None,
        timeout=timeout,
        interval=0.05,
        message=lambda: f"convergence: {cluster.convergence()[1]}",
    )


def convergence_rows(workdir: Path, *, seconds: int) -> list[Row]:
    files = {f"{STORE}/m{i}-{k}.md": f"note {k} of m{i}\n" for i in range(2) for k in range(10)}
    ours = Cluster.create(workdir / "ours", files=files, interval=INTERVAL, debounce=DEBOUNCE)
    peers = Cluster.create(workdir / "peers", files=files, interval=INTERVAL, debounce=DEBOUNCE)
    loops = [GitSyncLoop(m.repo, INTERVAL) for m in peers.machines]
    try:
        ours.start()
        for loop in loops:
            loop.thread.start()
        last_write = 0.0
        for second in range(seconds):
            tick = time.monotonic()
            for cluster in (ours, peers):
                for i, m in enumerate(cluster.machines):
                    path = m.path(f"{STORE}/m{i}-{second % 10}.md")
                    with path.open("a") as fh:
                        fh.write(f"edit {second} on {m.name}\n")
            last_write = time.monotonic()
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        ours_s = _converged_at(ours, timeout=120) - last_write
        peers_s = _converged_at(peers, timeout=120) - last_write
    finally:
        for loop in loops:
            loop.stop.set()
        for loop in loops:
            if loop.thread.is_alive():
                loop.thread.join(timeout=60)
        ours.close()
        peers.close()
    target = DEBOUNCE + INTERVAL + 2
    return [
        Row(
            f"sync: last write to 2 clones + remote equal ({seconds} s of 1 edit/s each, "
            f"interval {INTERVAL})",
            f"{ours_s:.2f} s",
            f"git-sync loop {peers_s:.2f} s",
            f"<= {target:g} s (debounce + interval + 2)",
            "PASS" if ours_s <= target else "FAIL",
        )
    ]


# -- 2. CPU per fetch with nothing new ------------------------------------------------------------


def _fetch_events(machine: Machine) -> int:
    assert machine.daemon is not None
    return sum(1 for e in machine.daemon.events() if "fetch" in str(e.get("event", "")))


def idle_fetch_rows(workdir: Path, *, seconds: float) -> list[Row]:
    files = {f"{STORE}/d{k % 20}/f{k}.md": f"note {k}\n" for k in range(1000)}
    cluster = Cluster.create(workdir / "idle", files=files, interval=1, debounce=DEBOUNCE)
    syncing, quiet = cluster.machines
    quiet.config = quiet.config.replace("[sync]\nenabled = true", "[sync]\nenabled = false")
    for m in (syncing, quiet):  # the config body follows the harness's `[log]` table: fetches are logged
        m.config = 'level = "debug"\n' + m.config
    try:
        cluster.start()
        time.sleep(3)  # the start-up scan and first fetch are not idle
        assert syncing.daemon is not None and quiet.daemon is not None
        before = (syncing.daemon.cpu_seconds(), quiet.daemon.cpu_seconds(), _fetch_events(syncing))
        time.sleep(seconds)
        after = (syncing.daemon.cpu_seconds(), quiet.daemon.cpu_seconds(), _fetch_events(syncing))
    finally:
        cluster.close()
    logged = after[2] - before[2]
    fetches = logged if logged > 0 else int(seconds / 1)  # one a second when none is logged
    extra = (after[0] - before[0]) - (after[1] - before[1])
    ours_ms = max(extra, 0.0) / fetches * 1000
    samples = []
    for _ in range(20):
        start = resource.getrusage(resource.RUSAGE_CHILDREN)
        _git(syncing.repo, "fetch", "-q", "origin")
        end = resource.getrusage(resource.RUSAGE_CHILDREN)
        samples.append((end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime))
    git_ms = statistics.mean(samples) * 1000
    how = "logged" if logged > 0 else "estimated, none logged"
    return [
        Row(
            f"sync: CPU per fetch, nothing new (1,000-note store, {fetches} fetches {how}, "
            f"tick {1000 / CLK_TCK:g} ms)",
            f"{ours_ms:.1f} ms",
            f"git fetch {git_ms:.1f} ms",
            "<= 20 ms",
            "PASS" if ours_ms <= 20 else "FAIL",
        )
    ]


# -- 3. fetch + merge of 100 commits touching 1,000 notes ---------------------------------


def merge_rows(workdir: Path) -> list[Row]:
    files = {
        f"{STORE}/d{k % 20}/f{k}.md": "".join(f"line {i} of note {k}\n" for i in range(8))
        for k in range(1200)
    }
    cluster = Cluster.create(workdir / "merge", machines=1, files=files, interval=60, debounce=DEBOUNCE)
    (m,) = cluster.machines
    m.config = 'level = "debug"\n' + m.config  # follows the harness's `[log]`: the fetch is logged
    try:
        m.write(f"{STORE}/d0/f1100.md", "a local change, committed before the remote moved\n")
        m.commit_locally()
        changes = [
            {
                f"{STORE}/d{k % 20}/f{k}.md": f"changed by remote commit {c}\n"
                for k in range(c * 10, c * 10 + 10)
            }
            for c in range(100)
        ]
        remote = cluster.push_commits(changes)
        copy = workdir / "merge-git"
        shutil.copytree(m.repo, copy, symlinks=True)
        start = time.perf_counter()
        fetched = _git(copy, "fetch", "-q", "origin", "main")
        merged = _git(copy, "merge", "-q", "--no-edit", "FETCH_HEAD")
        git_s = time.perf_counter() - start
        assert fetched.returncode == 0 and merged.returncode == 0, (fetched.stderr, merged.stderr)

        expected = worktree_entries(copy)
        daemon = m.start(wait_ready=False)
        started = daemon.started_at

        def merged_in_ours() -> float | None:
            head = m.head()
            if head is None or head == remote or not is_ancestor(m.repo, remote, head):
                return None
            return time.monotonic()

        done = wait_until(merged_in_ours, timeout=120, interval=0.01, message=lambda: m.log_tail())
        daemon.wait_ready()
        ours_s = done - started
        breakdown = _sync_breakdown(daemon.events())
        wait_until(lambda: worktree_entries(m.repo) == expected and not status_lines(m.repo), timeout=30)
        same_tree = (
            _git(m.repo, "rev-parse", "HEAD^{tree}").stdout == _git(copy, "rev-parse", "HEAD^{tree}").stdout
        )
        assert same_tree, "the merge's tree is not git's"
        m.stop()
        baseline_start = m.start(wait_ready=False).wait_ready()  # the same start, nothing to fetch
        m.stop()
    finally:
        cluster.close()
    net = ours_s - baseline_start
    return [
        Row(
            "sync: fetch + merge of 100 remote commits touching 1,000 notes (less an idle start)",
            f"{net:.2f} s ({ours_s:.2f} - {baseline_start:.2f})",
            f"git fetch + merge {git_s:.2f} s",
            "<= 2 s",
            "PASS" if net <= 2 else "FAIL",
        ),
        Row("  of which, from the daemon's log: " + breakdown, "", "", "(info)", ""),
    ]


def _sync_breakdown(events: list[dict]) -> str:
    """The fetch's own time and the time from the fetch's end to the merge logged."""
    fetched = next((e for e in events if e.get("event") == "sync_fetched"), None)
    synced = next((e for e in events if e.get("event") == "sync" and e.get("kind") == "merge"), None)
    if fetched is None or synced is None:
        return "no sync_fetched / sync events logged"
    merge_ms = (iso_epoch(synced["timestamp"]) - iso_epoch(fetched["timestamp"])) * 1000
    return f"fetch {fetched.get('elapsed_ms', '?')} ms, merge + files + index + ref {merge_ms:.0f} ms"


def run(workdir: Path) -> list[Row]:
    rows = merge_rows(workdir)
    rows += idle_fetch_rows(workdir, seconds=float(os.environ.get(IDLE_ENV, "30")))
    rows += convergence_rows(workdir, seconds=int(os.environ.get(EDITS_ENV, "60")))
    return rows
