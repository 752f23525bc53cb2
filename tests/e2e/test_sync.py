"""Sync as the user sees it: two clones of one bare remote (by path), `--once`, `status`,
`check`, two daemons converging, and a SIGKILL at each sync crash point."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.cli import config_file, mdbackup
from tests.support.clones import Clones, commit_all, make_clones, push, write
from tests.support.daemon import Daemon, watch_config
from tests.support.git import git, head_files
from tests.support.wait import wait_until

SYNC = "[push]\nenabled = true\nretry_min = 1\nretry_max = 2\n[sync]\nenabled = true\ninterval = {interval}\n"


@pytest.fixture
def clones(tmp_path: Path) -> Clones:
    return make_clones(tmp_path, files={"notes/a.md": "one\ntwo\nthree\n", "other/c.txt": "c\n"})


def env_for(home: Path, repo: Path, interval: float = 60) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {"MDBACKUP_CONFIG": str(config_file(home, repo, SYNC.format(interval=interval)))}


def remote_head(clones: Clones) -> str:
    return git(clones.remote, "rev-parse", "main").strip()


def heads_equal(clones: Clones) -> bool:
    remote = remote_head(clones)  # read once: every clone must be at that very commit
    return all(git(r, "rev-parse", "HEAD").strip() == remote for r in (clones.a, clones.b))


def test_once_merges_both_machines_and_keeps_both_versions_of_a_conflict(
    clones: Clones, tmp_path: Path
) -> None:
    env_a, env_b = env_for(tmp_path / "home-a", clones.a), env_for(tmp_path / "home-b", clones.b)
    write(clones.a, "notes/a.md", "one\nTWO from a\nthree\n")
    write(clones.a, "notes/only-a.md", "a\n")
    first = mdbackup("--once", cwd=clones.a, home=tmp_path / "home-a", env=env_a)
    assert first.code == 0, first.err
    write(clones.b, "notes/a.md", "one\nTWO from b\nthree\n")
    write(clones.b, "notes/only-b.md", "b\n")
    second = mdbackup("--once", cwd=clones.b, home=tmp_path / "home-b", env=env_b)
    assert second.code == 0, second.err
    again = mdbackup("--once", cwd=clones.a, home=tmp_path / "home-a", env=env_a)
    assert again.code == 0, again.err
    assert heads_equal(clones)
    files = head_files(clones.remote, "main")
    assert files["notes/only-a.md"] == "a\n" and files["notes/only-b.md"] == "b\n"
    copies = [p for p in files if p.startswith("notes/a.conflict-")]
    assert len(copies) == 1
    assert {files["notes/a.md"], files[copies[0]]} == {"one\nTWO from a\nthree\n", "one\nTWO from b\nthree\n"}
    for repo in (clones.a, clones.b):
        assert git(repo, "status", "--porcelain") == ""
        assert (repo / copies[0]).exists()
    doc = mdbackup("status", "--json", cwd=clones.b, home=tmp_path / "home-b", env=env_b).json()
    assert doc["sync"]["conflicts"] == copies and doc["sync"]["status"] == "idle"
    assert set(doc["sync"]) >= {
        "enabled",
        "status",
        "last_fetch_at",
        "behind",
        "ahead",
        "conflicts",
        "blocked_by",
        "last_error",
    }


def test_check_says_a_merge_would_be_blocked_and_changes_nothing(clones: Clones, tmp_path: Path) -> None:
    home = tmp_path / "home-a"
    env = env_for(home, clones.a)
    write(clones.b, "other/c.txt", "from b\n")
    commit_all(clones.b)
    push(clones.b)
    write(clones.a, "other/c.txt", "mine\n")
    head = git(clones.a, "rev-parse", "HEAD").strip()
    tracking = git(clones.a, "rev-parse", "refs/remotes/origin/main").strip()
    result = mdbackup("check", cwd=clones.a, home=home, env=env)
    assert result.code == 1
    assert "sync: blocked" in result.out and "other/c.txt" in result.out
    assert git(clones.a, "rev-parse", "HEAD").strip() == head
    assert git(clones.a, "rev-parse", "refs/remotes/origin/main").strip() == tracking
    assert (clones.a / "other/c.txt").read_text() == "mine\n"
    write(clones.a, "notes/mine.md", "mine\n")
    once = mdbackup("--once", cwd=clones.a, home=home, env=env)
    assert once.code == 1, once.err  # the push cannot land while the merge waits
    assert head_files(clones.a)["notes/mine.md"] == "mine\n"  # local backups go on
    doc = mdbackup("status", "--json", cwd=clones.a, home=home, env=env).json()
    assert (doc["sync"]["status"], doc["sync"]["blocked_by"]) == ("blocked", "other/c.txt")
    assert doc["sync"]["behind"] == 1 and doc["sync"]["ahead"] == 1
    assert (clones.a / "other/c.txt").read_text() == "mine\n"


def test_two_daemons_converge_on_edits_to_different_notes(clones: Clones, tmp_path: Path) -> None:
    config = watch_config(debounce=0.2, max_delay=2.0) + SYNC.format(interval=1)
    a = Daemon(repo=clones.a, home=tmp_path / "home-a", config=config)
    b = Daemon(repo=clones.b, home=tmp_path / "home-b", config=config)
    try:
        a.start()
        b.start()
        for i in range(3):
            write(clones.a, f"notes/from-a-{i}.md", f"a {i}\n")
            write(clones.b, f"notes/from-b-{i}.md", f"b {i}\n")
        wanted = {f"notes/from-{m}-{i}.md" for m in "ab" for i in range(3)}

        def converged() -> bool:
            if not heads_equal(clones):
                return False
            return wanted <= set(head_files(clones.remote, "main"))

        wait_until(
            converged,
            timeout=60,
            message=lambda: f"convergence; a:\n{a.log()[-3000:]}\nb:\n{b.log()[-3000:]}",
        )
        for repo in (clones.a, clones.b):
            for name in wanted:
                assert (repo / name).exists(), name
            assert git(repo, "status", "--porcelain") == ""
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    "point", ["sync_fetched", "sync_tree_written", "sync_index_written", "sync_ref_moved"]
)
def test_a_kill_at_each_sync_step_converges_on_restart(clones: Clones, tmp_path: Path, point: str) -> None:
    home = tmp_path / "home-a"
    env = env_for(home, clones.a)
    write(clones.b, "notes/a.md", "one\ntwo\nthree from b\n")
    write(clones.b, "notes/new.md", "new from b\n")
    write(clones.b, "other/c.txt", "c from b\n")
    commit_all(clones.b)
    push(clones.b)
    write(clones.a, "notes/mine.md", "mine\n")  # committed first, then a merge
    killed = mdbackup("--once", cwd=clones.a, home=home, env={**env, "MDBACKUP_CRASH_AT": point})
    assert killed.code == -9, (killed.code, killed.err)
    after = mdbackup("--once", cwd=clones.a, home=home, env=env)
    assert after.code == 0, after.err
    assert heads_equal_two(clones.a, clones.remote)
    files = head_files(clones.a)
    assert files["notes/mine.md"] == "mine\n"
    assert files["notes/new.md"] == "new from b\n" and files["other/c.txt"] == "c from b\n"
    assert files["notes/a.md"] == "one\ntwo\nthree from b\n"
    assert git(clones.a, "status", "--porcelain") == ""
    leftovers = [p for p in clones.a.rglob("*") if ".git" not in p.parts and p.name.endswith(".tmp")]
    assert leftovers == []
    assert not any((clones.a / ".git" / "mdbackup" / "sync-tmp").glob("*"))
    assert not (clones.a / ".git" / "index.lock").exists()


def heads_equal_two(repo: Path, remote: Path) -> bool:
    return git(repo, "rev-parse", "HEAD").strip() == git(remote, "rev-parse", "main").strip()


def test_sync_never_runs_the_git_binary(clones: Clones, tmp_path: Path) -> None:
    """Fetch, merge with a conflict copy, fast-forward, `check` and `status` with a `git` on
    PATH that records any call: libgit2 does it all, nothing calls it."""
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    record = tmp_path / "git-calls"
    fake = fake_bin / "git"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {record}\nexit 1\n')
    fake.chmod(0o755)
    path = {"PATH": f"{fake_bin}:{os.environ['PATH']}"}
    homes = {clones.a: tmp_path / "home-a", clones.b: tmp_path / "home-b"}
    envs = {repo: {**env_for(home, repo), **path} for repo, home in homes.items()}
    write(clones.a, "notes/a.md", "one\nTWO from a\nthree\n")
    write(clones.b, "notes/a.md", "one\nTWO from b\nthree\n")
    for repo in (clones.a, clones.b, clones.a):  # push; merge with a conflict; fast-forward
        result = mdbackup("--once", cwd=repo, home=homes[repo], env=envs[repo])
        assert result.code == 0, result.err
    for args in (["check"], ["status", "--json"]):
        assert mdbackup(*args, cwd=clones.b, home=homes[clones.b], env=envs[clones.b]).code == 0
    assert not record.exists(), record.read_text()
    assert heads_equal(clones)
    assert any(p.startswith("notes/a.conflict-") for p in head_files(clones.remote, "main"))
