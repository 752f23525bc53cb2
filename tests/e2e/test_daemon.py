"""The daemon against a real watchdog observer, real file writes and real signals."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from tests.support.cli import mdbackup
from tests.support.daemon import FAST
from tests.support.git import commit_count, git, head_files, head_paths
from tests.support.wait import wait_until


def committed(repo: Path, path: str, content: str):
    return lambda: head_files(repo).get(path) == content


def test_plain_and_atomic_save_and_delete(daemon, repo: Path, store: Path) -> None:
    d = daemon().start()
    (store / "plain.md").write_text("plain\n")
    wait_until(committed(repo, "notes/plain.md", "plain\n"), message="plain save")
    tmp = store / ".plain.md.tmp123"
    tmp.write_text("atomic\n")
    os.replace(tmp, store / "plain.md")
    wait_until(committed(repo, "notes/plain.md", "atomic\n"), message="atomic save")
    (store / "plain.md").unlink()
    wait_until(lambda: "notes/plain.md" not in head_files(repo), message="delete")
    assert not any("tmp" in p for p in head_files(repo))
    assert d.stop() == 0


def test_vim_save_sequence(daemon, repo: Path, store: Path) -> None:
    daemon().start()
    f = store / "note.md"
    f.write_text("v1\n")
    wait_until(committed(repo, "notes/note.md", "v1\n"))
    swap = store / ".note.md.swp"
    swap.write_text("swap")
    probe = store / "4913"
    probe.write_text("")
    probe.unlink()
    f.rename(store / "note.md~")
    f.write_text("v2\n")
    (store / "note.md~").unlink()
    swap.unlink()
    wait_until(committed(repo, "notes/note.md", "v2\n"), message="vim save")
    names = set(git(repo, "log", "--all", "--name-only", "--format=").split())
    assert not {n for n in names if n.endswith(("~", ".swp", "4913"))}


def test_emacs_jetbrains_and_vscode_saves(daemon, repo: Path, store: Path) -> None:
    daemon().start()
    f = store / "note.md"
    f.write_text("v1\n")
    wait_until(committed(repo, "notes/note.md", "v1\n"))
    # emacs: a lock symlink while editing, a backup file on the first save
    os.symlink("user@host.1234:1700000000", store / ".#note.md")
    (store / "note.md~").write_text("v1\n")
    f.write_text("emacs\n")
    (store / ".#note.md").unlink()
    wait_until(committed(repo, "notes/note.md", "emacs\n"), message="emacs save")
    # JetBrains safe-write: write a temp, move the original aside, move the temp in
    tmp = store / "note.md___jb_tmp___"
    tmp.write_text("jetbrains\n")
    f.rename(store / "note.md___jb_old___")
    tmp.rename(f)
    (store / "note.md___jb_old___").unlink()
    wait_until(committed(repo, "notes/note.md", "jetbrains\n"), message="JetBrains save")
    # VS Code: truncate and write in place
    with f.open("r+") as handle:
        handle.truncate(0)
        handle.write("vscode\n")
    wait_until(committed(repo, "notes/note.md", "vscode\n"), message="VS Code save")
    names = set(git(repo, "log", "--all", "--name-only", "--format=").split())
    assert (
        names
        & {"notes/.#note.md", "notes/note.md~", "notes/note.md___jb_tmp___", "notes/note.md___jb_old___"}
        == set()
    )


def test_rename_and_folders_moved_in_out_within(daemon, repo: Path, store: Path, tmp_path: Path) -> None:
    daemon().start()
    (store / "dir").mkdir()
    (store / "dir/a.md").write_text("a\n")
    (store / "dir/b.md").write_text("b\n")
    wait_until(committed(repo, "notes/dir/b.md", "b\n"))
    (store / "dir/a.md").rename(store / "dir/renamed.md")
    wait_until(
        lambda: (
            set(head_files(repo)) >= {"notes/dir/renamed.md"} and "notes/dir/a.md" not in head_files(repo)
        ),
        message="rename",
    )
    (store / "dir").rename(store / "moved")
    wait_until(
        lambda: (
            {p for p in head_files(repo) if p.startswith("notes/")}
            == {"notes/moved/renamed.md", "notes/moved/b.md"}
        ),
        message="moved within",
    )
    (store / "moved").rename(tmp_path / "outside")
    wait_until(lambda: not any(p.startswith("notes/") for p in head_files(repo)), message="moved out")
    incoming = tmp_path / "incoming"
    (incoming / "deep").mkdir(parents=True)
    (incoming / "deep/x.md").write_text("x\n")
    incoming.rename(store / "incoming")
    wait_until(committed(repo, "notes/incoming/deep/x.md", "x\n"), message="moved in")


def test_burst_of_2000_files_gives_few_commits(daemon, repo: Path, store: Path) -> None:
    daemon("[watch]\ndebounce = 1.0\nmax_delay = 30.0\n").start()
    before = commit_count(repo)
    for i in range(2000):
        sub = store / f"d{i % 20}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.md").write_text(f"file {i}\n")
    wait_until(
        lambda: sum(p.startswith("notes/") for p in head_paths(repo)) == 2000,
        timeout=60,
        interval=0.2,
        message="all 2000 files",
    )
    assert head_files(repo)["notes/d7/f1987.md"] == "file 1987\n"
    assert commit_count(repo) - before <= 3


def test_writes_during_commits_are_never_lost(daemon, repo: Path, store: Path) -> None:
    """A writer rewrites one file every 20 ms while commits happen; HEAD ends equal."""
    daemon("[watch]\ndebounce = 0.05\nmax_delay = 0.3\n").start()
    target = store / "busy.md"
    stop = threading.Event()
    last = {"text": ""}

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 150:
            last["text"] = f"version {i}\n"
            target.write_text(last["text"])
            i += 1
            stop.wait(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    wait_until(lambda: commit_count(repo) >= 4, timeout=30, message="several commits")
    stop.set()
    thread.join()
    wait_until(committed(repo, "notes/busy.md", last["text"]), timeout=15, message="final content committed")


def test_max_delay_commits_edits_that_never_pause(daemon, repo: Path, store: Path) -> None:
    daemon("[watch]\ndebounce = 1.5\nmax_delay = 1.5\n").start()  # never 1.5 s of quiet
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            (store / "stream.md").write_text(f"line {i}\n")
            i += 1
            stop.wait(0.1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until(
            lambda: "notes/stream.md" in head_files(repo), timeout=10, message="commit before the edits pause"
        )
    finally:
        stop.set()
        thread.join()


def test_sigterm_flushes_pending_changes(daemon, repo: Path, store: Path) -> None:
    d = daemon("[watch]\ndebounce = 600\nmax_delay = 600\n").start()
    (store / "late.md").write_text("written just before stop\n")
    env = {"MDBACKUP_CONFIG": str(d.config_path)}
    wait_until(
        lambda: mdbackup("status", "--json", cwd=repo, home=d.home, env=env).json()["counts"]["pending"] == 1,
        message="change recorded",
    )
    assert d.stop() == 0
    assert head_files(repo)["notes/late.md"] == "written just before stop\n"
    d.notify.wait_for("STOPPING=1", timeout=1)


def test_kill_9_then_restart_commits_changes_made_while_down(daemon, repo: Path, store: Path) -> None:
    d = daemon().start()
    (store / "a.md").write_text("before\n")
    wait_until(committed(repo, "notes/a.md", "before\n"))
    d.kill()
    (store / "a.md").write_text("while down\n")
    (store / "b.md").write_text("new while down\n")
    d2 = daemon().start()
    wait_until(
        lambda: (
            head_files(repo).get("notes/a.md") == "while down\n"
            and head_files(repo).get("notes/b.md") == "new while down\n"
        ),
        message="changes made while down",
    )
    assert d2.stop() == 0


def test_single_instance(daemon, repo: Path, store: Path, home: Path) -> None:
    d = daemon().start()
    env = {"MDBACKUP_CONFIG": str(d.config_path)}
    second = mdbackup("run", cwd=repo, home=home, env=env, timeout=30)
    assert second.code == 75 and str(d.proc.pid) in second.err
    once = mdbackup("--once", cwd=repo, home=home, env=env)
    assert once.code == 75
    status = mdbackup("status", "--json", cwd=repo, home=home, env=env).json()
    assert status["daemon"] == {"running": True, "pid": d.proc.pid}


def test_notify_protocol(daemon, repo: Path, store: Path) -> None:
    d = daemon(env={"WATCHDOG_USEC": "400000"}).start()
    d.notify.wait_for("WATCHDOG=1", timeout=5)
    (store / "a.md").write_text("a\n")
    wait_until(committed(repo, "notes/a.md", "a\n"))
    status = next(m for m in d.notify.messages if m.startswith("STATUS="))
    assert "pending" in status
    assert d.stop() == 0
    d.notify.wait_for("STOPPING=1", timeout=1)


def test_pause_resume_retry_reach_the_running_daemon(daemon, repo: Path, store: Path, home: Path) -> None:
    d = daemon()
    d.start()
    env = {"MDBACKUP_CONFIG": str(d.config_path)}
    assert mdbackup("pause", cwd=repo, home=home, env=env).code == 0
    (store / "held.md").write_text("held\n")
    wait_until(
        lambda: mdbackup("status", "--json", cwd=repo, home=home, env=env).json()["counts"]["pending"] == 1,
        message="recorded while paused",
    )
    assert "notes/held.md" not in head_files(repo)
    assert mdbackup("resume", cwd=repo, home=home, env=env).code == 0
    wait_until(committed(repo, "notes/held.md", "held\n"), timeout=5, message="resumed")
    assert d.stop() == 0


def test_retry_reaches_the_running_daemon(daemon, repo: Path, store: Path, home: Path) -> None:
    """Paths failed on a detached HEAD wait for a long backoff; `retry` commits them now."""
    d = daemon("[watch]\ndebounce = 0.2\n[push]\nretry_min = 600\nretry_max = 600\n").start()
    env = {"MDBACKUP_CONFIG": str(d.config_path)}
    git(repo, "checkout", "-q", "--detach")
    (store / "a.md").write_text("a\n")
    wait_until(
        lambda: mdbackup("status", "--json", cwd=repo, home=home, env=env).json()["counts"]["failed"] == 1,
        message="failed on detached HEAD",
    )
    git(repo, "checkout", "-q", "main")
    assert mdbackup("retry", cwd=repo, home=home, env=env).code == 0
    wait_until(committed(repo, "notes/a.md", "a\n"), timeout=5, message="retried")
    assert d.stop() == 0


def test_sighup_reloads_config_and_keeps_old_on_error(daemon, repo: Path, store: Path) -> None:
    d = daemon(FAST + '[commit]\nmessage = "first: {summary}"\n').start()
    (store / "a.md").write_text("a\n")
    wait_until(committed(repo, "notes/a.md", "a\n"))
    assert git(repo, "log", "-1", "--format=%s").startswith("first:")
    text = d.config_path.read_text()
    d.config_path.write_text(text.replace("first:", "second:"))
    d.signal(signal.SIGHUP)
    d.notify.wait_for("RELOADING=1", timeout=5)
    wait_until(lambda: "reloaded" in d.log(), message="reloaded")
    (store / "b.md").write_text("b\n")
    wait_until(committed(repo, "notes/b.md", "b\n"))
    assert git(repo, "log", "-1", "--format=%s").startswith("second:")
    d.config_path.write_text(text.replace("debounce = 0.2", 'debounce = "bad"'))
    d.signal(signal.SIGHUP)
    wait_until(lambda: "reload_rejected" in d.log(), message="bad config rejected")
    (store / "c.md").write_text("c\n")
    wait_until(committed(repo, "notes/c.md", "c\n"))
    assert git(repo, "log", "-1", "--format=%s").startswith("second:")
    assert d.stop() == 0


def test_store_folder_deleted_and_recreated_is_watched_again(daemon, repo: Path, store: Path) -> None:
    import shutil

    daemon().start()
    (store / "a.md").write_text("a\n")
    wait_until(committed(repo, "notes/a.md", "a\n"))
    shutil.rmtree(store)
    wait_until(lambda: "notes/a.md" not in head_files(repo), message="deletion committed")
    store.mkdir()
    (store / "b.md").write_text("b\n")
    wait_until(committed(repo, "notes/b.md", "b\n"), message="first file in the new folder")
    (store / "c.md").write_text("c\n")  # only seen if the new folder is watched
    wait_until(committed(repo, "notes/c.md", "c\n"), message="watched again")


def test_busy_git_defers_without_spinning_and_resumes_by_itself(daemon, repo: Path, store: Path) -> None:
    d = daemon().start()
    lock = repo / ".git/index.lock"
    lock.write_text("")  # the user's git is in the middle of something
    (store / "a.md").write_text("a\n")
    wait_until(lambda: "commit_deferred" in d.log(), message="deferral logged")
    cpu_before, wall_before = d.cpu_seconds(), time.monotonic()
    wait_until(lambda: time.monotonic() - wall_before > 2, message="two seconds of waiting")
    assert d.cpu_seconds() - cpu_before < 0.5, "the daemon spins while git is busy"
    assert lock.exists()  # never removed by us
    lock.unlink()  # the user's git finished
    wait_until(committed(repo, "notes/a.md", "a\n"), timeout=40, message="resumed by itself")
    assert d.log().count("commit_deferred") == 1  # logged once
