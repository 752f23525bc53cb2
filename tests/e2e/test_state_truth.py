"""The state database is the repository's own and `status` tells the truth (issue 10):
one database per repository, status shows what the acting process used, read-only
commands never write, and nothing opens, writes or moves aside the database under the
lock holder."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cli import config_file, isolated_env, mdbackup
from tests.support.git import git, head_files, init_repo
from tests.support.servers import init_bare, remote_ref
from tests.support.wait import wait_until


def env_for(home: Path, repo: Path, text: str = "", *, store: str = "notes") -> dict[str, str]:
    return {"MDBACKUP_CONFIG": str(config_file(home, repo, text, store=store))}


HOLD_LOCK = """
import signal, sys
from mdbackup.lock import RepositoryLock
signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # a daemon starting up, not yet listening
lock = RepositoryLock.acquire(__import__("pathlib").Path(sys.argv[1]))
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""

PUSH = "[push]\nenabled = true\nretry_min = 1\nretry_max = 2\n"


def state_dir(repo: Path) -> Path:
    return repo / ".git" / "mdbackup"


def no_traceback(*outputs: str) -> None:
    for text in outputs:
        assert "Traceback" not in text, text


def test_two_repositories_configured_with_one_state_db_is_a_config_error(tmp_path: Path, home: Path) -> None:
    """Why: two repositories configured with one state.db marked each other's paths success."""
    shared = tmp_path / "shared" / "state.db"
    first, second = init_repo(tmp_path / "first"), init_repo(tmp_path / "second")
    for repo in (first, second):
        (repo / "notes").mkdir()
        (repo / "notes" / "same.md").write_text(f"{repo.name}\n")
    text = f'[state]\ndb = "{shared}"\n'
    first_home, second_home = home / "first", home / "second"
    first_home.mkdir(), second_home.mkdir()
    assert mdbackup("--once", cwd=first, home=first_home, env=env_for(first_home, first, text)).code == 0
    second_env = env_for(second_home, second, text)
    for args in (("--once",), ("status", "--json"), ("retry",), ("pause",)):
        result = mdbackup(*args, cwd=second, home=second_home, env=second_env)
        assert result.code == 2, (args, result)
        no_traceback(result.err)
        assert str(shared) in result.err and str(first / ".git") in result.err, result.err
        assert str(second / ".git") in result.err, result.err
    assert "notes/same.md" not in head_files(second)  # nothing marked success for it
    assert mdbackup("status", cwd=first, home=first_home, env=env_for(first_home, first, text)).code == 0


def test_status_believes_the_pushing_process_not_its_own_config(repo: Path, home: Path, store: Path) -> None:
    """Why: after a failed `run --once --push`, `status` without --push said "push: disabled"
    and exited 0."""
    (store / "a.md").write_text("a\n")
    env = env_for(home, repo)  # push disabled in the file
    once = mdbackup("run", "--once", "--push", cwd=repo, home=home, env=env)  # no remote "origin"
    assert once.code == 1
    result = mdbackup("status", "--json", cwd=repo, home=home, env=env)
    assert result.code == 1, result
    push = result.json()["push"]
    assert (push["enabled"], push["status"], push["remote"]) == (True, "failed", "origin"), push
    assert push["last_error"] and push["recorded_at"], push
    text = mdbackup("status", cwd=repo, home=home, env=env)
    assert text.code == 1 and "push:    failed to origin/" in text.out, text.out


def test_status_reports_a_running_daemons_config_and_its_source(daemon, repo: Path, store: Path) -> None:
    """Why: a daemon started with `--config X` was misreported by `status` run with none."""
    d = daemon("[watch]\ndebounce = 0.2\nmax_delay = 5.0\n[push]\nenabled = true\nretry_min = 60\n").start()
    other_home = d.home / "other"
    other_home.mkdir()
    # `status` from a shell whose config names the repository root as the store, push off
    result = mdbackup(
        "status", "--json", cwd=repo, home=other_home, env=env_for(other_home, repo, "", store=".")
    )
    doc = result.json()
    assert doc["daemon"]["running"] and doc["store"] == "notes", doc
    assert doc["config"] == {
        "source": str(d.config_path),
        "from": "daemon",
        "recorded_at": doc["config"]["recorded_at"],
    }
    assert doc["push"]["enabled"] is True, doc["push"]


