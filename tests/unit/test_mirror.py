"""The unit tests mirror the package: every module of daemon/mdbackup/ has its test file at
the same path under tests/unit/ (`git/push.py` -> `tests/unit/git/test_push.py`), unless it
is on the allow-list below because its behaviour can only be seen end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import ROOT

PACKAGE = ROOT / "daemon" / "mdbackup"
UNIT = ROOT / "tests" / "unit"
NOT_MODULES = {"__init__.py", "__main__.py"}

# module (relative to daemon/mdbackup/) -> where its behaviour is tested instead.
# Keep this short: a small real test under tests/unit/ is better than an entry here.
END_TO_END_ONLY = {
    # The daemon's main thread: signal handlers (SIGTERM flush, SIGHUP reload, SIGUSR1
    # wake) and the systemd notify/watchdog loop belong to a process of its own;
    # testing them in process would mean signalling the test runner. Covered by
    # tests/e2e/test_daemon.py: test_sigterm_flushes_pending_changes,
    # test_sighup_reloads_config_and_keeps_old_on_error, test_notify_protocol,
    # test_pause_resume_retry_reach_the_running_daemon.
    "service.py",
}


def modules() -> list[str]:
    return sorted(
        path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py") if path.name not in NOT_MODULES
    )


def mirrored(module: str) -> Path:
    path = Path(module)
    return UNIT / path.parent / f"test_{path.name}"


@pytest.mark.parametrize("module", [m for m in modules() if m not in END_TO_END_ONLY])
def test_every_module_has_its_unit_test_file(module: str) -> None:
    assert mirrored(module).is_file(), f"daemon/mdbackup/{module} has no {mirrored(module).relative_to(ROOT)}"


def test_the_allow_list_names_modules_that_exist_and_have_no_unit_file() -> None:
    for module in END_TO_END_ONLY:
        assert module in modules(), f"{module} is allow-listed but is not a module of the package"
        assert not mirrored(module).exists(), (
            f"{module} has {mirrored(module).relative_to(ROOT)}: drop it from the list"
        )


def test_every_unit_folder_is_a_package_of_the_mirror() -> None:
    for folder in [UNIT, *(p for p in UNIT.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        assert (folder / "__init__.py").is_file(), folder
        assert (PACKAGE / folder.relative_to(UNIT)).is_dir(), f"{folder} mirrors no package folder"
