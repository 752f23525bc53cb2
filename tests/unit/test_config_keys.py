"""mdbackup.config_keys: the key table and parsing a TOML document against it."""

from __future__ import annotations

from typing import Any

import pytest

from mdbackup.config_keys import KEYS, MAX_SECONDS, Key, defaults, parse
from mdbackup.config_values import Problems, string


def parsed(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    problems = Problems("c.toml")
    return parse(raw, problems), problems.lines


def test_defaults_name_every_key_of_the_table() -> None:
    values = defaults()
    assert set(values) == {f"{s}.{k}" for s, keys in KEYS.items() for k in keys}
    assert values["watch.debounce"] == 2.0 and values["store.include"] == ("**/*.md",)


def test_an_empty_document_is_the_defaults() -> None:
    assert parsed({}) == (defaults(), [])


def test_valid_values_are_parsed_into_their_kind() -> None:
    values, problems = parsed({"watch": {"debounce": 1, "max_delay": 5}, "store": {"exclude": ["a/**"]}})
    assert problems == []
    assert values["watch.debounce"] == 1.0 and isinstance(values["watch.debounce"], float)
    assert values["store.exclude"] == ("a/**",)
    assert values["log.format"] == "auto"  # untouched keys keep their default


def test_unknown_section_and_key_are_reported_with_the_closest_name() -> None:
    _values, problems = parsed({"wacth": {}, "watch": {"debounse": 1}})
    assert problems[0].startswith("c.toml: at 'wacth': unknown section; did you mean 'watch'?")
    assert problems[1].startswith("c.toml: at 'watch.debounse': unknown key; did you mean 'debounce'?")


def test_a_section_that_is_not_a_table() -> None:
    _values, problems = parsed({"watch": 3})
    assert problems == ["c.toml: at 'watch': expected a table, got integer 3"]


def test_a_wrong_type_or_range_is_reported_and_left_out() -> None:
    values, problems = parsed({"watch": {"debounce": "2s", "rescan_interval": MAX_SECONDS + 1}})
    assert problems == [
        """c.toml: at 'watch.debounce': expected a number of seconds, got string "2s\"""",
        f"c.toml: at 'watch.rescan_interval': must be <= {MAX_SECONDS}, got {MAX_SECONDS + 1}",
    ]
    assert "watch.debounce" not in values and "watch.rescan_interval" not in values


def test_a_violated_relation_is_reported_at_the_first_key_and_both_stay() -> None:
    values, problems = parsed({"watch": {"debounce": 10, "max_delay": 5}})
    assert problems == ["c.toml: at 'watch.max_delay': must be >= watch.debounce (10), got 5"]
    assert (values["watch.debounce"], values["watch.max_delay"]) == (10.0, 5.0)


def test_every_problem_is_reported_at_once() -> None:
    _values, problems = parsed(
        {"push": {"retry_min": -1, "enabled": "yes"}, "log": {"level": "loud"}, "x": {}}
    )
    assert len(problems) == 4


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"doc": ""}, "one non-empty line"),
        ({"doc": "two\nlines"}, "one non-empty line"),
        ({"doc": "d", "default": "x", "example": "y"}, 'only a key whose default is ""'),
    ],
)
def test_a_key_is_checked_when_the_table_is_built(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Key(kind=string, **{"default": "", **kw})


def test_every_key_in_the_table_has_a_doc_and_a_valid_default() -> None:
    for keys in KEYS.values():
        for key in keys.values():
            assert (
                key.kind(key.default if not isinstance(key.default, tuple) else list(key.default))
                == key.default
            )
            assert not [problem for check in key.checks for problem in check(key.default)]


def test_sync_defaults_off_and_interval_must_be_positive() -> None:
    problems = Problems("c.toml")
    values = parse({}, problems)
    assert (values["sync.enabled"], values["sync.interval"]) == (False, 60.0)
    problems = Problems("c.toml")
    values = parse({"sync": {"enabled": "yes", "interval": 0}}, problems)
    assert "sync.enabled" not in values and "sync.interval" not in values
    assert problems.lines == [
        "c.toml: at 'sync.enabled': expected true or false, got string \"yes\"",
        "c.toml: at 'sync.interval': must be > 0, got 0",
    ]
