"""Push of 1 new commit to a local bare remote holding 50,000 files, against `git push`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2

from bench.common import Row, big_repo, median_ms
from mdbackup.git.commit import Committer
from mdbackup.git.credentials import Credentials
from mdbackup.git.push import push_branch
from mdbackup.git.repo import open_repository
from tests.support.git import git

SIG = pygit2.Signature("bench", "bench@example.com")


def run(workdir: Path, *, runs: int = 11, total: int = 50_000) -> list[Row]:
    repo_path = big_repo(workdir / "push-repo", total=total, store_files=10_000)
    ours_remote = workdir / "ours.git"
    git_remote = workdir / "git.git"
    for remote in (ours_remote, git_remote):
        subprocess.run(["git", "clone", "-q", "--bare", str(repo_path), str(remote)], check=True)
    git(repo_path, "remote", "add", "ours", str(ours_remote))
    git(repo_path, "remote", "add", "theirs", str(git_remote))
    repo = open_repository(repo_path)
    committer = Committer(repo)
    target = repo_path / "notes/d03/f3.md"
    samples_ours: list[float] = []
    samples_git: list[float] = []
    import time

    for i in range(runs + 1):
        target.write_text(f"push {i}\n")
        committer.commit_paths(
            ["notes/d03/f3.md"], message=lambda c: "x", author=SIG, committer=SIG, max_file_size=10**7
        )
        start = time.perf_counter()
        result = push_branch(
            repo, remote_name="ours", local_branch="main", remote_branch="main", credentials=Credentials()
        )
        ours = time.perf_counter() - start
        assert result.ok and result.commits == 1, result
        start = time.perf_counter()
        subprocess.run(["git", "-C", str(repo_path), "push", "-q", "theirs", "main"], check=True)
        theirs = time.perf_counter() - start
        if i:  # the first round warms caches on both sides
            samples_ours.append(ours)
            samples_git.append(theirs)
    m_ours, m_git = median_ms(samples_ours), median_ms(samples_git)
    verdict = "PASS" if m_ours <= m_git else "FAIL"
    return [
        Row(
            f"push 1 commit, bare remote of {total} files (median of {runs})",
            f"{m_ours:.1f} ms",
            f"git push {m_git:.1f} ms",
            "<= git push",
            f"{verdict} ({m_git / m_ours:.1f}x)",
        )
    ]
