"""mdbackup.config_doc: config.example.toml rendered from the key table (that the file in
the repository is this output: tests/unit/test_config.py)."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from mdbackup.config_doc import COMMENT_COLUMN, HEADER, example_toml, key_line, toml_literal
from mdbackup.config_keys import KEYS, Key, defaults
from mdbackup.config_values import string
from tests.support.cli import PYTHONPATH


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (True, "true"),
        (False, "false"),
        (10485760, "10485760"),
        (2.0, "2"),
        (0.25, "0.25"),
        ("backup: {summary}", '"backup: {summary}"'),
        ('a "quoted" \\ path\x7f', '"a \\"quoted\\" \\\\ path\\u007f"'),
        (("**/*.md", "x"), '["**/*.md", "x"]'),
        ((), "[]"),
    ],
)
def test_toml_literal(value: object, literal: str) -> None:
    assert toml_literal(value) == literal
    assert tomllib.loads(f"v = {literal}")["v"] == (list(value) if isinstance(value, tuple) else value)


def test_toml_literal_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="NoneType"):
        toml_literal(None)


def test_key_line_puts_the_comment_in_its_column() -> None:
    line = key_line("debounce", Key(kind=float, default=2.0, doc="seconds of quiet"))
    assert line == "debounce = 2".ljust(COMMENT_COLUMN) + "# seconds of quiet"
    long = key_line("message", Key(kind=string, default="x" * 40, doc="d"))
    assert long.endswith('"  # d')  # a long assignment pushes the comment right


def test_a_key_with_an_example_is_commented_out() -> None:
    line = key_line("repo", Key(kind=string, default="", doc="where", example="~/notes"))
    assert line.startswith('# repo = "~/notes"') and line.endswith("# where")


def test_the_example_is_valid_toml_holding_every_default() -> None:
    text = example_toml()
    assert text.startswith(HEADER)
    parsed = tomllib.loads(text)
    assert list(parsed) == list(KEYS)
    shown = {f"{section}.{key}": value for section, table in parsed.items() for key, value in table.items()}
    commented = {f"{s}.{k}" for s, keys in KEYS.items() for k, key in keys.items() if key.example is not None}
    expected = {
        k: list(v) if isinstance(v, tuple) else v for k, v in defaults().items() if k not in commented
    }
    assert shown == expected


def test_main_writes_the_example(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mdbackup.config_doc"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": PYTHONPATH},
        cwd=tmp_path,
    ).stdout
    assert out == example_toml()
