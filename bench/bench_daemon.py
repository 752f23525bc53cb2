"""The real daemon (`python -m mdbackup run` as a subprocess): save-to-commit overhead on a
10,000-file store, a 10,000-file burst, and what it costs while idle.

    python bench/run.py daemon                        # idle window of 60 s
    MDBACKUP_BENCH_IDLE=10 python bench/run.py daemon # a quick run

The daemon runs with JSON logs to a file and a NOTIFY_SOCKET of our own, so we know
when it is READY. A commit is detected by polling the branch's ref file from this
process (a few microseconds a read) and checking that HEAD holds the new content;
the daemon's `commit` log events (`elapsed_ms`, `latency_ms`, timestamp) and the
`last_event_at` it stored for each path break the time down.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pygit2

from bench.common import Row, big_repo, env_without_git_vars
from tests.support.daemon import CLK_TCK, Daemon, cpu_seconds, watch_config
from tests.support.git import git, init_repo
from tests.support.wait import WaitTimeout, wait_until

IDLE_ENV = "MDBACKUP_BENCH_IDLE"
POLL = 0.0005  # seconds between two reads of the ref file while waiting for a commit
READY_TIMEOUT = 120.0  # seconds a daemon on a 10,000-file store gets to be READY


# -- processes ------------------------------------------------------------------------------


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# -- reading git and /proc from this process ----------------------------------------------


def ref_reader(repo: Path, branch: str = "main"):
    """A cheap function returning the branch's commit id as text (loose ref file, else
    libgit2, which also reads packed-refs)."""
    loose = repo / ".git" / "refs" / "heads" / branch
    opened = pygit2.Repository(str(repo))

    def read() -> str:
        try:
            with open(loose, "rb") as f:
                text = f.read().strip()
            if len(text) == 40:
                return text.decode()
        except FileNotFoundError:
            pass
        return str(opened.references[f"refs/heads/{branch}"].target)

    return read


def blob_in_commit(repo: pygit2.Repository, commit_id: str, path: str) -> pygit2.Oid | None:
    try:
        return repo[commit_id].peel(pygit2.Commit).tree[path].id
    except KeyError:
        return None


def store_blobs(repo: pygit2.Repository, commit_id: str, store: str) -> dict[str, pygit2.Oid]:
    """path -> blob id of every file under `store` in the commit's tree."""
    found: dict[str, pygit2.Oid] = {}
    try:
        top = repo[commit_id].peel(pygit2.Commit).tree[store]
    except KeyError:
        return found
    stack = [(store, top)]
    while stack:
        prefix, tree = stack.pop()
        for entry in tree:
            path = f"{prefix}/{entry.name}"
            if entry.type_str == "tree":
                stack.append((path, repo[entry.id]))
            else:
                found[path] = entry.id
    return found


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches summed over the process's threads:
    roughly how many times it woke up."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def iso_epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


# -- 1. save to commit --------------------------------------------------------------------


@dataclass(frozen=True)
class Save:
    path: str
    wrote_at: float  # epoch seconds, just before the write
    overhead: float  # seconds: HEAD has the content - write - debounce


def save_paths(count: int, store_files: int) -> list[str]:
    """Distinct files spread over the store's folders."""
    return [f"notes/d{i % 100:02d}/f{i}.md" for i in ((k * 251 + 7) % store_files for k in range(count))]


def wait_for_commit(
    daemon: Daemon, read_ref, repo: pygit2.Repository, rel: str, expected: pygit2.Oid, before: str
) -> float:
    """Poll the branch every POLL s (up to 30 s) until a new commit holds `expected` at `rel`;
    returns when (perf_counter) that commit was seen."""
    seen = 0.0

    def committed() -> bool:
        nonlocal before, seen
        head = read_ref()
        if head == before:
            return False
        seen = time.perf_counter()
        before = head
        return blob_in_commit(repo, head, rel) == expected

    wait_until(
        committed, timeout=30, interval=POLL, message=lambda: f"{rel} committed; log:\n{daemon.log()[-4000:]}"
    )
    return seen


