"""The sync soak's CI slice (the engine is bench/soak_sync.py; long runs live there), and the
convergence checker shown to fail where it must.

    pytest tests/e2e/test_soak_sync.py --sync-soak-rounds 100 --soak-seed 7
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak_sync import SyncSoak
from tests.support.sync import Ledger, conflict_copies, merged_in

BASE = b"".join(b"line %d\n" % i for i in range(10))


def _with(**lines: str) -> bytes:
    out = BASE.decode().splitlines(keepends=True)
    for key, value in lines.items():
        out[int(key[1:])] = value + "\n"
    return "".join(out).encode()


def test_sync_soak_three_machines_random_edits_and_kills(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rounds = request.config.getoption("--sync-soak-rounds")
    seed = request.config.getoption("--soak-seed")
    lines: list[str] = []
    soak = SyncSoak(tmp_path / "cluster", seed=seed, rounds=rounds, say=lines.append, report_every=0)
    stats = soak.run()
    print("\n".join(lines))
    assert not stats.violations, (
        f"sync soak seed {seed} found violations (replay: python bench/soak_sync.py --seed {seed} "
        f"--rounds {rounds}):\n" + "\n".join(lines)
    )
    assert stats.rounds == rounds
    if rounds >= 20:  # seeded: the plan kills daemons and makes concurrent edits of one note
        assert stats.kills >= 2 and stats.crash_points >= 2, stats.line()
        assert stats.merges >= 1, stats.line()


# -- the checker fails where it must ------------------------------------------------------------


def test_merged_in_sees_a_change_kept_and_a_change_lost() -> None:
    ours, theirs = _with(l1="ours"), _with(l8="theirs")
    both = _with(l1="ours", l8="theirs")
    assert merged_in(both, BASE, ours) and merged_in(both, BASE, theirs)
    assert not merged_in(theirs, BASE, ours)  # ours lost
    assert not merged_in(_with(l1="something else"), BASE, ours)


def test_the_ledger_finds_every_kind_of_loss() -> None:
    a, n = "notes/a.md", "notes/n.md"
    ledger = Ledger()
    ledger.restart({n: BASE})
    ledger.saved[("m0", n)] = _with(l1="m0")
    ledger.saved[("m1", n)] = _with(l1="m1")
    ledger.saved[("m1", a)] = b"new on m1\n"
    copy = "notes/n.conflict-m0-20261203T120000Z.md"
    good = {n: _with(l1="m1"), copy: _with(l1="m0"), a: b"new on m1\n"}
    assert conflict_copies(good, n) == [copy]
    assert ledger.lost(good) == []
    assert len(ledger.lost({n: _with(l1="m1"), a: b"new on m1\n"})) == 1  # the copy is missing
    assert len(ledger.lost({n: _with(l1="m1"), copy: _with(l1="m0")})) == 1  # a.md is missing
    marked = {**good, a: b"<<<<<<< ours\nx\n=======\ny\n>>>>>>> theirs\n"}
    assert any("conflict markers" in p for p in ledger.lost(marked))


def test_the_ledger_follows_renames_and_checks_deletions(tmp_path: Path) -> None:
    n, moved = "notes/n.md", "notes/moved/n.md"
    ledger = Ledger()
    ledger.restart({n: BASE, "notes/gone.md": b"x\n"})
    ledger.saved[("m0", n)] = None  # m0 renamed n.md
    ledger.saved[("m0", moved)] = BASE
    ledger.origin[("m0", moved)] = n
    ledger.renamed[n] = {moved}
    ledger.saved[("m1", n)] = _with(l4="edited on m1")  # m1 edited it meanwhile
    ledger.saved[("m1", "notes/gone.md")] = None
    assert ledger.lost({moved: _with(l4="edited on m1")}) == []
    assert len(ledger.lost({moved: BASE})) == 1  # m1's edit lost
    back = ledger.lost({moved: _with(l4="edited on m1"), "notes/gone.md": b"x\n"})
    assert len(back) == 1 and "deleted" in back[0]
