"""Shared fixtures: temp repositories, an isolated HOME, and a guard against leaked threads."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.support import secrets
from tests.support.daemon import FAST, Daemon
from tests.support.git import init_repo
from tests.support.wait import wait_until

pytest_plugins = ["tests.support.servers"]  # its fixtures: ssh_server, http_server


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mdbackup soak", "the randomized crash soak (tests/e2e/test_soak.py)")
    group.addoption(
        "--soak-iterations",
        type=int,
        default=40,
        help="kill/recover iterations of the soak (default 40: about a minute; "
        "long runs: python bench/soak.py --iterations 1000)",
    )
    group.addoption(
        "--sync-soak-rounds",
        type=int,
        default=20,
        help="rounds of the three-machine sync soak (tests/e2e/test_soak_sync.py; default 20; "
        "long runs: python bench/soak_sync.py --rounds 300)",
    )
    group.addoption(
        "--soak-seed",
        type=int,
        default=20261127,
        help="seed of the soak's random operations and kills (printed on failure)",
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on main with one commit (README.txt, outside any store)."""
    return init_repo(tmp_path / "repo")


def _children() -> set[int]:
    """Live child processes of this process (zombies already exited, so not counted)."""
    me = str(os.getpid())
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me and fields[0] != "Z":
            found.add(int(pid))
    return found


@pytest.fixture
def store(repo: Path) -> Path:
    """The store folder `notes/` of `repo`, empty."""
    path = repo / "notes"
    path.mkdir()
    return path


@pytest.fixture
def daemon(repo: Path, home: Path, store: Path):
    """A factory of real daemons on `repo`'s store; every one is stopped at teardown."""
    daemons: list[Daemon] = []

    def make(config: str = FAST, **kw) -> Daemon:
        d = Daemon(repo=repo, home=home, config=config, **kw)
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        d.close()


@pytest.fixture(autouse=True)
def no_leaked_processes():
    """Fail a test that leaves a child process running."""
    before = _children()
    yield
    wait_until(
        lambda: not _children() - before,
        timeout=5,
        interval=0.05,
        message=lambda: f"leaked processes to exit: {sorted(_children() - before)}",
    )


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves a thread of its own running."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads leaked: {still}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """No registered test secret may appear in what any test captured (stdout, stderr, log
    records): a leak anywhere in the suite fails the test that saw it."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.passed:
        return
    found = secrets.leaked(report.capstdout + report.capstderr + report.caplog)
    if found:
        report.outcome = "failed"
        report.longrepr = f"secret(s) {found} appeared in the captured output of {item.nodeid}"
