"""Issue 11's workloads on the real daemon, each against a baseline measured in the same run.

    python bench/run.py workloads                          # full scale (about 10 min)
    python bench/run.py --quick workloads                  # smaller N (about 3 min)
    MDBACKUP_BENCH_QUICK=1 python bench/run.py workloads   # the same

W1 edit stream: one of 50 notes rewritten every 50 ms for 20 s in a 22,000-file repository
   (2,000-note store); daemon CPU while the stream runs, and the convergence after the last
   write. Baseline: `git add -A && git commit` of those 50 notes in the same repository.
W2 burst: 5,000 and 10,000 new notes (1-4 KB) in 50 new folders of a 100-note store,
   written as fast as possible; last write -> all in HEAD, and daemon CPU (all threads) from
   the first write until it is idle again. Baseline: `git add -A && git commit` of exactly
   those files in a copy of the repository (wall and CPU of the git processes).
W3 one-note edit in a 100,000-file repository (10,000-note store): save -> HEAD minus the
   debounce. Baseline: libgit2's read + write of that index (what any correct commit pays).
Idle: CPU, wakeups and RSS with 10,000 files watched (`bench_daemon.idle_rows`).

CPU seconds are utime + stime of the daemon process from /proc (all its threads); every
figure is the median of several runs (`Scale.runs`).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pygit2

from bench.bench_daemon import (
    READY_TIMEOUT,
    daemon_saves,
    idle_rows,
    ref_reader,
    save_paths,
    status_kb,
    store_blobs,
    write_files,
)
from bench.common import Row, big_repo, env_without_git_vars
from tests.support.daemon import Daemon, cpu_seconds, watch_config
from tests.support.git import git, init_repo
from tests.support.wait import wait_until

QUICK_ENV = "MDBACKUP_BENCH_QUICK"


@dataclass(frozen=True)
class Scale:
    w1_total: int = 22_000
    w1_store: int = 2_000
    w1_seconds: float = 20.0
    w2_counts: tuple[int, ...] = (5_000, 10_000)
    w3_total: int = 100_000
    w3_store: int = 10_000
    w3_edits: int = 5
    idle_seconds: float = 60.0
    idle_files: int = 10_000
    runs: int = 3
    debounce: float = 2.0


FULL = Scale()
QUICK = Scale(
    w1_total=5_000,
    w1_store=1_000,
    w1_seconds=5.0,
    w2_counts=(1_000, 2_000),
    w3_total=20_000,
    w3_store=2_000,
    w3_edits=5,
    idle_seconds=10.0,
    idle_files=10_000,
    runs=2,
    debounce=1.0,
)


def scale() -> Scale:
    return QUICK if os.environ.get(QUICK_ENV) else FULL


# -- measuring ------------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def git_add_commit(repo: Path) -> tuple[float, float]:
    """`git add -A && git commit` in `repo`: (wall seconds, CPU seconds of the git processes)."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(
        ["sh", "-c", "git add -A && git commit -q -m x"], cwd=repo, env=env_without_git_vars(), check=True
    )
    return time.perf_counter() - t0, children_cpu() - cpu0


def wait_idle(pid: int, *, quiet: float = 0.5, timeout: float = 60.0) -> float:
    """Wait until the process used no CPU for `quiet` seconds; its CPU seconds then."""
    last = cpu_seconds(pid)
    still_since = time.monotonic()
    deadline = still_since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = cpu_seconds(pid)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
    return last


def med(samples: list[float]) -> float:
    return statistics.median(samples)


