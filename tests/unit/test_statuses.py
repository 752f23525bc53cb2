"""mdbackup.statuses: the one definition of path and push statuses (README, "Path statuses"),
and the state database's schema that only accepts them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mdbackup.state.db import StateDB
from mdbackup.statuses import PathStatus, PushStatus


def test_path_statuses_are_the_contract_words() -> None:
    assert [s.value for s in PathStatus] == ["pending", "queued", "success", "failed", "disabled"]
    assert PathStatus.FAILED == "failed" and f"{PathStatus.SUCCESS}" == "success"


def test_push_statuses_are_the_contract_words() -> None:
    assert [s.value for s in PushStatus] == ["disabled", "success", "pending", "failed"]


def test_the_schema_refuses_any_other_status(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateDB(path).close()
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE repository SET push_status = 'sometimes'")
        conn.execute("UPDATE repository SET push_status = ?", (PushStatus.PENDING.value,))
        conn.commit()
    finally:
        conn.close()
