"""mdbackup.actions.status: the text rendering and the exit code of a `status` document.

The documents are made by hand in the shape `report` gives (`status --json`, checked
end to end in tests/e2e/test_once.py).
"""

from __future__ import annotations

from typing import Any

from mdbackup.actions.status import exit_code, render_text
from mdbackup.exitcodes import ExitCode


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "repo": "/home/u/notes-repo",
        "store": "notes",
        "daemon": {"running": False, "pid": None},
        "paused": False,
        "counts": {"pending": 0, "queued": 0, "success": 2, "failed": 0, "disabled": 0},
        "paths": [],
        "head": {"branch": "main", "commit": "0123456789abcdef0123456789abcdef01234567"},
        "last_backup_at": "2026-01-02T03:04:05Z",
        "push": {
            "enabled": False,
            "remote": "origin",
            "branch": "main",
            "status": "disabled",
            "ahead": None,
            "last_push_at": None,
            "last_error": None,
            "next_attempt_at": None,
        },
    }
    doc.update(changes)
    return doc


def path_row(path: str, status: str, *, error: str | None = None, attempts: int = 0) -> dict[str, Any]:
    return {
        "path": path,
        "status": status,
        "last_backup_at": None,
        "last_error": error,
        "attempts": attempts,
        "updated_at": "2026-01-02T03:04:05Z",
        "next_attempt_at": None,
    }


def test_all_well_renders_the_summary_and_exits_0() -> None:
    doc = document()
    assert render_text(doc).splitlines() == [
        "repo:    /home/u/notes-repo (store: notes)",
        "daemon:  not running",
        "paused:  no",
        "head:    main 0123456789ab",
        "paths:   0 pending, 0 queued, 2 success, 0 failed, 0 disabled",
        "last backup: 2026-01-02T03:04:05Z",
        "push:    disabled",
    ]
    assert exit_code(doc) is ExitCode.OK


def test_running_paused_detached_and_never_backed_up() -> None:
    text = render_text(
        document(
            daemon={"running": True, "pid": 4242},
            paused=True,
            head={"branch": None, "commit": None},
            last_backup_at=None,
        )
    )
    assert "daemon:  running (pid 4242)" in text
    assert "paused:  yes: changes are recorded, nothing is committed (mdbackup resume)" in text
    assert "head:    (detached) none yet" in text
    assert "last backup: never" in text


def test_a_failed_path_is_listed_with_its_error_and_exits_1() -> None:
    counts = {"pending": 1, "queued": 0, "success": 0, "failed": 1, "disabled": 0}
    doc = document(
        counts=counts,
        paths=[
            path_row("notes/a.md", "pending"),
            path_row("notes/big.md", "failed", error="larger than max_file_size", attempts=3),
        ],
    )
    lines = render_text(doc).splitlines()
    assert lines[-3:] == [
        "paths not backed up yet:",
        "  pending  notes/a.md",
        "  failed   notes/big.md (3 attempts): larger than max_file_size",
    ]
    assert exit_code(doc) is ExitCode.FAILED


def test_with_a_backed_up_path_the_list_is_just_paths() -> None:
    doc = document(paths=[path_row("notes/a.md", "success"), path_row("notes/b.md", "pending")])
    assert "\npaths:\n  success  notes/a.md\n  pending  notes/b.md" in render_text(doc)


def test_a_name_that_is_not_utf8_prints_escaped() -> None:
    name = b"notes/caf\xe9.md".decode("utf-8", "surrogateescape")
    text = render_text(document(paths=[path_row(name, "pending")]))
    assert "  pending  notes/caf\\xe9.md" in text
    text.encode("utf-8")  # printable on a strict UTF-8 stdout


def test_push_lines() -> None:
    push = document()["push"] | {"enabled": True, "status": "success", "ahead": 0}
    assert render_text(document(push=push)).endswith("push:    success to origin/main")
    done = push | {"last_push_at": "2026-01-02T03:04:05Z"}
    assert render_text(document(push=done)).endswith(
        "push:    success to origin/main; last push 2026-01-02T03:04:05Z"
    )
    failed = push | {
        "status": "failed",
        "ahead": 2,
        "last_error": "remote unreachable",
        "next_attempt_at": "2026-01-02T03:09:05Z",
    }
    assert render_text(document(push=failed)).endswith(
        "push:    failed to origin/main, 2 commit(s) ahead: remote unreachable"
        " (next try 2026-01-02T03:09:05Z)"
    )


def test_a_failed_push_alone_exits_1() -> None:
    push = document()["push"] | {"enabled": True, "status": "failed"}
    assert exit_code(document(push=push)) is ExitCode.FAILED
    pending = push | {"status": "pending"}
    assert exit_code(document(push=pending)) is ExitCode.OK
