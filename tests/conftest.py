"""Shared fixtures: temp repositories, an isolated HOME, and a guard against leaked threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.helpers import init_repo


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on main with one commit (README.txt, outside any store)."""
    return init_repo(tmp_path / "repo")


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


from tests.servers import http_server, ssh_server  # noqa: E402,F401  (fixtures)
