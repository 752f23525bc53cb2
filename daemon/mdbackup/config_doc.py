"""`config.example.toml`, rendered from the key table `mdbackup.config_keys.KEYS`.

Every key is written with its default and its one-line doc as a comment, in the
table's order; a key with an `example` (default "") is written commented out
with that value. The repository's `config.example.toml` is this module's output
(a test checks it); regenerate it with:

    python -m mdbackup.config_doc > config.example.toml
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mdbackup.config_keys import KEYS, Key

HEADER = """\
# mdbackup configuration: every key is optional; the values shown are the defaults.
# Looked up as: --config PATH, else $MDBACKUP_CONFIG, else
# $XDG_CONFIG_HOME/mdbackup/config.toml (~/.config/mdbackup/config.toml).
# Unknown sections or keys and wrong types are errors (exit code 2).
# Durations are seconds, integer or float. Relative file paths are relative to
# this file's folder; "~" is expanded.
#
# Generated from the key table in daemon/mdbackup/config_keys.py; after changing it run
#   python -m mdbackup.config_doc > config.example.toml
"""
"""The example's opening comment, ending with how to regenerate the file."""

COMMENT_COLUMN = 26
"""Comments start in this column (0-based) unless the `key = value` part is longer."""


def _string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; DEL must be escaped too)."""
    return json.dumps(value).replace("\x7f", "\\u007f")


def _number(value: float) -> str:
    """`2`, `2.5`: a finite float as a user would write it (TOML accepts an integer for seconds)."""
    return str(int(value)) if value.is_integer() else repr(value)


_LITERALS: Mapping[type, Callable[[Any], str]] = {
    bool: lambda value: "true" if value else "false",
    int: str,
    float: _number,
    str: _string,
    tuple: lambda items: "[" + ", ".join(_string(item) for item in items) + "]",
}
"""How a default of each Python type is written in TOML."""


def toml_literal(value: object) -> str:
    """`value` (a default from the key table) as a TOML literal; TypeError for other types."""
    render = _LITERALS.get(type(value))
    if render is None:
        raise TypeError(f"no TOML literal for a default of type {type(value).__name__}")
    return render(value)


def key_line(name: str, key: Key) -> str:
    """`name = default  # doc`, or `# name = example  # doc` for a key with an example."""
    assignment = (
        f"{name} = {toml_literal(key.default)}"
        if key.example is None
        else f"# {name} = {toml_literal(key.example)}"
    )
    return f"{assignment.ljust(COMMENT_COLUMN - 2)}  # {key.doc}"


def _sections() -> Iterator[str]:
    for section, keys in KEYS.items():
        lines = [f"[{section}]", *(key_line(name, key) for name, key in keys.items())]
        yield "\n".join(lines) + "\n"


def example_toml() -> str:
    """The whole `config.example.toml`: the header, then one block per section."""
    return "\n".join([HEADER, *_sections()])


def main() -> int:
    """Write `example_toml()` to standard output."""
    sys.stdout.write(example_toml())
    return 0


if __name__ == "__main__":
    sys.exit(main())
