"""mdbackup.config_values: value kinds, range checks, and the wording of problems."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pytest

from mdbackup.config_values import (
    Invalid,
    Problems,
    above,
    at_least,
    at_most,
    boolean,
    byte_count,
    choice,
    describe,
    globs,
    non_empty,
    number,
    one_line,
    seconds,
    string,
    template,
    unknown,
)


def test_one_line_escapes_control_characters_but_not_tabs() -> None:
    assert one_line("a\nb\rc\x00d\te") == "a\\nb\\rc\\x00d\te"


@pytest.mark.parametrize(("value", "text"), [(2, "2"), (2.0, "2"), (2.5, "2.5"), (math.inf, "inf")])
def test_number(value: float, text: str) -> None:
    assert number(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "boolean true"),
        (3, "integer 3"),
        (0.5, "float 0.5"),
        ("2s", 'string "2s"'),
        ("é" * 50, 'string "' + "é" * 36 + "..."),
        (["a", 1], 'array ["a", 1]'),
        ({"k": 1}, "table"),
        (date(2026, 1, 2), "date 2026-01-02"),
        (datetime(2026, 1, 2, 3, 4), "datetime 2026-01-02T03:04:00"),
        (None, "NoneType"),
    ],
)
def test_describe(value: Any, text: str) -> None:
    assert describe(value) == text


def test_unknown_suggests_the_closest_name_and_lists_the_known() -> None:
    assert unknown("key", "debounse", ["max_delay", "debounce"]) == (
        "unknown key; did you mean 'debounce'? (known: debounce, max_delay)"
    )
    assert unknown("section", "zzz", ["b", "a"]) == "unknown section (known: a, b)"


def test_problems_name_where_each_comes_from() -> None:
    problems = Problems("/etc/c.toml")
    problems.at("watch.debounce", "must be > 0, got 0")
    problems.flag("--repo", "x: not a git working tree")
    assert problems.lines == [
        "/etc/c.toml: at 'watch.debounce': must be > 0, got 0",
        "--repo: x: not a git working tree",
    ]


@pytest.mark.parametrize(
    ("kind", "good", "parsed"),
    [
        (seconds, 2, 2.0),
        (seconds, 0.5, 0.5),
        (byte_count, 10, 10),
        (boolean, False, False),
        (string, "", ""),
        (globs, ["*.md", "a/**"], ("*.md", "a/**")),
        (choice("auto", "json"), "JSON", "json"),
    ],
)
def test_kinds_parse_good_values(kind: Any, good: object, parsed: object) -> None:
    assert kind(good) == parsed


@pytest.mark.parametrize(
    ("kind", "bad", "message"),
    [
        (seconds, True, "expected a number of seconds, got boolean true"),
        (seconds, "2s", 'expected a number of seconds, got string "2s"'),
        (seconds, math.nan, "expected a finite number of seconds, got float nan"),
        (byte_count, 1.5, "expected an integer number of bytes, got float 1.5"),
        (boolean, "yes", 'expected true or false, got string "yes"'),
        (string, 1, "expected a string, got integer 1"),
        (globs, "*.md", 'expected a list of strings, got string "*.md"'),
        (globs, ["a", 2], "expected a list of strings, got integer 2 at index 1"),
        (globs, ["a", ""], "expected a list of non-empty strings, got an empty string at index 1"),
        (choice("auto", "json"), "xml", 'expected one of auto, json, got string "xml"'),
    ],
)
def test_kinds_refuse_bad_values_saying_what_was_expected(kind: Any, bad: object, message: str) -> None:
    with pytest.raises(Invalid) as exc:
        kind(bad)
    assert str(exc.value) == message


def test_range_checks() -> None:
    assert list(at_least(0)(0)) == [] and list(at_least(0)(-1)) == ["must be >= 0, got -1"]
    assert list(above(0)(0.5)) == [] and list(above(0)(0.0)) == ["must be > 0, got 0"]
    assert list(at_most(10)(10)) == [] and list(at_most(10)(10.5)) == ["must be <= 10, got 10.5"]


def test_non_empty_and_template() -> None:
    assert list(non_empty(" x ")) == [] and list(non_empty(" \t")) == ["must not be empty"]
    assert list(template("backup: {summary}")) == []
    assert list(template("")) == ["must not be empty"]
    assert list(template("backup: {nope}"))  # an unknown placeholder is a problem
