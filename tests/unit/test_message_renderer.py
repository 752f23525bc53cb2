"""message.renderer: commit changes -> message, paths relative to the store folder."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from mdbackup.git.commit import PathChange
from mdbackup.message import ChangeSummary, render_message, renderer
from mdbackup.patterns import StoreFilter

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
TEMPLATE = "{summary}\n\n+{added} ~{modified} -{deleted} ({count}) on {hostname} at {timestamp}\n{files}"

CHANGES = (
    PathChange("notes/a.md", "added"),
    PathChange("notes/sub/b.md", "modified"),
    PathChange("notes/gone.md", "deleted"),
    PathChange("notes", "added"),  # the store folder itself (a file in a racing change)
    PathChange("notes/", "modified"),
    PathChange("notesX/c.md", "added"),  # outside the store: kept as it is
    PathChange("README.txt", "modified"),
    PathChange("notes/caf\udce9.md", "added"),  # not UTF-8
)


def _before(store_prefix: str, changes: Sequence[PathChange]) -> str:
    """What backup.py rendered before the renderer existed (Backup._message)."""
    store = StoreFilter.build(store_prefix=store_prefix, include=[], exclude=[])

    def rel(kind: str) -> tuple[str, ...]:
        return tuple(store.store_relative(c.path) or c.path for c in changes if c.kind == kind)

    summary = ChangeSummary(added=rel("added"), modified=rel("modified"), deleted=rel("deleted"))
    return render_message(TEMPLATE, changes=summary, hostname="box", now=NOW)


@pytest.mark.parametrize("store_prefix", ["notes", "", "notes/sub", "elsewhere"])
def test_same_message_as_before(store_prefix: str) -> None:
    render = renderer(template=TEMPLATE, store_prefix=store_prefix, hostname="box", now=lambda: NOW)
    assert render(CHANGES) == _before(store_prefix, CHANGES)


def test_paths_relative_to_the_store_and_values_filled_in() -> None:
    render = renderer(template=TEMPLATE, store_prefix="notes", hostname="box", now=lambda: NOW)
    text = render([PathChange("notes/a.md", "added"), PathChange("notes/sub/b.md", "deleted")])
    assert text.splitlines() == [
        "2 files: a.md, sub/b.md",
        "",
        "+1 ~0 -1 (2) on box at " + NOW.astimezone().isoformat(timespec="seconds"),
        "a.md",
        "sub/b.md",
    ]


def test_now_is_asked_when_rendering() -> None:
    calls: list[int] = []

    def now() -> datetime:
        calls.append(1)
        return NOW

    render = renderer(template="{timestamp}", store_prefix="", hostname="h", now=now)
    assert calls == []
    render([PathChange("a.md", "added")])
    assert calls == [1]


def test_bad_template_raises_when_rendering() -> None:
    render = renderer(template="{nope}", store_prefix="", hostname="h", now=lambda: NOW)
    with pytest.raises(ValueError, match="unknown placeholder"):
        render([PathChange("a.md", "added")])
