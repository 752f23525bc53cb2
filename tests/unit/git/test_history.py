"""mdbackup.git.history: the one commit counter, on real repositories in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pygit2

from mdbackup.git.history import commits_ahead, count_commits, known_commits, ref_commit

SIG = pygit2.Signature("unit", "unit@example.com")


def make_repo(path: Path, commits: int) -> tuple[pygit2.Repository, list[pygit2.Oid]]:
    repo = pygit2.init_repository(str(path), initial_head="main")
    tree = repo.TreeBuilder().write()
    oids: list[pygit2.Oid] = []
    for i in range(commits):
        oids.append(repo.create_commit("refs/heads/main", SIG, SIG, f"c{i}", tree, oids[-1:]))
    return repo, oids


def test_commits_ahead_of_the_tracking_ref(tmp_path: Path) -> None:
    repo, oids = make_repo(tmp_path / "r", 3)
    tracking = "refs/remotes/origin/main"
    assert commits_ahead(repo, local_branch="main", tracking_ref=tracking) == 3  # never pushed
    repo.references.create(tracking, oids[0])
    assert commits_ahead(repo, local_branch="main", tracking_ref=tracking) == 2
    repo.references[tracking].set_target(oids[2])
    assert commits_ahead(repo, local_branch="main", tracking_ref=tracking) == 0
    assert commits_ahead(repo, local_branch="nope", tracking_ref=tracking) is None


def test_unborn_branch_has_no_count(tmp_path: Path) -> None:
    repo = pygit2.init_repository(str(tmp_path / "empty"), initial_head="main")
    assert commits_ahead(repo, local_branch="main", tracking_ref="refs/remotes/origin/main") is None
    assert ref_commit(repo, "HEAD") is None
    assert ref_commit(repo, "not a valid ref name") is None


def test_count_and_known_commits(tmp_path: Path) -> None:
    repo, oids = make_repo(tmp_path / "r", 4)
    assert count_commits(repo, oids[3], []) == 4
    assert count_commits(repo, oids[3], [oids[1]]) == 2
    assert count_commits(repo, oids[1], [oids[3]]) == 0
    tree = str(repo[oids[0]].peel(pygit2.Tree).id)
    missing = "1" * 40
    assert known_commits(repo, [str(oids[2]), missing, tree, "zz", oids[0]]) == [oids[2], oids[0]]
    assert ref_commit(repo, "HEAD") == oids[3]
