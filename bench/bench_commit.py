"""Commit of 1 changed file in a repo of 50,000 tracked files (store of 10,000)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pygit2

from bench.common import Row, big_repo, median_ms, timed
from mdbackup.git.commit import Committer
from mdbackup.git.repo import open_repository

SIG = pygit2.Signature("bench", "bench@example.com")


def run(workdir: Path, *, runs: int = 15, total: int = 50_000, store_files: int = 10_000) -> list[Row]:
    repo_path = big_repo(workdir / "commit-repo", total=total, store_files=store_files)
    target = repo_path / "notes/d07/f7.md"
    rel = "notes/d07/f7.md"
    counter = iter(range(10**9))

    committer = Committer(open_repository(repo_path))

    def ours() -> None:
        target.write_text(f"ours {next(counter)}\n")
        result = committer.commit_paths(
            [rel], message=lambda c: "x", author=SIG, committer=SIG, max_file_size=10**7
        )
        assert result.commit_id

    def cold() -> None:  # a fresh Committer: the index is read from disk
        target.write_text(f"cold {next(counter)}\n")
        Committer(open_repository(repo_path)).commit_paths(
            [rel], message=lambda c: "x", author=SIG, committer=SIG, max_file_size=10**7
        )

    def baseline() -> None:
        target.write_text(f"git {next(counter)}\n")
        subprocess.run(
            f"git add -- {rel} && git commit -q -m x -- {rel}", shell=True, cwd=repo_path, check=True
        )

    ours()  # warm-up: first index read
    samples_ours = timed(ours, runs)
    samples_cold = timed(cold, runs)
    samples_git = timed(baseline, runs)
    index = committer.repo.index
    samples_floor = timed(index.write, runs)  # what every correct commit must pay
    m_ours, m_cold, m_git = median_ms(samples_ours), median_ms(samples_cold), median_ms(samples_git)
    m_floor = median_ms(samples_floor)
    speedup = m_git / m_ours
    verdict = "PASS" if m_ours < 25 and speedup >= 6 else "FAIL"
    return [
        Row(
            f"commit 1 file, {total} tracked (median of {runs})",
            f"{m_ours:.1f} ms",
            f"git add+commit {m_git:.1f} ms",
            "< 25 ms and >= 6x",
            f"{verdict} ({speedup:.1f}x)",
        ),
        Row(
            "  same, fresh process state (index read from disk)",
            f"{m_cold:.1f} ms",
            f"git add+commit {m_git:.1f} ms",
            "(info)",
            f"{m_git / m_cold:.1f}x",
        ),
        Row(
            "  floor: libgit2 index.write() of that index alone",
            f"{m_floor:.1f} ms",
            "",
            "(info)",
            f"ours minus floor {m_ours - m_floor:.1f} ms",
        ),
    ]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for row in run(Path(tmp), runs=int(sys.argv[1]) if len(sys.argv) > 1 else 15):
            print(row)