def note_body(i: int) -> bytes:
    """1-4 KB of text."""
    line = f"note {i}: some words of a markdown note, written by the benchmark\n".encode()
    return line * ((1024 + (i * 37) % 3072) // len(line) + 1)


def all_in_head(repo_path: Path, expected: dict[str, pygit2.Oid], store: str = "notes") -> Callable[[], bool]:
    """A wait predicate: the branch's commit (read once) holds every expected blob."""
    read_ref = ref_reader(repo_path)
    repo = pygit2.Repository(str(repo_path))
    seen = {"head": ""}

    def check() -> bool:
        head = read_ref()
        if head == seen["head"]:
            return False
        seen["head"] = head
        blobs = store_blobs(repo, head, store)
        return all(blobs.get(rel) == oid for rel, oid in expected.items())

    return check


def small_store_repo(path: Path, notes: int = 100) -> Path:
    init_repo(path, commit=False)
    (path / "README.txt").write_text("outside the store\n")
    for i in range(notes):
        folder = path / "notes" / f"old{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"n{i}.md").write_bytes(note_body(i))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


# -- W1: edit stream --------------------------------------------------------------------------


def w1_rows(workdir: Path, sc: Scale) -> list[Row]:
    repo_path = big_repo(workdir / "w1-repo", total=sc.w1_total, store_files=sc.w1_store)
    notes = sorted({p for p in save_paths(50, sc.w1_store)})
    during, total, converged, saves = [], [], [], 0
    for run in range(sc.runs):
        daemon = Daemon(
            repo=repo_path,
            home=workdir / "w1-home",
            config=watch_config(debounce=sc.debounce, max_delay=30.0),
        )
        try:
            daemon.start(wait_ready=False).wait_ready(timeout=READY_TIMEOUT)
            cpu0 = wait_idle(daemon.pid)
            expected: dict[str, pygit2.Oid] = {}
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < sc.w1_seconds:
                rel = notes[n % len(notes)]
                content = f"run {run} save {n}\n".encode() * 20
                (repo_path / rel).write_bytes(content)
                expected[rel] = pygit2.hash(content)
                n += 1
                time.sleep(max(0.0, start + n * 0.05 - time.monotonic()))
            last = time.perf_counter()
            during.append(cpu_seconds(daemon.pid) - cpu0)
            wait_until(all_in_head(repo_path, expected), timeout=60 + sc.debounce, interval=0.005)
            converged.append(time.perf_counter() - last)
            total.append(wait_idle(daemon.pid) - cpu0)
            saves = n
            daemon.stop(kill_after=True)
        finally:
            daemon.close()
    for n, rel in enumerate(notes):
        (repo_path / rel).write_text(f"git baseline {n}\n")
    git_wall, git_cpu = git_add_commit(repo_path)
    per_save = med(during) / saves * 1000
    return [
        Row(
            f"W1 edit stream, {sc.w1_total} files: {saves} saves of 50 notes in {sc.w1_seconds:g} s, "
            "daemon CPU while it runs",
            f"{med(during):.2f} CPU s ({per_save:.2f} ms a save)",
            f"git add -A+commit of the 50 notes {git_cpu:.2f} CPU s, {git_wall:.2f} s",
            "<= 0.3 CPU s",
            "PASS" if med(during) <= 0.3 * sc.w1_seconds / 20 else "FAIL",
        ),
        Row(
            "  W1 daemon CPU, first write to idle after the commit",
            f"{med(total):.2f} CPU s",
            "",
            "(info)",
            "",
        ),
        Row(
            f"  W1 last write -> all in HEAD (debounce {sc.debounce:g} s)",
            f"{med(converged):.2f} s",
            "",
            "(info)",
            "",
        ),
    ]


# -- W2: bursts ---------------------------------------------------------------------------


def burst(run: int, count: int) -> dict[str, bytes]:
    return {f"notes/b{run}-{count}-{i % 50:02d}/n{i}.md": note_body(i) for i in range(count)}


def w2_rows(workdir: Path, sc: Scale) -> list[Row]:
    rows: list[Row] = []
    for count in sc.w2_counts:
        repo_path = small_store_repo(workdir / f"w2-repo-{count}")
        base_path = workdir / f"w2-git-{count}"
        shutil.copytree(repo_path, base_path, symlinks=True)
        lag, cpu, git_wall, git_cpu, commits = [], [], [], [], []
        daemon = Daemon(
            repo=repo_path,
            home=workdir / f"w2-home-{count}",
            config=watch_config(debounce=sc.debounce, max_delay=30.0),
        )
        try:
            daemon.start(wait_ready=False).wait_ready(timeout=READY_TIMEOUT)
            for run in range(sc.runs):
                files = burst(run, count)
                expected = {rel: pygit2.hash(body) for rel, body in files.items()}
                cpu0 = wait_idle(daemon.pid)
                before = git(repo_path, "rev-parse", "HEAD").strip()
                write_files(repo_path, files)
                last = time.perf_counter()
                wait_until(all_in_head(repo_path, expected), timeout=120, interval=0.005)
                lag.append(time.perf_counter() - last)
                cpu.append(wait_idle(daemon.pid) - cpu0)
                commits.append(int(git(repo_path, "rev-list", "--count", f"{before}..HEAD").strip()))
                write_files(base_path, files)
                wall, used = git_add_commit(base_path)
                git_wall.append(wall)
                git_cpu.append(used)
            daemon.stop(kill_after=True)
        finally:
            daemon.close()
        shutil.rmtree(base_path, ignore_errors=True)
        first = count == sc.w2_counts[0]
        lag_ok = med(lag) <= sc.debounce + 1.0
        cpu_ok = med(cpu) <= 1.0 * count / 5_000
        rows += [
            Row(
                f"W2 burst of {count} new notes in 50 new folders: last write -> all in HEAD",
                f"{med(lag):.2f} s (debounce {sc.debounce:g} s; {max(commits)} commits)",
                f"git add -A+commit {med(git_wall):.2f} s ({med(lag) / med(git_wall):.1f}x)",
                "<= debounce + 1.0 s" if first else "(info)",
                ("PASS" if lag_ok else "FAIL")
                if first
                else f"{med(lag) - sc.debounce:.2f} s beyond debounce",
            ),
            Row(
                f"  W2 burst of {count}: daemon CPU, first write to idle",
                f"{med(cpu):.2f} CPU s ({med(cpu) / count * 1e6:.0f} us a note)",
                f"git add -A+commit {med(git_cpu):.2f} CPU s ({med(cpu) / med(git_cpu):.1f}x)",
                "<= 1.0 CPU s per 5,000",
                "PASS" if cpu_ok else "FAIL",
            ),
        ]
    return rows


# -- W3: one-note edit in a big repository ----------------------------------------------------


def w3_rows(workdir: Path, sc: Scale) -> tuple[list[Row], Path]:
    repo_path = big_repo(workdir / "w3-repo", total=sc.w3_total, store_files=sc.w3_store)
    debounce = 0.5
    samples: list[float] = []
    cpu: list[float] = []
    rss: list[float] = []
    for _run in range(sc.runs):
        daemon = Daemon(
            repo=repo_path, home=workdir / "w3-home", config=watch_config(debounce=debounce, max_delay=5.0)
        )
        try:
            daemon.start(wait_ready=False).wait_ready(timeout=READY_TIMEOUT)
            cpu0 = wait_idle(daemon.pid)
            paths = save_paths(sc.w3_edits, sc.w3_store)
            samples += [s.overhead for s in daemon_saves(daemon, repo_path, paths, debounce)]
            cpu.append((wait_idle(daemon.pid) - cpu0) / sc.w3_edits)
            rss.append(status_kb(daemon.pid, "VmRSS") / 1024)
            daemon.stop(kill_after=True)
        finally:
            daemon.close()
    index = pygit2.Index(str(repo_path / ".git" / "index"))
    floor: list[float] = []
    for _ in range(max(7, sc.w3_edits)):
        t0 = time.perf_counter()
        index.read(force=True)
        index.write()
        floor.append(time.perf_counter() - t0)
    ours, base = med(samples) * 1000, med(floor) * 1000
    return [
        Row(
            f"W3 one-note edit, {sc.w3_total} files: save -> HEAD minus debounce ({len(samples)} edits)",
            f"{ours:.1f} ms ({med(cpu) * 1000:.0f} CPU ms an edit)",
            f"libgit2 index read+write {base:.1f} ms",
            "<= 1.3x baseline",
            ("PASS" if ours <= 1.3 * base else "FAIL") + f" ({ours / base:.2f}x)",
        ),
        Row(f"  W3 daemon RSS after the edits, {sc.w3_total} files", f"{med(rss):.1f} MB", "", "(info)", ""),
    ], repo_path


def run(workdir: Path) -> list[Row]:
    sc = scale()
    rows = w2_rows(workdir, sc)
    rows += w1_rows(workdir, sc)
    w3, w3_repo = w3_rows(workdir, sc)
    rows += w3
    shutil.rmtree(w3_repo, ignore_errors=True)
    # Idle as in the daemon suite: a 10,000-file repository, all of it the watched store.
    idle_repo = big_repo(workdir / "idle-repo", total=sc.idle_files, store_files=sc.idle_files)
    rows += idle_rows(idle_repo, workdir / "idle-home", seconds=sc.idle_seconds)
    return rows
