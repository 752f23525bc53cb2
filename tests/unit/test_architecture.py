"""docs/ARCHITECTURE.md stays true: its module table is the tree, and every module obeys
its room's import rule."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "daemon" / "mdbackup"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
MAX_LINES = 400
"""No module grows past this (the aim is ~350); the glob engine is a self-contained leaf."""
LONG_LEAVES = {"patterns"}

LEAVES = (
    "patterns",
    "message",
    "clock",
    "inbox",
    "redact",
    "statuses",
    "exitcodes",
    "crashpoints",
    "logs",
    "notify",
    "lock",
)
CONFIG = ("config", "config_keys", "config_values", "config_paths", "config_doc")

ROOMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # room: (its modules, the mdbackup modules it may import; a name covers its submodules)
    "entry": (("__main__", "cli", "actions", "service"), ("",)),
    "scheduling": (("worker",), ("backup", "inbox", "watcher", "clock", "config", "logs")),
    "watching": (
        ("watcher", "watch_events", "watch_inotify"),
        ("inbox", "patterns", "logs", "watch_events", "watch_inotify"),
    ),
    "orchestration": (
        ("backup", "reporting", "reading", "pushing", "syncing", "schedule"),
        ("state", "git", "config", *LEAVES, "schedule", "pushing", "syncing", "reporting", "reading"),
    ),
    "state": (("state",), ("state", "statuses", "logs")),
    "git": (("git",), ("git", "redact")),
    "config": (CONFIG, (*CONFIG, "message", "git.repo")),
    "leaves": (LEAVES, LEAVES),
}
THIRD_PARTY_OWNERS = {
    "pygit2": (
        "git",
        "backup",
        "reporting",
        "reading",
        "pushing",
        "syncing",
    ),  # orchestration holds the Repository and names its errors
    "peewee": ("state", "backup"),  # backup names the database's errors
    "watchdog": ("watcher", "watch_events", "watch_inotify"),
}
"""Which modules may import each library directly (everyone else goes through them)."""


def modules() -> list[str]:
    """Dotted names (without `mdbackup.`) of every module of the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        found.append(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    return found


def imports(name: str) -> set[str]:
    """The modules `name` imports: mdbackup ones without the `mdbackup.` prefix, others whole."""
    path = PACKAGE.joinpath(*name.split(".")).with_suffix(".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "mdbackup":
                found.update(f"mdbackup.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return {n.removeprefix("mdbackup.") if n.startswith("mdbackup.") else f"!{n}" for n in found}


def covers(prefix: str, name: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def room_of(name: str) -> str:
    rooms = [room for room, (members, _) in ROOMS.items() if any(covers(m, name) for m in members)]
    assert len(rooms) == 1, f"{name} belongs to rooms {rooms}: give it exactly one in ROOMS"
    return rooms[0]


def test_the_module_table_lists_exactly_the_modules_in_the_tree() -> None:
    listed = set(re.findall(r"^\| `mdbackup/([\w/]+)\.py` \|", DOC.read_text(), flags=re.MULTILINE))
    in_tree = {name.replace(".", "/") for name in modules()}
    assert listed == in_tree, f"missing from the doc: {in_tree - listed}; not in the tree: {listed - in_tree}"


@pytest.mark.parametrize("name", modules())
def test_each_module_imports_only_what_its_room_allows(name: str) -> None:
    allowed = ROOMS[room_of(name)][1]
    own = {i for i in imports(name) if not i.startswith("!") and i != "__version__"}
    wrong = sorted(i for i in own if not any(covers(a, i) for a in allowed))
    assert not wrong, f"{name} ({room_of(name)}) must not import {wrong}"


@pytest.mark.parametrize("name", modules())
def test_libraries_are_used_only_by_the_rooms_that_own_them(name: str) -> None:
    for library, owners in THIRD_PARTY_OWNERS.items():
        if any(i == f"!{library}" or i.startswith(f"!{library}.") for i in imports(name)):
            assert any(covers(owner, name) for owner in owners), (
                f"{name} imports {library}; only {owners} may"
            )


@pytest.mark.parametrize("name", modules())
def test_modules_stay_small(name: str) -> None:
    if name in LONG_LEAVES:
        return
    path = PACKAGE.joinpath(*name.split(".")).with_suffix(".py")
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by concern"
