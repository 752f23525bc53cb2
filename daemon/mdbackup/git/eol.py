"""Line endings and `$Id$` as `git add` converts them (git's convert.c, to the object database).

libgit2's crlf filter differs from git in the case that matters most for a backup: it
keeps a file's CRLFs whenever the index blob has any CR at all (or is not a regular
file), where git keeps them only when that blob is text with CRLF (convert.c
`has_crlf_in_index`), so the two commit different blobs. Its text heuristics differ
in details too (a vertical tab, a trailing ^Z). So the conversion is decided and done
here, exactly as git's `convert_to_git` does after the clean filter driver:

- `convert_attrs`: the `text` attribute (else the old `crlf`), `eol`, `core.autocrlf`
  and `core.eol` give the crlf action;
- `crlf_to_git`: CRLF becomes LF unless the action is binary, or it is an "auto"
  action and the content is binary by git's stats or the index blob of the path is
  text with CRLF; `core.safecrlf = true` refuses a conversion that would not survive
  a checkout (git dies; here the path fails with git's words);
- `ident_to_git`: with the `ident` attribute, `$Id: ...$` collapses to `$Id$`.

Reads the repository's attributes and git config (never mdbackup's).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pygit2
from pygit2.enums import FileMode

__all__ = ["Conversion", "EolRefused", "conversion_for", "has_crlf_in_index", "to_git"]

CrlfAction = Literal["binary", "text_input", "text_crlf", "auto", "auto_input", "auto_crlf"]
_AUTO = ("auto", "auto_input", "auto_crlf")
# Bytes git's gather_stats counts as non-printable: controls but BS, HT, LF, CR, ESC, FF; and DEL.
_NONPRINTABLE = bytes(c for c in range(32) if c not in (8, 9, 10, 13, 27, 12)) + b"\x7f"
_IDENT = re.compile(rb"\$Id:[^$\n]*\$")


class EolRefused(Exception):
    """`core.safecrlf = true` and the conversion would not survive a checkout (git dies)."""


@dataclass(frozen=True)
class Conversion:
    """What `git add` does to a path's content after its clean driver: the crlf action
    (convert.c `convert_attrs`), whether a checkout writes CRLF (`output_eol`), whether
    `ident` applies, and `core.safecrlf` ("true", "warn" or "false")."""

    crlf_action: CrlfAction = "binary"
    checkout_crlf: bool = False
    ident: bool = False
    safecrlf: str = "warn"

    @property
    def changes_nothing(self) -> bool:
        """True when the content is stored as it is (no eol conversion, no ident)."""
        return self.crlf_action == "binary" and not self.ident


@dataclass(frozen=True)
class _Stats:
    """git's `struct text_stat` (convert.c gather_stats)."""

    crlf: int
    lonecr: int
    lonelf: int
    nul: int
    printable: int
    nonprintable: int

    @property
    def binary(self) -> bool:
        """convert.c `convert_is_binary`."""
        return bool(self.lonecr or self.nul or (self.printable >> 7) < self.nonprintable)


def _stats(data: bytes) -> _Stats:
    """git's gather_stats, with C-speed counts instead of its byte loop (each CRLF pair
    takes one CR and one LF; the CRs and LFs are neither printable nor not)."""
    crlf = data.count(b"\r\n")
    cr = data.count(b"\r")
    lf = data.count(b"\n")
    nonprintable = len(data) - len(data.translate(None, _NONPRINTABLE))
    printable = len(data) - nonprintable - cr - lf
    if data.endswith(b"\x1a"):
        nonprintable -= 1  # a final ^Z (DOS end of file) is not counted against text
    return _Stats(
        crlf=crlf,
        lonecr=cr - crlf,
        lonelf=lf - crlf,
        nul=data.count(b"\0"),
        printable=printable,
        nonprintable=nonprintable,
    )


def conversion_for(repo: pygit2.Repository, path: str) -> Conversion:
    """The conversion `git add` applies to `path` (attributes from the working tree's
    .gitattributes, then the index's, as git; config as git reads it)."""
    raw = os.fsencode(path)

    def attr(name: str) -> bool | str | None:
        try:
            return repo.get_attr(raw, name)
        except (pygit2.GitError, ValueError):
            return None

    config = repo.config
    autocrlf = _config_value(config, "core.autocrlf", "false")
    core_eol = _config_value(config, "core.eol", "native").lower()
    safecrlf = _config_value(config, "core.safecrlf", "warn")
    text_eol_is_crlf = autocrlf == "true" or (autocrlf != "input" and core_eol == "crlf")

    action = _check_crlf(attr("text"))
    if action is None:
        action = _check_crlf(attr("crlf"))
    if action != "binary":
        eol = attr("eol")
        if action == "auto" and eol == "lf":
            action = "auto_input"
        elif action == "auto" and eol == "crlf":
            action = "auto_crlf"
        elif eol == "lf":
            action = "text_input"
        elif eol == "crlf":
            action = "text_crlf"
    if action == "text":
        action = "text_crlf" if text_eol_is_crlf else "text_input"
    if action is None:
        action = {"true": "auto_crlf", "input": "auto_input"}.get(autocrlf, "binary")
    crlf_action: CrlfAction = action  # type: ignore[assignment]
    checkout_crlf = crlf_action in ("text_crlf", "auto_crlf") or (crlf_action == "auto" and text_eol_is_crlf)
    return Conversion(
        crlf_action=crlf_action, checkout_crlf=checkout_crlf, ident=attr("ident") is True, safecrlf=safecrlf
    )


