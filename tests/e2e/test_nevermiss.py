"""Issue 10: the daemon never drops a change and stays alive (stop, errors, clocks,
ignore files, liveness, resource limits), against the real daemon."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import mdbackup
from tests.support.daemon import Daemon
from tests.support.git import git, head_files
from tests.support.servers import HTTPServer, remote_ref
from tests.support.wait import wait_until

SLOW = "[watch]\ndebounce = 600\nmax_delay = 600\n"


def lost(repo: Path, store: Path, status: dict, names: dict[str, str]) -> list[str]:
    """Store files (repo-relative) neither committed with their content nor reported."""
    head = head_files(repo)
    reported = {p["path"] for p in status["paths"] if p["status"] in ("pending", "queued", "failed")}
    return [p for p, text in names.items() if head.get(p) != text and p not in reported]


def test_sigterm_after_a_burst_loses_nothing(daemon, repo: Path, store: Path) -> None:
    """SIGTERM right after 2,000 saves: every save is committed or pending, none dropped."""
    d = daemon(SLOW).start()
    names = {}
    for i in range(2000):
        sub = store / f"d{i % 20}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.md").write_text(f"file {i}\n")
        names[f"notes/d{i % 20}/f{i}.md"] = f"file {i}\n"
    assert d.stop() == 0
    env = {"MDBACKUP_CONFIG": str(d.config_path)}
    status = mdbackup("status", "--json", cwd=repo, home=d.home, env=env).json()
    missing = lost(repo, store, status, names)
    assert not missing, f"{len(missing)} saves dropped, e.g. {missing[:5]}"


def test_a_worker_error_keeps_the_drained_events(daemon, repo: Path, store: Path) -> None:
    """The state database write-locked past the busy timeout: the save is not forgotten;
    it is committed once the lock goes, with no rescan or restart to find it."""
    d = daemon("[watch]\ndebounce = 0.2\nmax_delay = 5\nrescan_interval = 0\n").start()
    db = repo / ".git" / "mdbackup" / "state.db"
    holder = sqlite3.connect(db, timeout=1, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        (store / "locked.md").write_text("saved while locked\n")
        wait_until(lambda: d.events("worker_error"), timeout=30, message="a worker error")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_until(
        lambda: head_files(repo).get("notes/locked.md") == "saved while locked\n",
        timeout=30,
        message=lambda: f"the save made during the lock; log:\n{d.log()[-3000:]}",
    )
    assert d.stop() == 0


def test_un_ignoring_is_noticed_within_the_debounce(daemon, repo: Path, store: Path) -> None:
    """Emptying .gitignore (or .git/info/exclude) makes newly wanted files commit at once,
    not at the next hourly rescan."""
    (repo / ".gitignore").write_text("notes/private/\n")
    exclude = repo / ".git" / "info" / "exclude"
    exclude.parent.mkdir(exist_ok=True)
    exclude.write_text("*.draft.md\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore")
    (store / "private").mkdir()
    (store / "private" / "p.md").write_text("private\n")
    (store / "x.draft.md").write_text("draft\n")
    d = daemon("[watch]\ndebounce = 0.2\nmax_delay = 5\nrescan_interval = 3600\n").start()
    (store / "seen.md").write_text("seen\n")
    wait_until(lambda: "notes/seen.md" in head_files(repo), message="a plain save")
    assert "notes/private/p.md" not in head_files(repo)
    (repo / ".gitignore").write_text("")
    wait_until(
        lambda: head_files(repo).get("notes/private/p.md") == "private\n",
        timeout=15,
        message="the file .gitignore no longer ignores",
    )
    assert "notes/x.draft.md" not in head_files(repo)
    exclude.write_text("")
    wait_until(
        lambda: head_files(repo).get("notes/x.draft.md") == "draft\n",
        timeout=15,
        message="the file .git/info/exclude no longer ignores",
    )
    assert d.stop() == 0


def _pings_stop(d: Daemon) -> None:
    """`d` (WATCHDOG_USEC=1 s) reached its test hang: after the allowance no WATCHDOG=1
    comes any more and the stuck worker is logged."""
    wait_until(lambda: d.events("hang_for_tests"), timeout=10, message="the worker reached the hang")
    # the allowance: a worker is alive for one WATCHDOG_USEC after its last step
    allowance = time.monotonic() + 1.5
    wait_until(lambda: time.monotonic() >= allowance, timeout=5, message="the allowance")
    pings = d.notify.messages.count("WATCHDOG=1")
    quiet_until = time.monotonic() + 3.0  # six ping intervals
    wait_until(lambda: time.monotonic() >= quiet_until, timeout=5, message="six ping intervals")
    assert d.notify.messages.count("WATCHDOG=1") == pings, "a stuck worker is still reported alive"
    assert d.events("worker_stuck")


def test_a_hung_worker_stops_the_watchdog_pings(daemon, repo: Path, store: Path) -> None:
    """A worker stuck inside a commit (test hook) stops WATCHDOG=1, so systemd restarts it."""
    d = daemon(
        "[watch]\ndebounce = 0.1\nmax_delay = 1\n",
        env={"WATCHDOG_USEC": "1000000", "MDBACKUP_HANG_AT": "tree_written"},
    ).start()
    d.notify.wait_for("WATCHDOG=1", timeout=5)
    (store / "a.md").write_text("a\n")
    _pings_stop(d)
    d.kill()


def test_a_scan_stuck_inside_a_folder_stops_the_watchdog_pings(daemon, repo: Path, store: Path) -> None:
    """Scans beat the heartbeat at every folder (below), yet a scan stuck there (test hook at
    its second folder: the start-up scan of the empty store walks one) still stops the pings."""
    d = daemon(
        "[watch]\ndebounce = 0.1\nmax_delay = 1\n",
        env={"WATCHDOG_USEC": "1000000", "MDBACKUP_HANG_AT": "scanning:2"},
    ).start()
    d.notify.wait_for("WATCHDOG=1", timeout=5)
    d.signal(signal.SIGHUP)  # a reload scans the whole store
    _pings_stop(d)
    d.kill()


def _pings_during(
    d: Daemon, action: Callable[[], object], *, done: Callable[[], object]
) -> tuple[int, float]:
    """(WATCHDOG=1 pings, seconds) from `action()` until `done()` holds (bounded)."""
    before = d.notify.messages.count("WATCHDOG=1")
    started = time.monotonic()
    action()
    log = lambda: f"the operation to finish; log:\n{d.log()[-3000:]}"  # noqa: E731
    wait_until(done, timeout=120, interval=0.05, message=log)
    return d.notify.messages.count("WATCHDOG=1") - before, time.monotonic() - started


WATCHDOG_S = 0.5  # WATCHDOG_USEC of the push liveness test: pings every 0.25 s
SCAN_WATCHDOG_S = 1.0  # of the scan one (its start-up and watcher restart do not beat inside)
FOLDERS = 800  # of 100 files each: a scan well over 1.5 x SCAN_WATCHDOG_S on a quiet machine


def test_a_long_scan_keeps_the_watchdog_pings_going(daemon, repo: Path, store: Path) -> None:
    """A full scan longer than WATCHDOG_USEC (80,000 files the index does not vouch for: each
    is hashed; 40,000 took only 1.2 s on a quiet CI machine) beats at every folder and file:
    the pings go on and systemd leaves a healthy daemon alone. Before, the scan counted as a
    stuck worker."""
    for d_ in range(FOLDERS):
        folder = store / f"d{d_}"
        folder.mkdir()
        for f in range(100):
            (folder / f"f{f}.md").write_text(f"{d_} {f}\n")
    git(repo, "add", "notes")
    git(repo, "commit", "-qm", "a big store")
    for path in store.rglob("*.md"):  # same content, another mtime: every scan hashes every file
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    d = daemon(
        "[watch]\ndebounce = 0.2\nmax_delay = 5\nrescan_interval = 0\n",
        env={"WATCHDOG_USEC": str(int(SCAN_WATCHDOG_S * 1_000_000))},
    ).start(wait_ready=False)
    d.wait_ready(timeout=120)
    mark = len(d.events())

    def rescanned() -> dict | None:
        return next((e for e in d.events()[mark:] if e.get("reason") == "config reloaded"), None)

    pings, _seconds = _pings_during(d, lambda: d.signal(signal.SIGHUP), done=rescanned)
    scan = rescanned()
    assert scan is not None and scan["hashed"] == FOLDERS * 100, scan
    took = scan["elapsed_ms"] / 1000
    # longer than one WATCHDOG_USEC plus a ping interval: without beats it is seen stuck
    assert took > 1.5 * SCAN_WATCHDOG_S, f"the scan took {took:.2f} s: too quick to show anything"
    assert not d.events("worker_stuck"), d.events("worker_stuck")
    assert pings >= took / SCAN_WATCHDOG_S, f"{pings} pings during a {took:.2f} s scan"
    assert d.stop() == 0


def test_a_long_push_reporting_progress_keeps_the_watchdog_pings_going(
    daemon, repo: Path, store: Path, http_server: HTTPServer
) -> None:
    """A push whose server takes 3 s (a pre-receive hook that reports as it checks) beats at
    every progress report libgit2 passes on: the pings go on. Before, only the steps around
    the push beat, and a push longer than WATCHDOG_USEC counted as a stuck worker."""
    git(repo, "remote", "add", "origin", http_server.url)
    config = (
        "[watch]\ndebounce = 0.1\nmax_delay = 1\n[push]\nenabled = true\nretry_min = 1\nretry_max = 2\n"
        f'[auth]\nusername = "{http_server.username}"\ntoken_env = "TEST_TOKEN"\n'
    )
    d = daemon(
        config, env={"TEST_TOKEN": http_server.token, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1_000_000))}
    ).start()
    assert remote_ref(http_server.bare) == git(repo, "rev-parse", "main").strip()  # the start-up push
    http_server.install_hook(
        "pre-receive",
        '#!/bin/sh\ni=0\nwhile [ $i -lt 30 ]; do echo "checking $i"; sleep 0.1; i=$((i+1)); done\n',
    )
    http_server.stream_responses()

    def pushed() -> bool:
        remote = remote_ref(http_server.bare)  # read once: the commit we wait for, or not yet
        return remote is not None and "notes/a.md" in git(repo, "ls-tree", "-r", "--name-only", remote)

    pings, seconds = _pings_during(d, lambda: (store / "a.md").write_text("a\n"), done=pushed)
    assert seconds > 3 * WATCHDOG_S
    assert not d.events("worker_stuck"), d.events("worker_stuck")
    assert pings >= 3.0 / WATCHDOG_S, f"{pings} pings during a {seconds:.2f} s save and push"
    assert d.stop() == 0


def test_a_push_stuck_in_a_progress_report_stops_the_watchdog_pings(
    daemon, repo: Path, store: Path, http_server: HTTPServer
) -> None:
    """Beating from libgit2's progress reports does not hide a push that is stuck for good
    (test hook at the first report)."""
    git(repo, "remote", "add", "origin", http_server.url)
    config = (
        "[watch]\ndebounce = 0.1\nmax_delay = 1\n[push]\nenabled = true\n"
        f'[auth]\nusername = "{http_server.username}"\ntoken_env = "TEST_TOKEN"\n'
    )
    http_server.install_hook("pre-receive", '#!/bin/sh\necho "checking"\n')
    http_server.stream_responses()
    d = daemon(
        config,
        env={"TEST_TOKEN": http_server.token, "WATCHDOG_USEC": "1000000", "MDBACKUP_HANG_AT": "pushing:1"},
    ).start(wait_ready=False)  # the start-up push hangs at its first progress report
    _pings_stop(d)
    d.kill()