def daemon_saves(daemon: Daemon, repo_path: Path, paths: list[str], debounce: float) -> list[Save]:
    read_ref = ref_reader(repo_path)
    repo = pygit2.Repository(str(repo_path))
    saves = []
    for n, rel in enumerate(paths):
        content = f"save {n} at {time.time()}\n".encode()
        expected = pygit2.hash(content)
        before = read_ref()
        wrote_at = time.time()
        start = time.perf_counter()
        (repo_path / rel).write_bytes(content)
        # A commit cannot come before the debounce has passed: sleep, then poll tightly.
        time.sleep(max(0.0, debounce - 0.05))
        seen = wait_for_commit(daemon, read_ref, repo, rel, expected, before)
        saves.append(Save(rel, wrote_at, seen - start - debounce))
        time.sleep(0.05)  # let the daemon finish its bookkeeping before the next save
    return saves


def git_saves(repo_path: Path, paths: list[str], debounce: float) -> list[float]:
    """What a gitwatch-style script pays beyond the debounce: git add + commit of the file."""
    env = env_without_git_vars()
    samples = []
    for n, rel in enumerate(paths):
        start = time.perf_counter()
        (repo_path / rel).write_text(f"git save {n}\n")
        time.sleep(debounce)
        subprocess.run(
            ["sh", "-c", f"git add -- {rel} && git commit -q -m x -- {rel}"],
            cwd=repo_path,
            env=env,
            check=True,
        )
        samples.append(time.perf_counter() - start - debounce)
    return samples


def breakdown(daemon: Daemon, saves: list[Save], debounce: float) -> list[Row]:
    """Where the time beyond the debounce goes, from the daemon's log and state DB."""
    commits = [e for e in daemon.events("commit") if e.get("paths") == 1]
    db = daemon.repo / ".git" / "mdbackup" / "state.db"
    last_event: dict[str, float] = {}
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            last_event = dict(conn.execute("SELECT path, last_event_at FROM paths"))
    except sqlite3.Error:
        pass
    delivery, slack, elapsed, to_log, rest = [], [], [], [], []
    for save in saves:
        match = [e for e in commits if iso_epoch(e["timestamp"]) > save.wrote_at]
        if not match:
            continue
        event = match[0]
        whole = (iso_epoch(event["timestamp"]) - save.wrote_at - debounce) * 1000
        to_log.append(whole)
        elapsed.append(event["elapsed_ms"])
        waited = event["latency_ms"] - debounce * 1000 if event.get("latency_ms") is not None else None
        if waited is not None:
            slack.append(waited)
        if last_event.get(save.path):
            delivered = (last_event[save.path] - save.wrote_at) * 1000
            delivery.append(delivered)
            if waited is not None:
                rest.append(whole - delivered - waited - event["elapsed_ms"])
    rows = []

    def info(name: str, samples: list[float], note: str) -> None:
        if samples:
            rows.append(
                Row(
                    f"  {name}",
                    f"p50 {statistics.median(samples):.1f} ms, p95 {pct(samples, 0.95):.1f} ms",
                    "",
                    "(info)",
                    note,
                )
            )

    info(
        "write -> change recorded (state DB last_event_at)",
        delivery,
        "inotify, watchdog, worker wake, SQLite",
    )
    info("recorded -> batch taken, minus debounce (latency_ms)", slack, "timer accuracy")
    info("commit_paths (elapsed_ms)", elapsed, "libgit2: blob, trees, index write, ref")
    info("the rest (take_batch, message, log)", rest, "")
    info("write -> `commit` log line, minus debounce", to_log, "the whole, by the daemon's clock")
    return rows


def save_rows(repo_path: Path, home: Path, *, saves: int, debounce: float) -> list[Row]:
    paths = save_paths(saves, 10_000)
    daemon = Daemon(
        repo=repo_path, home=home, config=watch_config(debounce=debounce, max_delay=10 * debounce)
    )
    try:
        daemon.start(wait_ready=False).wait_ready(timeout=READY_TIMEOUT)
        time.sleep(1.0)  # settle after the start-up scan
        ours = daemon_saves(daemon, repo_path, paths, debounce)
        daemon.stop(kill_after=True)
    finally:
        daemon.close()
    theirs = git_saves(repo_path, paths, debounce)
    samples = [s.overhead for s in ours]
    p50, p95 = statistics.median(samples) * 1000, pct(samples, 0.95) * 1000
    g50, g95 = statistics.median(theirs) * 1000, pct(theirs, 0.95) * 1000
    ok = p50 < 30 and p95 < 100
    rows = [
        Row(
            f"save->commit - debounce, 10,000-file store ({saves} saves, debounce {debounce} s, "
            f"poll {POLL * 1000:g} ms)",
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms",
            f"git add+commit p50 {g50:.1f} ms, p95 {g95:.1f} ms",
            "p50 < 30 ms, p95 < 100 ms",
            f"{'PASS' if ok else 'FAIL'} (max {max(samples) * 1000:.1f} ms)",
        ),
        *breakdown(daemon, ours, debounce),
    ]
    return rows


