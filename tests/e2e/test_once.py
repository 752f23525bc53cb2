"""`mdbackup run --once`, `status`, `pause`/`resume`/`retry`, run as a user would."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.support.cli import config_file, mdbackup
from tests.support.git import commit_count, git, head_files


def once(repo: Path, home: Path, *extra: str, env=None):
    return mdbackup(
        "run", "--once", "--repo", str(repo), "--store", "notes", *extra, cwd=repo, home=home, env=env
    )


def test_once_commits_store_changes_only(repo: Path, home: Path, store: Path) -> None:
    (store / "a.md").write_text("a\n")
    (store / "sub").mkdir()
    (store / "sub/b.md").write_text("b\n")
    (store / "c.txt").write_text("not markdown\n")
    (repo / "outside.md").write_text("outside the store\n")
    result = once(repo, home)
    assert result.code == 0, result.err
    files = head_files(repo)
    assert files["notes/a.md"] == "a\n" and files["notes/sub/b.md"] == "b\n"
    assert "notes/c.txt" not in files and "outside.md" not in files
    message = git(repo, "log", "-1", "--format=%s")
    assert message.strip() == "backup: 2 files: a.md, sub/b.md"
    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == "Test User <test@example.com>"
    # a second pass with nothing new makes no commit
    count = commit_count(repo)
    assert once(repo, home).code == 0
    assert commit_count(repo) == count


def test_mdbackup_once_shorthand_and_default_store(repo: Path, home: Path) -> None:
    (repo / "top.md").write_text("top\n")
    result = mdbackup("--once", cwd=repo, home=home)
    assert result.code == 0, result.err
    assert head_files(repo)["top.md"] == "top\n"


def test_editor_temp_files_are_never_committed(repo: Path, home: Path, store: Path) -> None:
    for name in ("a.md.swp", "4913", "a.md~", ".#a.md", "#a.md#", "x.tmp", "a.md___jb_tmp___", ".DS_Store"):
        (store / name).write_text("temp\n")
    (store / "real.md").write_text("real\n")
    assert once(repo, home, "--log-format", "json").code == 0
    assert [p for p in head_files(repo) if p.startswith("notes/")] == ["notes/real.md"]


def test_deletions_and_renames_found_by_scan(repo: Path, home: Path, store: Path) -> None:
    (store / "old.md").write_text("x\n")
    (store / "gone.md").write_text("y\n")
    assert once(repo, home).code == 0
    (store / "old.md").rename(store / "new.md")
    (store / "gone.md").unlink()
    assert once(repo, home).code == 0
    files = head_files(repo)
    assert "notes/old.md" not in files and "notes/gone.md" not in files
    assert files["notes/new.md"] == "x\n"


def test_status_json_shape(repo: Path, home: Path, store: Path) -> None:
    (store / "a.md").write_text("a\n")
    assert once(repo, home).code == 0
    result = mdbackup(
        "status",
        "--json",
        "--all",
        cwd=repo,
        home=home,
        env={"MDBACKUP_CONFIG": str(config_file(home, repo))},
    )
    assert result.code == 0, result.err
    doc = result.json()
    assert set(doc) >= {"repo", "store", "daemon", "paused", "counts", "paths", "head", "push"}
    assert doc["repo"] == str(repo.resolve()) and doc["store"] == "notes"
    assert doc["daemon"] == {"running": False, "pid": None}
    assert doc["paused"] is False
    assert doc["counts"] == {"pending": 0, "queued": 0, "success": 1, "failed": 0, "disabled": 0}
    (row,) = doc["paths"]
    assert row["path"] == "notes/a.md" and row["status"] == "success"
    assert row["last_backup_at"].endswith("Z") and row["attempts"] == 0
    assert set(row) >= {"path", "status", "last_backup_at", "last_error", "attempts", "updated_at"}
    assert doc["head"] == {"branch": "main", "commit": git(repo, "rev-parse", "HEAD").strip()}
    assert doc["push"]["enabled"] is False and doc["push"]["status"] == "disabled"
    assert set(doc["push"]) >= {
        "enabled",
        "remote",
        "branch",
        "status",
        "ahead",
        "last_push_at",
        "last_error",
        "next_attempt_at",
    }
    # without --all, success paths are not listed
    plain = mdbackup(
        "status", "--json", cwd=repo, home=home, env={"MDBACKUP_CONFIG": str(config_file(home, repo))}
    )
    assert plain.json()["paths"] == []
    text = mdbackup("status", cwd=repo, home=home, env={"MDBACKUP_CONFIG": str(config_file(home, repo))})
    assert "1 success" in text.out and "not running" in text.out


def test_failed_path_exit_1_and_last_backup_at_survives(repo: Path, home: Path, store: Path) -> None:
    cfg = config_file(home, repo, "max_file_size = 100\n")
    env = {"MDBACKUP_CONFIG": str(cfg)}
    (store / "a.md").write_text("small\n")
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 0
    (store / "a.md").write_text("x" * 500)
    (store / "b.md").write_text("fine\n")
    result = mdbackup("--once", cwd=repo, home=home, env=env)
    assert result.code == 1
    assert head_files(repo)["notes/b.md"] == "fine\n"
    status = mdbackup("status", "--json", cwd=repo, home=home, env=env)
    assert status.code == 1
    (row,) = status.json()["paths"]
    assert row["path"] == "notes/a.md" and row["status"] == "failed"
    assert "max_file_size" in row["last_error"] and row["last_backup_at"] is not None


def test_busy_repository_exits_75_and_keeps_paths_pending(repo: Path, home: Path, store: Path) -> None:
    (store / "a.md").write_text("a\n")
    lock = repo / ".git/index.lock"
    lock.write_text("")
    result = once(repo, home)
    assert result.code == 75 and "index.lock" in result.err
    assert lock.exists()
    lock.unlink()  # the user's git finished
    assert once(repo, home).code == 0
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_pause_resume(repo: Path, home: Path, store: Path) -> None:
    env = {"MDBACKUP_CONFIG": str(config_file(home, repo))}
    assert mdbackup("pause", cwd=repo, home=home, env=env).code == 0
    (store / "a.md").write_text("a\n")
    result = mdbackup("--once", cwd=repo, home=home, env=env)
    assert result.code == 0 and "paused" in result.err
    assert "notes/a.md" not in head_files(repo)
    assert mdbackup("status", "--json", cwd=repo, home=home, env=env).json()["paused"] is True
    assert mdbackup("resume", cwd=repo, home=home, env=env).code == 0
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 0
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_retry_makes_failed_paths_pending(repo: Path, home: Path, store: Path) -> None:
    env = {"MDBACKUP_CONFIG": str(config_file(home, repo, "max_file_size = 10\n"))}
    (store / "a.md").write_text("x" * 50)
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 1
    assert mdbackup("retry", cwd=repo, home=home, env=env).code == 0
    doc = mdbackup("status", "--json", cwd=repo, home=home, env=env).json()
    assert doc["counts"]["pending"] == 1 and doc["counts"]["failed"] == 0


def test_deleting_the_state_database_loses_nothing(repo: Path, home: Path, store: Path) -> None:
    (store / "a.md").write_text("a\n")
    assert once(repo, home).code == 0
    (store / "a.md").write_text("changed while the database is gone\n")
    (store / "b.md").write_text("new\n")
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (repo / ".git/mdbackup" / name).unlink(missing_ok=True)
    assert once(repo, home).code == 0
    files = head_files(repo)
    assert files["notes/a.md"] == "changed while the database is gone\n"
    assert files["notes/b.md"] == "new\n"


def test_second_instance_exits_75_naming_the_pid(repo: Path, home: Path, store: Path) -> None:
    import subprocess
    import sys

    from tests.support.cli import ROOT
    from tests.support.wait import wait_until

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from mdbackup.lock import RepositoryLock;"
            f"l = RepositoryLock.acquire(pathlib.Path({str(repo / '.git/mdbackup/lock')!r}));"
            "print('held', flush=True); sys.stdin.read()",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = once(repo, home)
        assert result.code == 75
        assert str(holder.pid) in result.err
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    wait_until(lambda: once(repo, home).code == 0, timeout=10, message="lock released")


def test_detached_head_fails_with_clear_message(repo: Path, home: Path, store: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    (store / "a.md").write_text("a\n")
    result = once(repo, home)
    assert result.code == 1
    doc = mdbackup(
        "status",
        "--json",
        "--all",
        cwd=repo,
        home=home,
        env={"MDBACKUP_CONFIG": str(config_file(home, repo))},
    ).json()
    assert doc["paths"][0]["status"] == "failed"
    assert "detached" in doc["paths"][0]["last_error"]


def test_never_runs_the_git_binary(repo: Path, home: Path, store: Path, tmp_path: Path) -> None:
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    record = tmp_path / "git-calls"
    fake = fake_bin / "git"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {record}\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (store / "a.md").write_text("a\n")
    env = {"PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    for args in (
        ["run", "--once", "--repo", str(repo), "--store", "notes"],
        ["status", "--json"],
        ["check"],
        ["retry"],
        ["pause"],
        ["resume"],
    ):
        result = mdbackup(*args, cwd=repo, home=home, env=env)
        assert result.code in (0, 1), (args, result.err)
    assert not record.exists(), record.read_text()
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_bad_config_exits_2_naming_the_key(repo: Path, home: Path) -> None:
    cfg = config_file(home, repo, '[watch]\ndebounce = "soon"\n[bogus]\nx = 1\n')
    result = mdbackup("--config", str(cfg), "--once", cwd=repo, home=home)
    assert result.code == 2
    assert "'watch.debounce'" in result.err and "bogus" in result.err
    assert "Traceback" not in result.err


def test_repo_that_is_not_a_work_tree_exits_2(tmp_path: Path, home: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = mdbackup("run", "--once", "--repo", str(plain), cwd=tmp_path, home=home)
    assert result.code == 2 and "--repo" in result.err


def test_version_and_usage_errors(repo: Path, home: Path) -> None:
    from mdbackup import __version__

    version = mdbackup("--version", cwd=repo, home=home)
    assert version.code == 0 and version.out.strip() == f"mdbackup {__version__}"
    bad = mdbackup("frobnicate", cwd=repo, home=home)
    assert bad.code == 2 and "frobnicate" in bad.err and "Traceback" not in bad.err
    flag = mdbackup("run", "--push", "--no-push", cwd=repo, home=home)
    assert flag.code == 2 and "--no-push" in flag.err


def test_python_dash_m_daemon_is_the_same_program(repo: Path, home: Path) -> None:
    import subprocess
    import sys

    from tests.support.cli import ROOT, isolated_env

    out = subprocess.run(
        [sys.executable, "-m", "mdbackup", "--help"],
        cwd=ROOT,
        text=True,
        capture_output=True,
        env=isolated_env(home),
        check=True,
    ).stdout
    assert out.startswith("usage: mdbackup")


def test_store_folder_missing_is_not_a_config_error(repo: Path, home: Path, store: Path, daemon) -> None:
    import shutil

    from tests.support.wait import wait_until

    (store / "a.md").write_text("a\n")
    assert once(repo, home).code == 0
    shutil.rmtree(store)
    result = once(repo, home)
    assert result.code == 0, result.err  # the deletion is committed, nothing to configure
    assert "notes/a.md" not in head_files(repo)
    d = daemon().start()  # the daemon starts without its store and waits for it
    store.mkdir()
    (store / "b.md").write_text("b\n")
    wait_until(lambda: head_files(repo).get("notes/b.md") == "b\n", message="store reappeared")
    assert d.stop() == 0


def test_a_repository_libgit2_cannot_read_is_one_line_and_exit_2_everywhere(
    repo: Path, home: Path, store: Path
) -> None:
    """A split index once killed run, --once and status with a traceback while check said ok."""
    (store / "a.md").write_text("a\n")
    git(repo, "update-index", "--split-index")
    for args in (["--once", "--repo", str(repo), "--store", "notes"], ["status"], ["check"], ["retry"]):
        result = mdbackup(*args, cwd=repo, home=home)
        assert result.code == 2, (args, result.err)
        assert "Traceback" not in result.err and "split index" in result.err
        assert "git update-index --no-split-index" in result.err
        assert len(result.err.strip().splitlines()) == 1, result.err


def test_once_takes_run_options_before_the_command(repo: Path, home: Path, store: Path) -> None:
    """`mdbackup --once --repo DIR` once failed with "invalid choice"."""
    (store / "a.md").write_text("a\n")
    result = mdbackup(
        "--once", "--repo", str(repo), "--store", "notes", "--no-push", cwd=repo.parent, home=home
    )
    assert result.code == 0, result.err
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_installed_commit_hooks_are_reported_not_run(repo: Path, home: Path, store: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.parent.mkdir(exist_ok=True)
    marker = repo.parent / "hook-ran"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    hook.chmod(0o755)
    (store / "a.md").write_text("a\n")
    once = mdbackup("--once", "--repo", str(repo), "--store", "notes", cwd=repo, home=home)
    assert once.code == 0 and "hooks_not_run" in once.err and "pre-commit" in once.err
    assert head_files(repo)["notes/a.md"] == "a\n" and not marker.exists()
    check = mdbackup("check", cwd=repo, home=home)
    assert "hooks: pre-commit installed, not run for backup commits" in check.out
