"""The suite-wide secret check (tests/support/secrets.py) sees a leak, masked."""

from __future__ import annotations

import pytest

from tests.support import secrets


def test_a_registered_secret_in_output_is_caught_and_masked() -> None:
    token = secrets.register("tok-check-" + "z" * 20)
    assert secrets.leaked("nothing here") == []
    assert secrets.leaked(f"error: auth failed for https://{token}@host/") == ["tok-..."]
    with pytest.raises(AssertionError, match=r"tok-\.\.\.") as caught:
        secrets.assert_clean(f"Authorization: {token}", where="a log")
    assert token not in str(caught.value)
