"""Issue 10: the daemon never drops a change and stays alive (stop, errors, clocks,
ignore files, liveness, resource limits), against the real daemon."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.support.cli import mdbackup
from tests.support.git import git, head_files
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


def test_a_hung_worker_stops_the_watchdog_pings(daemon, repo: Path, store: Path) -> None:
    """A worker stuck inside a commit (test hook) stops WATCHDOG=1, so systemd restarts it."""
    d = daemon(
        "[watch]\ndebounce = 0.1\nmax_delay = 1\n",
        env={"WATCHDOG_USEC": "1000000", "MDBACKUP_HANG_AT": "tree_written"},
    ).start()
    d.notify.wait_for("WATCHDOG=1", timeout=5)
    (store / "a.md").write_text("a\n")
    wait_until(lambda: d.events("hang_for_tests"), timeout=10, message="the worker reached the hang")
    # the allowance: a worker is alive for one WATCHDOG_USEC after its last step
    allowance = time.monotonic() + 1.5
    wait_until(lambda: time.monotonic() >= allowance, timeout=5, message="the allowance")
    pings = d.notify.messages.count("WATCHDOG=1")
    quiet_until = time.monotonic() + 3.0  # six ping intervals
    wait_until(lambda: time.monotonic() >= quiet_until, timeout=5, message="six ping intervals")
    assert d.notify.messages.count("WATCHDOG=1") == pings, "a stuck worker is still reported alive"
    assert d.events("worker_stuck")
    d.kill()
