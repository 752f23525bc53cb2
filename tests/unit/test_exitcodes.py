"""mdbackup.exitcodes: the contract's exit codes (README, "Exit codes")."""

from __future__ import annotations

import os

from mdbackup.exitcodes import ExitCode


def test_the_contract_codes() -> None:
    assert {code.name: int(code) for code in ExitCode} == {"OK": 0, "FAILED": 1, "USAGE": 2, "BUSY": 75}


def test_busy_is_sysexits_tempfail_and_codes_are_plain_ints() -> None:
    assert ExitCode.BUSY == os.EX_TEMPFAIL
    assert ExitCode.USAGE + 0 == 2 and isinstance(ExitCode.FAILED, int)
