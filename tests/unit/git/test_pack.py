"""A large batch's blobs written as one pack: git reads it, fsck and verify-pack accept it."""

from __future__ import annotations

import os
from pathlib import Path

import pygit2

from mdbackup.git import pack
from mdbackup.git.commit import Committer
from mdbackup.git.pack import BlobPack, packable, write_pack
from tests.support.git import git, init_repo

SIG = pygit2.Signature("t", "t@example.com", 1_700_000_000, 0)


def loose_objects(repo: Path) -> int:
    return int(git(repo, "count-objects", "-v").split("count: ")[1].split("\n")[0])


def contents(n: int) -> list[bytes]:
    """Empty, tiny, 15/16/127/128-byte boundaries of the size header, and bigger ones."""
    sizes = [0, 1, 15, 16, 127, 128, 2047, 2048, 70_000]
    return [bytes([65 + i % 26]) * sizes[i % len(sizes)] + str(i).encode() * (i % 3) for i in range(n)]


def test_a_written_pack_is_what_git_reads(repo: Path) -> None:
    blobs = {pygit2.hash(data).raw: data for data in contents(300)}
    name = write_pack(repo / ".git" / "objects" / "pack", blobs)
    assert "ok" in git(repo, "verify-pack", "-v", str(repo / ".git" / "objects" / "pack" / f"{name}.idx"))
    for key, data in blobs.items():
        oid = key.hex()
        assert git(repo, "cat-file", "-t", oid).strip() == "blob"
        assert int(git(repo, "cat-file", "-s", oid)) == len(data)
    assert git(repo, "fsck", "--strict", "--no-dangling") == ""
    assert not [p for p in os.listdir(repo / ".git" / "objects" / "pack") if p.startswith("tmp_")]


def test_blob_pack_writes_nothing_loose_and_libgit2_reads_it_back(repo: Path) -> None:
    r = pygit2.Repository(str(repo))
    before = loose_objects(repo)
    blobs = BlobPack(r)
    stored = {blobs.store(data): data for data in contents(100)}
    assert blobs.flush() == len(stored)
    assert loose_objects(repo) == before
    fresh = pygit2.Repository(str(repo))
    assert all(fresh[oid].data == data for oid, data in stored.items())


def test_a_released_blob_is_not_written_unless_another_path_needs_it(repo: Path) -> None:
    r = pygit2.Repository(str(repo))
    blobs = BlobPack(r)
    shared = blobs.store(b"same content\n")
    blobs.store(b"same content\n")
    alone = blobs.store(b"committed already\n")
    blobs.release(shared)
    blobs.release(alone)
    assert blobs.flush() == 1
    assert shared in pygit2.Repository(str(repo)) and alone not in pygit2.Repository(str(repo))


def test_past_the_buffer_limit_blobs_are_written_loose_at_once(repo: Path) -> None:
    r = pygit2.Repository(str(repo))
    before = loose_objects(repo)
    blobs = BlobPack(r, limit=100)
    held = blobs.store(b"x" * 60)
    loose = blobs.store(b"y" * 60)
    assert loose_objects(repo) == before + 1 and loose in r
    assert blobs.flush() == 1 and held in pygit2.Repository(str(repo))


def test_a_missing_pack_folder_falls_back_to_loose_objects(repo: Path) -> None:
    pack_dir = repo / ".git" / "objects" / "pack"
    os.rmdir(pack_dir)
    r = pygit2.Repository(str(repo))
    blobs = BlobPack(r)
    oid = blobs.store(b"kept anyway\n")
    assert blobs.flush() == 0
    assert pygit2.Repository(str(repo))[oid].data == b"kept anyway\n"


def test_only_large_batches_of_sha1_repositories_are_packed(repo: Path, tmp_path: Path) -> None:
    r = pygit2.Repository(str(repo))
    assert not packable(r, pack.PACK_MIN - 1) and packable(r, pack.PACK_MIN)
    r.config["extensions.objectformat"] = "sha256"
    assert not packable(r, 10_000)


def test_a_large_batch_is_committed_from_one_pack_and_equals_git(tmp_path: Path) -> None:
    ours, theirs = init_repo(tmp_path / "ours"), init_repo(tmp_path / "theirs")
    paths = [f"notes/f{i % 7}/n{i}.md" for i in range(pack.PACK_MIN * 2)]
    for root in (ours, theirs):
        for i, path in enumerate(paths):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(contents(len(paths))[i])
    loose_before = loose_objects(ours)
    result = Committer(pygit2.Repository(str(ours))).commit_paths(
        paths, message=lambda changes: "backup", author=SIG, committer=SIG, max_file_size=1 << 20
    )
    assert result.commit_id is not None and not result.failed
    git(theirs, "add", "-A")
    git(theirs, "commit", "-q", "-m", "x")
    assert git(ours, "ls-tree", "-r", "HEAD") == git(theirs, "ls-tree", "-r", "HEAD")
    assert git(ours, "status", "--porcelain") == ""
    assert git(ours, "fsck", "--strict", "--no-dangling") == ""
    # one commit, its trees: loose; no blob is
    assert loose_objects(ours) - loose_before == 1 + len({p.rsplit("/", 1)[0] for p in paths}) + 1 + 1