# -- 2. a burst of 10,000 files -----------------------------------------------------------


def burst_files(count: int) -> dict[str, bytes]:
    return {f"notes/d{i % 100:02d}/f{i}.md": f"burst file {i}\n".encode() * 4 for i in range(count)}


def small_repo(path: Path) -> Path:
    init_repo(path, commit=False)
    (path / "README.txt").write_text("outside the store\n")
    (path / "notes").mkdir()
    (path / "notes" / "index.md").write_text("# notes\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        full = root / rel
        try:
            full.write_bytes(content)
        except FileNotFoundError:
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_bytes(content)


def burst_rows(workdir: Path, *, count: int = 10_000, debounce: float = 2.0) -> list[Row]:
    files = burst_files(count)
    expected = {rel: pygit2.hash(content) for rel, content in files.items()}
    repo_path = small_repo(workdir / "burst-repo")
    initial = git(repo_path, "rev-parse", "HEAD").strip()
    read_ref = ref_reader(repo_path)
    repo = pygit2.Repository(str(repo_path))
    daemon = Daemon(
        repo=repo_path, home=workdir / "burst-home", config=watch_config(debounce=debounce, max_delay=30.0)
    )
    budget = debounce + 8
    done: float | None = None
    missing = count
    seen = initial

    def all_in_head() -> bool:
        nonlocal seen, missing
        head = read_ref()
        if head == seen:
            return False
        seen = head
        blobs = store_blobs(repo, head, "notes")
        missing = sum(1 for rel, oid in expected.items() if blobs.get(rel) != oid)
        return missing == 0

    try:
        daemon.start(wait_ready=False).wait_ready(timeout=READY_TIMEOUT)
        time.sleep(1.0)
        first_write = time.time()
        start = time.perf_counter()
        write_files(repo_path, files)
        written = time.perf_counter() - start
        try:
            wait_until(all_in_head, timeout=budget + 60 - written, interval=0.01)
            done = time.perf_counter() - start
        except WaitTimeout:
            pass  # the table says "not within"
        time.sleep(debounce + 1.0)  # anything still to come would be another commit
        final = read_ref()
        blobs = store_blobs(repo, final, "notes")
        missing = sum(1 for rel, oid in expected.items() if blobs.get(rel) != oid)
        commits = int(git(repo_path, "rev-list", "--count", f"{initial}..{final}").strip())
        scans = [e for e in daemon.events("scan") if e.get("reason") != "start"]
        commit_events = daemon.events("commit")
        daemon.stop(kill_after=True)
    finally:
        daemon.close()

    # Baseline: the same files in a fresh small repository, `git add -A && git commit`.
    base_path = small_repo(workdir / "burst-git")
    write_files(base_path, files)
    t0 = time.perf_counter()
    subprocess.run(
        ["sh", "-c", "git add -A && git commit -q -m x"],
        cwd=base_path,
        env=env_without_git_vars(),
        check=True,
    )
    git_time = time.perf_counter() - t0
    shutil.rmtree(base_path, ignore_errors=True)

    rows = [
        Row(
            f"burst of {count} files (debounce {debounce} s): commits",
            str(commits),
            "git add -A+commit: 1",
            "<= 3",
            "PASS" if commits <= 3 else "FAIL",
        ),
        Row(
            f"  first write -> all {count} in HEAD (writing took {fmt_s(written)})",
            fmt_s(done) if done is not None else f"not within {budget + 60:.0f} s",
            f"git add -A+commit {fmt_s(git_time)} "
            f"(write+debounce+git {fmt_s(written + debounce + git_time)})",
            f"< {budget:g} s, 0 missing",
            ("PASS" if done is not None and done < budget and missing == 0 else "FAIL")
            + f" ({missing} missing)",
        ),
    ]
    for n, event in enumerate(commit_events, 1):
        at = iso_epoch(event["timestamp"]) - first_write
        rows.append(
            Row(
                f"  commit {n}: {event.get('paths')} paths, done at {at:.1f} s",
                f"commit_paths {event.get('elapsed_ms', 0) / 1000:.2f} s",
                "",
                "(info)",
                f"latency_ms {event.get('latency_ms')}",
            )
        )
    if scans:
        total_ms = sum(e.get("elapsed_ms", 0) for e in scans)
        rows.append(
            Row(
                "  folder scans during the burst",
                f"{len(scans)} scans, {total_ms:.0f} ms",
                "",
                "(info)",
                f"hashed {sum(e.get('hashed', 0) for e in scans)}",
            )
        )
    return rows


# -- 3. idle ------------------------------------------------------------------------------


def start_inotifywait(store: Path) -> subprocess.Popen | None:
    exe = shutil.which("inotifywait")
    if exe is None:
        return None
    proc = subprocess.Popen(
        [exe, "-m", "-r", str(store)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    for raw in proc.stderr:  # "Setting up watches..." then "Watches established."
        if b"Watches established" in raw:
            proc.stderr.close()
            return proc
    stop_process(proc)
    return None


def idle_rows(repo_path: Path, home: Path, *, seconds: float, settle: float = 3.0) -> list[Row]:
    daemon = Daemon(repo=repo_path, home=home, config=watch_config(debounce=2.0, max_delay=30.0))
    watcher: subprocess.Popen | None = None
    try:
        ready = daemon.start(wait_ready=False).wait_ready(timeout=READY_TIMEOUT)
        watcher = start_inotifywait(repo_path / "notes")
        time.sleep(settle)
        pids = {"ours": daemon.pid, **({"base": watcher.pid} if watcher else {})}
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        ctx0 = {k: context_switches(p) for k, p in pids.items()}
        time.sleep(seconds)
        cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
        ctx = {k: context_switches(p) - ctx0[k] for k, p in pids.items()}
        rss = {k: status_kb(p, "VmRSS") / 1024 for k, p in pids.items()}
        hwm = status_kb(daemon.pid, "VmHWM") / 1024
        daemon.stop(kill_after=True)
    finally:
        stop_process(watcher)
        daemon.close()
    cpu_limit = 0.05 * seconds / 60
    base_cpu = (
        f"inotifywait -m -r {cpu['base']:.2f} s, {ctx['base']} wakeups"
        if "base" in cpu
        else "n/a (no inotifywait)"
    )
    base_rss = f"inotifywait -m -r {rss['base']:.1f} MB" if "base" in rss else "n/a (no inotifywait)"
    return [
        Row(
            f"idle CPU over {seconds:g} s, 10,000-file store (tick {1000 / CLK_TCK:g} ms)",
            f"{cpu['ours']:.2f} s, {ctx['ours']} wakeups",
            base_cpu,
            f"< {cpu_limit:.3g} s" + ("" if seconds == 60 else " (0.05 s per 60 s)"),
            "PASS" if cpu["ours"] < cpu_limit else "FAIL",
        ),
        Row(
            "idle RSS, 10,000-file store",
            f"{rss['ours']:.1f} MB (peak {hwm:.1f} MB)",
            base_rss,
            "< 80 MB",
            "PASS" if rss["ours"] < 80 else "FAIL",
        ),
        Row("  start to READY, 10,000-file store", fmt_s(ready), "", "(info)", ""),
    ]


# -- the suite ----------------------------------------------------------------------------


def run(
    workdir: Path, *, saves: int = 40, debounce: float = 0.5, idle_seconds: float | None = None
) -> list[Row]:
    if idle_seconds is None:
        idle_seconds = float(os.environ.get(IDLE_ENV, "60"))
    repo_path = big_repo(workdir / "daemon-repo", total=10_000, store_files=10_000)
    rows = save_rows(repo_path, workdir / "home", saves=saves, debounce=debounce)
    rows += idle_rows(repo_path, workdir / "home", seconds=idle_seconds)
    rows += burst_rows(workdir)
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mdbackup-bench-daemon-") as tmp:
        for row in run(Path(tmp)):
            print(row)
