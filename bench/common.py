"""Shared pieces of the benchmarks: building big repositories, timing, the table."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.git import git, init_repo


@dataclass(frozen=True)
class Row:
    name: str
    ours: str
    baseline: str
    target: str
    verdict: str


def big_repo(path: Path, *, total: int, store_files: int, store: str = "notes") -> Path:
    """A repository of `total` tracked files, `store_files` of them under `store/`."""
    init_repo(path, commit=False)
    for i in range(total):
        top = store if i < store_files else "src"
        folder = path / top / f"d{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".md" if top == store else ".txt"
        (folder / f"f{i}{suffix}").write_text(f"file {i}\n" * 4)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p95_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def env_without_git_vars() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