def test_push_state_goes_stale_after_a_commit_by_hand(
    daemon, repo: Path, store: Path, tmp_path: Path
) -> None:
    """Why: after the user committed by hand, status said "success, ahead 0" while the
    remote lacked the commit, and the daemon did not push it until its own next commit."""
    bare = init_bare(tmp_path / "remote.git")
    git(repo, "remote", "add", "origin", str(bare))
    (store / "a.md").write_text("a\n")
    home = repo.parent / "home-once"
    home.mkdir()
    env = env_for(home, repo, PUSH)
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 0
    (store / "by-hand.md").write_text("by hand\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "by hand")
    push = mdbackup("status", "--json", cwd=repo, home=home, env=env).json()["push"]
    assert (push["status"], push["ahead"]) == ("pending", 1), push
    d = daemon(
        "[watch]\ndebounce = 0.2\nmax_delay = 5.0\n[push]\nenabled = true\nretry_min = 1\nretry_max = 2\n"
    )
    d.start()
    head = git(repo, "rev-parse", "HEAD").strip()
    wait_until(lambda: remote_ref(bare, "refs/heads/main") == head, timeout=15, message="start-up push")
    (store / "second.md").write_text("second by hand\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "second by hand")
    moved = git(repo, "rev-parse", "HEAD").strip()
    # retry_min is 1 s and no further commit comes: only the hand-made-commit check pushes it.
    wait_until(
        lambda: remote_ref(bare, "refs/heads/main") == moved, timeout=15, message="pushed by the daemon"
    )
    wait_until(
        lambda: (
            mdbackup(
                "status", "--json", cwd=repo, home=d.home, env={"MDBACKUP_CONFIG": str(d.config_path)}
            ).json()["push"]["status"]
            == "success"
        ),
        timeout=10,
    )


def test_commands_never_open_the_database_before_the_lock(repo: Path, home: Path, store: Path) -> None:
    """Why: `status`, `retry` and `--once` opened, wrote and could move aside the state
    database before taking the repository lock. While another process holds the lock
    (here: a daemon starting, its database not yet rebuilt), nothing moves it aside."""
    env = env_for(home, repo)
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 0
    db = state_dir(repo) / "state.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"not a database, for the lock holder to deal with\n" * 100)
    before = db.read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(state_dir(repo) / "lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=isolated_env(home),
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        once = mdbackup("--once", cwd=repo, home=home, env=env)
        assert once.code == 75 and str(holder.pid) in once.err, once
        assert db.read_bytes() == before, "--once moved the lock holder's database aside"
        for args in (("retry",), ("pause",), ("resume",), ("status",), ("status", "--json")):
            result = mdbackup(*args, cwd=repo, home=home, env=env)
            assert result.code == 1 and len(result.err.strip().splitlines()) == 1, (args, result)
            no_traceback(result.err)
        assert db.read_bytes() == before
        assert not list(state_dir(repo).glob("state.db.corrupt-*"))
    finally:
        holder.communicate(input="", timeout=10)  # stdin closed: it releases and exits
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 0  # the lock holder rebuilds it
    assert len(list(state_dir(repo).glob("state.db.corrupt-*"))) == 1


def test_read_only_commands_never_write(repo: Path, home: Path, store: Path) -> None:
    """Why: `status`, `status --json`, `pause` and `retry` printed a traceback when the
    database was write-locked by another process; a valid SQLite file with another schema
    made `--once` exit 1 ("no column named paused")."""
    env = env_for(home, repo)
    (store / "a.md").write_text("a\n")
    missing = mdbackup("status", "--json", cwd=repo, home=home, env=env)  # nothing recorded yet
    assert missing.code == 0 and missing.json()["counts"]["pending"] == 0, missing
    assert "no state database" in missing.err and not state_dir(repo).exists()
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 0
    db = state_dir(repo) / "state.db"
    writer = sqlite3.connect(db, timeout=0.1, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process write-locks it
        writer.execute("UPDATE repository SET paused = 0")
        for args in (("status",), ("status", "--json")):
            started = time.monotonic()
            result = mdbackup(*args, cwd=repo, home=home, env=env)
            assert result.code == 0 and time.monotonic() - started < 8, (args, result)
            no_traceback(result.err)
        pause = mdbackup("pause", cwd=repo, home=home, env=env)
        assert pause.code == 75 and len(pause.err.strip().splitlines()) == 1, pause
        no_traceback(pause.err)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    other = sqlite3.connect(db)
    other.execute("CREATE TABLE repository (id INTEGER PRIMARY KEY, colour TEXT)")
    other.execute("INSERT INTO repository VALUES (1, 'blue')")
    other.commit()
    other.close()
    status = mdbackup("status", cwd=repo, home=home, env=env)
    assert status.code == 1 and "unknown schema" in status.err, status
    no_traceback(status.err)
    (store / "b.md").write_text("b\n")
    once = mdbackup("--once", cwd=repo, home=home, env=env)
    assert once.code == 0, once
    assert head_files(repo)["notes/b.md"] == "b\n"
    assert len(list(state_dir(repo).glob("state.db.corrupt-*"))) == 1


def test_a_path_longer_than_path_max_is_failed_with_the_reason(repo: Path, home: Path, store: Path) -> None:
    """Why: a path longer than PATH_MAX was never backed up and nothing said so."""
    name = "d" * 200
    fd = os.open(store, os.O_RDONLY)
    depth = 0
    try:
        while depth * (len(name) + 1) < 4200:
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
            depth += 1
        with open(os.open("deep.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
            f.write("deep\n")
    finally:
        os.close(fd)
    (store / "fine.md").write_text("fine\n")
    env = env_for(home, repo)
    once = mdbackup("--once", cwd=repo, home=home, env=env)
    assert once.code == 1, once
    assert head_files(repo)["notes/fine.md"] == "fine\n"
    doc = mdbackup("status", "--json", cwd=repo, home=home, env=env).json()
    failed = [row for row in doc["paths"] if row["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["path"].startswith(f"notes/{name}/"), failed
    assert "too long" in failed[0]["last_error"], failed


def test_commands_in_a_loop_against_a_busy_daemon(daemon, repo: Path, store: Path) -> None:
    """Deliver 2: status, retry, pause, resume and --once, run over and over while the
    daemon commits, never break the database nor lose a file."""
    d = daemon("[watch]\ndebounce = 0.1\nmax_delay = 1.0\n").start()
    env = {"MDBACKUP_CONFIG": str(d.config_path)}
    allowed = {
        ("status",): {0},
        ("status", "--json"): {0},
        ("retry",): {0},
        ("pause",): {0},
        ("resume",): {0},
        ("--once",): {75},
    }
    written = 0
    deadline = time.monotonic() + 60
    for round_ in range(8):
        for args, codes in allowed.items():
            for _ in range(3):
                (store / f"f{written}.md").write_text(f"{written}\n")
                written += 1
            result = mdbackup(*args, cwd=repo, home=d.home, env=env)
            assert result.code in codes, (round_, args, result)
            no_traceback(result.out, result.err)
            assert time.monotonic() < deadline, "the loop took too long"
    assert mdbackup("resume", cwd=repo, home=d.home, env=env).code == 0
    wanted = {f"notes/f{i}.md": f"{i}\n" for i in range(written)}
    wait_until(
        lambda: all(head_files(repo).get(p) == c for p, c in wanted.items()),
        timeout=30,
        message="every file committed",
    )
    assert not list(state_dir(repo).glob("state.db.corrupt-*"))
    doc = mdbackup("status", "--json", cwd=repo, home=d.home, env=env).json()
    assert doc["counts"]["failed"] == 0 and doc["daemon"]["running"], doc
    assert d.stop() == 0
