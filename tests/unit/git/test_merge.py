"""mdbackup.git.merge against real repositories: fast-forward, clean merges, and every
kind of conflict kept as both versions (git shows the resulting trees)."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from mdbackup.git.merge import (
    FAST_FORWARD,
    MERGE,
    UP_TO_DATE,
    commit_merge,
    conflict_name,
    plan_merge,
    stamp,
)
from tests.support.clones import Clones, commit_all, make_clones, push, write
from tests.support.git import git

SIG = pygit2.Signature("t", "t@example.com")


@pytest.fixture
def clones(tmp_path: Path) -> Clones:
    return make_clones(tmp_path, files={"notes/a.md": "one\ntwo\nthree\nfour\nfive\n", "notes/b.md": "b\n"})


def heads(clones: Clones) -> tuple[pygit2.Repository, pygit2.Oid, pygit2.Oid]:
    """Clone a's repository, its head, and b's head fetched into a."""
    git(clones.a, "fetch", "-q", str(clones.b), "main:refs/remotes/b/main")
    repo = pygit2.Repository(str(clones.a))
    theirs = repo.references["refs/remotes/b/main"].target
    assert isinstance(theirs, pygit2.Oid)
    return repo, repo.head.target, theirs


def tree_files(repo: pygit2.Repository, tree_id: pygit2.Oid) -> dict[str, str]:
    tree = repo[tree_id].peel(pygit2.Tree)
    found: dict[str, str] = {}

    def walk(t: pygit2.Tree, prefix: str) -> None:
        for entry in t:
            obj = repo[entry.id]
            if isinstance(obj, pygit2.Tree):
                walk(obj, f"{prefix}{entry.name}/")
            else:
                found[f"{prefix}{entry.name}"] = obj.peel(pygit2.Blob).data.decode()

    walk(tree, "")
    return found


def test_conflict_name_keeps_the_extension_and_avoids_taken_names() -> None:
    name = conflict_name("notes/a.md", label="abc1234", stamp="20261203T100000Z", taken=set())
    assert name == "notes/a.conflict-abc1234-20261203T100000Z.md"
    again = conflict_name("notes/a.md", label="abc1234", stamp="20261203T100000Z", taken={name})
    assert again == "notes/a.conflict-abc1234-20261203T100000Z-2.md"
    assert conflict_name(".hidden", label="x", stamp="s", taken=set()) == ".hidden.conflict-x-s"
    assert stamp(0) == "19700101T000000Z" and stamp(1_796_295_600.9) == "20261203T110000Z"


def test_up_to_date_and_fast_forward(clones: Clones) -> None:
    repo, ours, theirs = heads(clones)
    assert plan_merge(repo, ours=ours, theirs=theirs, label="x", stamp="s").kind == UP_TO_DATE
    write(clones.b, "notes/b.md", "b2\n")
    commit_all(clones.b)
    repo, ours, theirs = heads(clones)
    plan = plan_merge(repo, ours=ours, theirs=theirs, label="x", stamp="s")
    assert (plan.kind, plan.behind, plan.ahead) == (FAST_FORWARD, 1, 0)
    assert commit_merge(repo, plan, message="m", author=SIG, committer=SIG) == theirs
    commit_all_a = write(clones.a, "notes/c.md", "c\n")
    assert commit_all_a.exists()
    commit_all(clones.a)
    repo = pygit2.Repository(str(clones.a))
    ahead_only = plan_merge(repo, ours=repo.head.target, theirs=ours, label="x", stamp="s")
    assert (ahead_only.kind, ahead_only.ahead) == (UP_TO_DATE, 1)


def test_edits_to_different_lines_merge_line_by_line(clones: Clones) -> None:
    write(clones.a, "notes/a.md", "ONE\ntwo\nthree\nfour\nfive\n")
    commit_all(clones.a)
    write(clones.b, "notes/a.md", "one\ntwo\nthree\nfour\nFIVE\n")
    commit_all(clones.b)
    repo, ours, theirs = heads(clones)
    plan = plan_merge(repo, ours=ours, theirs=theirs, label="x", stamp="s")
    assert plan.kind == MERGE and plan.conflicts == ()
    assert plan.tree is not None
    assert tree_files(repo, plan.tree)["notes/a.md"] == "ONE\ntwo\nthree\nfour\nFIVE\n"
    merge = commit_merge(repo, plan, message="sync", author=SIG, committer=SIG)
    assert repo[merge].peel(pygit2.Commit).parent_ids == [ours, theirs]


def test_the_same_line_edited_keeps_ours_and_theirs_beside_it(clones: Clones) -> None:
    write(clones.a, "notes/a.md", "one\nTWO-A\nthree\nfour\nfive\n")
    commit_all(clones.a)
    write(clones.b, "notes/a.md", "one\nTWO-B\nthree\nfour\nfive\n")
    commit_all(clones.b)
    repo, ours, theirs = heads(clones)
    plan = plan_merge(repo, ours=ours, theirs=theirs, label="b1", stamp="20261203T000000Z")
    assert plan.tree is not None
    files = tree_files(repo, plan.tree)
    assert files["notes/a.md"] == "one\nTWO-A\nthree\nfour\nfive\n"
    assert files["notes/a.conflict-b1-20261203T000000Z.md"] == "one\nTWO-B\nthree\nfour\nfive\n"
    assert [(c.path, c.kind, c.copy) for c in plan.conflicts] == [
        ("notes/a.md", "content", "notes/a.conflict-b1-20261203T000000Z.md")
    ]
    assert not any("<<<<" in text for text in files.values())


def test_modify_delete_keeps_the_modified_file_either_way(clones: Clones) -> None:
    git(clones.a, "rm", "-q", "notes/a.md")
    write(clones.a, "notes/b.md", "b-a\n")
    commit_all(clones.a)
    write(clones.b, "notes/a.md", "changed by b\n")
    git(clones.b, "rm", "-q", "notes/b.md")
    commit_all(clones.b)
    repo, ours, theirs = heads(clones)
    plan = plan_merge(repo, ours=ours, theirs=theirs, label="x", stamp="s")
    assert plan.tree is not None
    files = tree_files(repo, plan.tree)
    assert files["notes/a.md"] == "changed by b\n"
    assert files["notes/b.md"] == "b-a\n"
    assert {(c.path, c.kind, c.kept) for c in plan.conflicts} == {
        ("notes/a.md", "modify/delete", "theirs"),
        ("notes/b.md", "modify/delete", "ours"),
    }


def test_both_added_keeps_both(clones: Clones) -> None:
    write(clones.a, "notes/new.md", "from a\n")
    commit_all(clones.a)
    write(clones.b, "notes/new.md", "from b\n")
    commit_all(clones.b)
    repo, ours, theirs = heads(clones)
    plan = plan_merge(repo, ours=ours, theirs=theirs, label="x", stamp="s")
    assert plan.tree is not None
    files = tree_files(repo, plan.tree)
    assert files["notes/new.md"] == "from a\n"
    assert files["notes/new.conflict-x-s.md"] == "from b\n"
    assert [c.kind for c in plan.conflicts] == ["both-added"]


def test_a_rename_on_one_side_takes_the_edit_of_the_other(clones: Clones) -> None:
    write(clones.a, "notes/a.md", "one\ntwo\nthree\nfour\nFIVE\n")
    commit_all(clones.a)
    git(clones.b, "mv", "notes/a.md", "notes/renamed.md")
    commit_all(clones.b)
    repo, ours, theirs = heads(clones)
    plan = plan_merge(repo, ours=ours, theirs=theirs, label="x", stamp="s")
    assert plan.tree is not None
    files = tree_files(repo, plan.tree)
    assert "notes/a.md" not in files
    assert files["notes/renamed.md"] == "one\ntwo\nthree\nfour\nFIVE\n"
    assert plan.conflicts == ()


def test_renamed_differently_on_each_side_keeps_both_names(clones: Clones) -> None:
    git(clones.a, "mv", "notes/b.md", "notes/b-a.md")
    commit_all(clones.a)
    git(clones.b, "mv", "notes/b.md", "notes/b-b.md")
    commit_all(clones.b)
    repo, ours, theirs = heads(clones)
    plan = plan_merge(repo, ours=ours, theirs=theirs, label="x", stamp="s")
    assert plan.tree is not None
    files = tree_files(repo, plan.tree)
    assert files.get("notes/b-a.md") == "b\n" and files.get("notes/b-b.md") == "b\n"


def test_git_agrees_the_merge_commit_is_a_merge_of_both(clones: Clones) -> None:
    write(clones.a, "notes/x.md", "x\n")
    commit_all(clones.a)
    write(clones.b, "notes/y.md", "y\n")
    commit_all(clones.b)
    push(clones.b)
    repo, ours, theirs = heads(clones)
    plan = plan_merge(repo, ours=ours, theirs=theirs, label="x", stamp="s")
    merge = commit_merge(repo, plan, message="sync", author=SIG, committer=SIG)
    git(clones.a, "merge-base", "--is-ancestor", str(theirs), str(merge))
    git(clones.a, "merge-base", "--is-ancestor", str(ours), str(merge))
    expected = git(clones.a, "merge-tree", "--write-tree", str(ours), str(theirs)).split()[0]
    assert str(plan.tree) == expected


def test_a_deletion_paired_by_rename_detection_with_a_file_added_on_both_stays(
    clones: Clones,
) -> None:
    """a deletes x.md and adds y.md; b adds the same y.md: git deletes x.md and keeps one y.md
    (libgit2 calls x.md -> y.md a rename and reports conflicts git does not have)."""
    body = "".join(f"line {i}\n" for i in range(30))
    write(clones.a, "notes/x.md", "x first\n" + body)
    commit_all(clones.a)
    push(clones.a)
    git(clones.b, "pull", "-q", "--no-rebase", "origin", "main")
    git(clones.a, "rm", "-q", "notes/x.md")
    write(clones.a, "notes/y.md", "y first\n" + body)
    commit_all(clones.a)
    write(clones.b, "notes/y.md", "y first\n" + body)
    commit_all(clones.b)
    repo, ours, theirs = heads(clones)
    plan = plan_merge(repo, ours=ours, theirs=theirs, label="x", stamp="s")
    expected = git(clones.a, "merge-tree", "--write-tree", str(ours), str(theirs)).split()[0]
    assert str(plan.tree) == expected
    assert plan.tree is not None and "notes/x.md" not in tree_files(repo, plan.tree)
    assert not any(c.copy for c in plan.conflicts)
