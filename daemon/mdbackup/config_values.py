"""Validating one config value: kinds, checks, and the wording and collecting of problems.

A *kind* parses a raw TOML value into the Python value a config field holds, or
raises `Invalid` whose message says what was expected and what was found
(`expected a number of seconds, got string "2s"`). A *check* (`Check`) takes a
parsed value and yields zero or more range problems (`must be > 0, got 0`).
`Problems` collects the resulting lines, each naming where it comes from.

This module knows no particular section or key; the key table
(`mdbackup.config_keys`) says which kind and checks each key uses.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time
from typing import Any

from mdbackup.message import template_problems

# --------------------------------------------------------------------------- wording


class Invalid(Exception):
    """A raw TOML value does not have the expected type; the message says what was expected."""


_CONTROL = {code: f"\\x{code:02x}" for code in range(32) if chr(code) != "\t"} | {10: "\\n", 13: "\\r"}


def one_line(text: str) -> str:
    """`text` with control characters escaped, so a problem is always exactly one printable line."""
    return text.translate(_CONTROL)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number(value: float | int) -> str:
    """`2`, `2.5`, `inf`: numbers as a user would write them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def describe(value: object) -> str:
    """The TOML type of `value` and a short rendering: `string "2s"`, `integer 3`, `boolean true`."""
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {_short(str(value))}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        return f"string {_short(json.dumps(value, ensure_ascii=False))}"
    if isinstance(value, list):
        return f"array {_short(json.dumps(value, ensure_ascii=False, default=str))}"
    if isinstance(value, dict):
        return "table"
    for kind, name in ((datetime, "datetime"), (date, "date"), (time, "time")):
        if isinstance(value, kind):
            return f"{name} {value.isoformat()}"
    return type(value).__name__


def unknown(kind: str, name: str, known: Iterable[str]) -> str:
    """`unknown key; did you mean 'debounce'? (known: ...)`: an unknown section or key name."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {kind}{hint} (known: {', '.join(known)})"


class Problems:
    """Collects problem lines: `SOURCE: at 'key': what` for file keys, `FLAG: what` for flags."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def at(self, key: str, what: str) -> None:
        self.lines.append(f"{self.source}: at '{key}': {what}")

    def flag(self, flag: str, what: str) -> None:
        self.lines.append(f"{flag}: {what}")


# --------------------------------------------------------------------------- kinds


def seconds(value: object) -> float:
    """A finite integer or float, as a float (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"expected a number of seconds, got {describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(f"expected a finite number of seconds, got {describe(value)}")
    return float(value)


def byte_count(value: object) -> int:
    """An integer (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected an integer number of bytes, got {describe(value)}")
    return value


def boolean(value: object) -> bool:
    """`true` or `false`."""
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {describe(value)}")
    return value


def string(value: object) -> str:
    """Any string, unchanged."""
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {describe(value)}")
    return value


def globs(value: object) -> tuple[str, ...]:
    """A list of non-empty strings, as a tuple."""
    if not isinstance(value, list):
        raise Invalid(f"expected a list of strings, got {describe(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise Invalid(f"expected a list of strings, got {describe(item)} at index {index}")
        if not item:
            raise Invalid(f"expected a list of non-empty strings, got an empty string at index {index}")
    return tuple(value)


def choice(*options: str) -> Callable[[object], str]:
    """A string kind accepting `options`, case-insensitively; the value is lower-cased."""
    expected = f"expected one of {', '.join(options)}"

    def parse(value: object) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise Invalid(f"{expected}, got {describe(value)}")
        return value.lower()

    return parse


# --------------------------------------------------------------------------- checks

Check = Callable[[Any], Iterable[str]]
"""Yields the range problems of a parsed value (nothing when it is fine)."""


def at_least(bound: float) -> Check:
    """The value must be >= `bound`."""

    def check(value: float) -> Iterator[str]:
        if value < bound:
            yield f"must be >= {number(bound)}, got {number(value)}"

    return check


def above(bound: float) -> Check:
    """The value must be > `bound`."""

    def check(value: float) -> Iterator[str]:
        if value <= bound:
            yield f"must be > {number(bound)}, got {number(value)}"

    return check


def at_most(bound: float) -> Check:
    """The value must be <= `bound`."""

    def check(value: float) -> Iterator[str]:
        if value > bound:
            yield f"must be <= {number(bound)}, got {number(value)}"

    return check


def non_empty(value: str) -> Iterator[str]:
    """The string must contain more than white space."""
    if not value.strip():
        yield "must not be empty"


def template(value: str) -> Iterator[str]:
    """A non-empty, valid commit message template (see `mdbackup.message`)."""
    yield from non_empty(value)
    yield from template_problems(value)
