"""mdbackup.redact.scrub, and mdbackup.logs' registry that uses it."""

from __future__ import annotations

from mdbackup import logs
from mdbackup.redact import scrub


def test_scrub_replaces_every_occurrence_of_each_secret() -> None:
    assert scrub("token t0k and t0k again, pass pw", ["t0k", "pw"]) == "token *** and *** again, pass ***"


def test_longest_secret_first() -> None:
    # "abc" inside "abcdef": the long one is masked whole, not left as "***def".
    assert scrub("x abcdef y abc", ["abc", "abcdef"]) == "x *** y ***"
    assert scrub("x abcdef y abc", iter(["abcdef", "abc"])) == "x *** y ***"


def test_empty_and_absent_secrets_change_nothing() -> None:
    assert scrub("nothing to hide", []) == "nothing to hide"
    assert scrub("nothing to hide", ["", "absent"]) == "nothing to hide"
    assert scrub("", ["s"]) == ""


def test_logs_registry_scrubs_with_it() -> None:
    logs.redact("unit-secret-1", None, "")
    try:
        assert logs.scrub("a unit-secret-1 b") == "a *** b"
    finally:
        logs._secrets.discard("unit-secret-1")
