"""The secrets tests hand to mdbackup, and the suite-wide check that none of them ever
appears in anything the program printed or logged.

Every token and passphrase a test or fixture makes is registered here (`register`).
The CLI runner and the daemon harness check all that the program wrote, and a hook in
tests/conftest.py checks every test's captured output and log records, so a secret
that leaks anywhere in the suite fails the test that saw it.
"""

from __future__ import annotations

_SECRETS: set[str] = set()


def register(secret: str) -> str:
    """Remember `secret` for the rest of the session; returns it."""
    if secret:
        _SECRETS.add(secret)
    return secret


def leaked(text: str) -> list[str]:
    """The registered secrets found in `text`, masked (first four characters)."""
    return sorted(f"{s[:4]}..." for s in _SECRETS if s in text)


def assert_clean(text: str, *, where: str) -> None:
    """Fail when a registered secret appears in `text` (the output of `where`)."""
    found = leaked(text)
    assert not found, f"secret(s) {found} appeared in {where}"
