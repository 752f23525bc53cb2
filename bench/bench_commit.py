"""Commit of 1 changed file in a repo of 50,000 tracked files (store of 10,000), the same
measured with the package before the index lock (same run), and how long index.lock is
held for a 30-file x 2 MB batch in that repository."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pygit2

from bench.common import Row, big_repo, median_ms, timed
from mdbackup.git import leftovers
from mdbackup.git.commit import Committer
from mdbackup.git.repo import open_repository

SIG = pygit2.Signature("bench", "bench@example.com")
# The package before the commit took index.lock itself (override: MDBACKUP_BENCH_BEFORE=rev).
BEFORE = os.environ.get("MDBACKUP_BENCH_BEFORE", "66ede00")
ROOT = Path(__file__).resolve().parent.parent

_BEFORE_SCRIPT = """
import sys, time, statistics
from pathlib import Path
import pygit2
from mdbackup.git.commit import Committer
from mdbackup.git.repo import open_repository
repo, rel, runs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
sig = pygit2.Signature("bench", "bench@example.com")
committer = Committer(open_repository(repo))
samples = []
for i in range(runs + 1):
    (repo / rel).write_text(f"before {i}\\n")
    start = time.perf_counter()
    assert committer.commit_paths([rel], message=lambda c: "x", author=sig, committer=sig,
                                  max_file_size=10**7).commit_id
    samples.append(time.perf_counter() - start)
print(statistics.median(samples[1:]) * 1000)
"""


def _before_median_ms(workdir: Path, repo_path: Path, rel: str, runs: int) -> float | None:
    """The 1-file commit with the package as it was at BEFORE, in a subprocess; None when
    that revision is not in this clone."""
    old = workdir / "before"
    old.mkdir(exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BEFORE, "daemon"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    env = {**os.environ, "PYTHONPATH": str(old / "daemon")}
    out = subprocess.run(
        [sys.executable, "-c", _BEFORE_SCRIPT, str(repo_path), rel, str(runs)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return float(out.stdout.strip())


def _lock_held_ms(repo_path: Path, *, runs: int, files: int = 30, size: int = 2 << 20) -> tuple[float, float]:
    """Median time index.lock is held for a `files` x `size` batch, and the median of
    libgit2's own read and write of that index alone."""
    held: list[float] = []
    taken: dict[str, float] = {}
    real_claim, real_finish = leftovers.claim, leftovers.finish

    def claim(state_dir: Path, lock: Path) -> leftovers.Claim:
        taken["at"] = time.perf_counter()
        return real_claim(state_dir, lock)

    def finish(held_claim: leftovers.Claim, *, into: Path | None) -> None:
        real_finish(held_claim, into=into)
        held.append(time.perf_counter() - taken.pop("at"))

    committer = Committer(open_repository(repo_path))
    paths = [f"notes/batch/b{i:02}.md" for i in range(files)]
    (repo_path / "notes/batch").mkdir(parents=True, exist_ok=True)
    leftovers.claim, leftovers.finish = claim, finish  # type: ignore[assignment]
    try:
        for n in range(runs + 1):
            for i, path in enumerate(paths):
                (repo_path / path).write_bytes(os.urandom(64) * (size // 64) + f"{n} {i}".encode())
            result = committer.commit_paths(
                paths, message=lambda c: "batch", author=SIG, committer=SIG, max_file_size=4 * size
            )
            assert result.commit_id, result
    finally:
        leftovers.claim, leftovers.finish = real_claim, real_finish  # type: ignore[assignment]
    index = open_repository(repo_path).index

    def read_write() -> None:
        index.read(force=True)
        index.write()

    return median_ms(held[1:]), median_ms(timed(read_write, runs))


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
    m_before = _before_median_ms(workdir, repo_path, rel, runs)
    m_held, m_rw = _lock_held_ms(repo_path, runs=max(5, runs // 2))
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
        Row(
            f"commit 1 file, {total} tracked: now vs before the index lock ({BEFORE})",
            f"{m_ours:.1f} ms",
            "not in this clone" if m_before is None else f"before {m_before:.1f} ms",
            "<= before (+10% noise)",
            "n/a"
            if m_before is None
            else ("PASS" if m_ours <= m_before * 1.1 else "FAIL") + f" ({m_ours - m_before:+.1f} ms)",
        ),
        Row(
            f"commit 30 files x 2 MB, {total} tracked: index.lock held (median)",
            f"{m_held:.1f} ms",
            f"libgit2 index read+write {m_rw:.1f} ms",
            "<= 1.5x baseline",
            ("PASS" if m_held <= 1.5 * m_rw else "FAIL") + f" ({m_held / m_rw:.2f}x)",
        ),
    ]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for row in run(Path(tmp), runs=int(sys.argv[1]) if len(sys.argv) > 1 else 15):
            print(row)