def has_crlf_in_index(repo: pygit2.Repository, oid: pygit2.Oid | None, mode: int | None) -> bool:
    """convert.c `has_crlf_in_index`: the index blob of the path (`oid`, `mode`; None when
    the index has none) is text with CRLF. A gitlink has no blob."""
    if oid is None or mode == FileMode.COMMIT:
        return False
    try:
        blob = repo[oid]
    except (KeyError, ValueError, pygit2.GitError):
        return False
    if not isinstance(blob, pygit2.Blob):
        return False
    data = blob.data
    if b"\r" not in data:
        return False
    stats = _stats(data)
    return not stats.binary and stats.crlf > 0


def to_git(conversion: Conversion, data: bytes, *, path: str, index_has_crlf: Callable[[], bool]) -> bytes:
    """`data` as git stores it: crlf_to_git, then ident_to_git.

    `index_has_crlf` answers `has_crlf_in_index` for the path; it is asked only when an
    "auto" action meets text with CRLF. Raises EolRefused when `core.safecrlf = true`
    and git would die.
    """
    data = _crlf_to_git(conversion, data, path=path, index_has_crlf=index_has_crlf)
    if conversion.ident and _IDENT.search(data):
        data = _IDENT.sub(b"$Id$", data)
    return data


def _crlf_to_git(
    conversion: Conversion, data: bytes, *, path: str, index_has_crlf: Callable[[], bool]
) -> bytes:
    action = conversion.crlf_action
    if action == "binary" or not data:
        return data
    stats = _stats(data)
    convert = stats.crlf > 0
    if action in _AUTO:
        if stats.binary:
            return data
        if convert and index_has_crlf():
            convert = False  # git's "safer autocrlf": a file committed with CRLF keeps them
    if conversion.safecrlf == "true":
        _check_round_trip(conversion, stats, convert=convert, path=path)
    if not convert:
        return data
    if action in _AUTO:
        return data.replace(b"\r", b"")  # text has no lone CR: every CR is a CRLF's
    return data.replace(b"\r\n", b"\n")


def _check_round_trip(conversion: Conversion, stats: _Stats, *, convert: bool, path: str) -> None:
    """convert.c check_global_conv_flags_eol with CONV_EOL_RNDTRP_DIE: "git add" then
    "git checkout" must give the file back."""
    crlf, lonelf = stats.crlf, stats.lonelf
    if convert:  # simulate "git add"
        lonelf, crlf = lonelf + crlf, 0
    if _will_convert_lf_to_crlf(conversion, lonelf=lonelf, crlf=crlf, stats=stats):  # "git checkout"
        crlf, lonelf = crlf + lonelf, 0
    if stats.crlf and not crlf:
        raise EolRefused(f"CRLF would be replaced by LF in {path} (core.safecrlf); not committed")
    if stats.lonelf and not lonelf:
        raise EolRefused(f"LF would be replaced by CRLF in {path} (core.safecrlf); not committed")


def _will_convert_lf_to_crlf(conversion: Conversion, *, lonelf: int, crlf: int, stats: _Stats) -> bool:
    if not conversion.checkout_crlf or not lonelf:
        return False
    # (the simulated add changes only the line-end counts, never what makes it binary)
    return not (conversion.crlf_action in _AUTO and (stats.lonecr or crlf or stats.binary))


def _check_crlf(value: bool | str | None) -> str | None:
    """convert.c git_path_check_crlf: None for unspecified (or an unknown value)."""
    if value is True:
        return "text"
    if value is False:
        return "binary"
    if value == "input":
        return "text_input"
    if value == "auto":
        return "auto"
    return None


def _config_value(config: pygit2.Config, key: str, default: str) -> str:
    """A core setting as git reads it, lower-cased; a boolean as "true" or "false" (a key
    without a value is true, as in git)."""
    try:
        value: object = config[key]
    except (KeyError, pygit2.GitError):
        return default
    if value is None:
        return "true"
    if not isinstance(value, str):
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return "true"
    if lowered in ("false", "no", "off", "0", ""):
        return "false"
    return lowered
