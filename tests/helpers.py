"""Moved to `tests/support/` (cli, git, wait, ...): import from there.

This stays only for `tests/unit/git/test_layering.py`, which imports `ROOT` from here
and is not ours to edit; delete this file once that import reads
`from tests.support.cli import ROOT`.
"""

from tests.support.cli import ROOT

__all__ = ["ROOT"]
