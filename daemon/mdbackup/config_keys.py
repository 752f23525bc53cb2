"""The key table: every config key's kind, default, range checks and one-line doc.

`KEYS` is the one place a key is defined: `mdbackup.config` builds its section
dataclasses from it (their fields are exactly a section's keys, see
`mdbackup.config.SECTIONS`), and `mdbackup.config_doc` renders
`config.example.toml` from it. `parse` reads a raw TOML document against the
table, reporting every problem; the values it returns are not yet resolved on
disk (see `mdbackup.config_paths`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mdbackup.config_values import (
    Check,
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
    seconds,
    string,
    template,
    unknown,
)

MAX_SECONDS = 365 * 24 * 3600
"""Upper bound of every duration key (one year): larger values overflow timers."""
MAX_FILE_SIZE_LIMIT = 1 << 31
"""store.max_file_size's upper bound (2 GiB): blobs are streamed, but a backup of markdown
has no use for more and the index records sizes in 32 bits."""


@dataclass(frozen=True, kw_only=True)
class Key:
    """One config key: the one place its type, default, range checks and documentation live.

    `kind` parses the raw TOML value (raising `Invalid` with what was expected);
    `default` is the parsed value used when the key is absent; `checks` yield range
    problems of a parsed value; `doc` is the key's one-line comment in
    `config.example.toml`. `example`, only for keys whose default is "", is a value
    the example shows commented out (`# repo = "~/notes"`) instead of the default.
    """

    kind: Callable[[object], Any]
    default: Any
    doc: str
    checks: tuple[Check, ...] = ()
    example: str | None = None

    def __post_init__(self) -> None:
        if not self.doc.strip() or "\n" in self.doc:
            raise ValueError(f"a key's doc is one non-empty line, got {self.doc!r}")
        if self.example is not None and self.default != "":
            raise ValueError(f'only a key whose default is "" shows an example, not {self.default!r}')


_DURATION_CAP = at_most(MAX_SECONDS)
_DURATION = (at_least(0), _DURATION_CAP)
_POSITIVE_DURATION = (above(0), _DURATION_CAP)

KEYS: Mapping[str, Mapping[str, Key]] = {
    "store": {
        "repo": Key(
            kind=string,
            default="",
            example="~/notes",
            doc="root of the git working tree; default: the working tree around the current directory",
        ),
        "path": Key(
            kind=string,
            default=".",
            doc='the store folder, relative to repo ("." = the whole working tree)',
        ),
        "include": Key(
            kind=globs,
            default=("**/*.md",),
            doc="gitignore-style globs, relative to the store folder, of the files to back up",
        ),
        "exclude": Key(
            kind=globs,
            default=(),
            doc="more globs to skip, on top of the built-in editor temp patterns and .gitignore",
        ),
        "max_file_size": Key(
            kind=byte_count,
            default=10485760,
            checks=(above(0), at_most(MAX_FILE_SIZE_LIMIT)),
            doc='bytes, at most 2 GiB; a larger file is not committed and its status is "failed"',
        ),
    },
    "watch": {
        "debounce": Key(
            kind=seconds,
            default=2.0,
            checks=_DURATION,
            doc="seconds of quiet on a batch before it is committed",
        ),
        "max_delay": Key(
            kind=seconds,
            default=30.0,
            checks=_POSITIVE_DURATION,
            doc="seconds: a batch never waits longer than this after its first change (>= debounce)",
        ),
        "poll_interval": Key(
            kind=seconds,
            default=0.0,
            checks=_DURATION,
            doc="0: native file system events; > 0: poll with this interval (network file systems)",
        ),
        "rescan_interval": Key(
            kind=seconds,
            default=3600.0,
            checks=_DURATION,
            doc="seconds between full reconciliation scans; 0 turns them off",
        ),
    },
    "commit": {
        "enabled": Key(
            kind=boolean,
            default=True,
            doc='false: changes are recorded with status "disabled", nothing is committed',
        ),
        "message": Key(
            kind=string,
            default="backup: {summary}",
            checks=(template,),
            doc="placeholders: {summary} {count} {added} {modified} {deleted} {files} {hostname} {timestamp}",
        ),
        "author_name": Key(
            kind=string,
            default="",
            doc='"": the repository\'s user.name, else "mdbackup"',
        ),
        "author_email": Key(
            kind=string,
            default="",
            doc='"": the repository\'s user.email, else "mdbackup@<hostname>"',
        ),
    },
    "push": {
        "enabled": Key(
            kind=boolean,
            default=False,
            doc="true: push after each commit (fast-forward only, never forced)",
        ),
        "remote": Key(
            kind=string,
            default="origin",
            checks=(non_empty,),
            doc="name of the remote to push to",
        ),
        "branch": Key(
            kind=string,
            default="",
            doc='remote branch; "": the checked-out branch\'s name',
        ),
        "retry_min": Key(
            kind=seconds,
            default=5.0,
            checks=_POSITIVE_DURATION,
            doc="seconds before the first retry of a failed push",
        ),
        "retry_max": Key(
            kind=seconds,
            default=900.0,
            checks=_POSITIVE_DURATION,
            doc="seconds: retries of a failed push never wait longer than this (>= retry_min)",
        ),
    },
    "auth": {
        "ssh_key": Key(
            kind=string,
            default="",
            doc='SSH private key file; "": ssh-agent, then ~/.ssh/id_ed25519, ~/.ssh/id_rsa',
        ),
        "ssh_passphrase_env": Key(
            kind=string,
            default="",
            doc='name of the environment variable holding the key\'s passphrase ("": none)',
        ),
        "username": Key(
            kind=string,
            default="",
            doc='HTTPS user name; "": "git"',
        ),
        "token_env": Key(
            kind=string,
            default="MDBACKUP_TOKEN",
            doc="name of the environment variable holding the HTTPS password or token",
        ),
        "allow_plain_http": Key(
            kind=boolean,
            default=False,
            doc="true: allow sending credentials over http:// (loopback hosts are always allowed)",
        ),
    },
    "sync": {
        "enabled": Key(
            kind=boolean,
            default=False,
            doc="true: fetch the remote, merge its commits, update the store's files",
        ),
        "interval": Key(
            kind=seconds,
            default=60.0,
            checks=_POSITIVE_DURATION,
            doc="seconds between fetches while idle "
            "(also at start, before a push, and when a push finds the remote ahead)",
        ),
    },
    "state": {
        "db": Key(
            kind=string,
            default="",
            doc='SQLite state database; "": <git dir>/mdbackup/state.db',
        ),
    },
    "log": {
        "level": Key(
            kind=choice("debug", "info", "warning", "error"),
            default="info",
            doc="debug, info, warning or error",
        ),
        "format": Key(
            kind=choice("auto", "console", "json"),
            default="auto",
            doc="auto: console on a terminal, json otherwise (journald); or console, json",
        ),
    },
}
"""Every config key, by section then key, in the order `config.example.toml` lists them."""

_AT_LEAST_OTHER: tuple[tuple[str, str], ...] = (
    ("watch.max_delay", "watch.debounce"),
    ("push.retry_max", "push.retry_min"),
)
"""(key, other): when both are valid, key must be >= other."""


def defaults() -> dict[str, Any]:
    """`section.key` -> the table's default, for every key."""
    return {f"{section}.{name}": key.default for section, keys in KEYS.items() for name, key in keys.items()}


# --------------------------------------------------------------------------- parsing


def parse(raw: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    """Parse, range-check and relation-check every key of the TOML document `raw`.

    Returns `section.key` -> value for the valid keys and the defaults of the
    absent ones; a key of the wrong type or out of range is reported to `problems`
    and left out. Unknown sections and keys are reported (with the closest known
    name); a violated relation (`watch.max_delay` >= `watch.debounce`, ...) is
    reported at the first key, and both keys stay in.
    """
    values = defaults()
    for section, table in raw.items():
        if section not in KEYS:
            problems.at(section, unknown("section", section, KEYS))
        elif not isinstance(table, dict):
            problems.at(section, f"expected a table, got {describe(table)}")
        else:
            _parse_section(section, table, values, problems)
    _check_relations(values, problems)
    return values


def _parse_section(
    section: str, table: Mapping[str, Any], values: dict[str, Any], problems: Problems
) -> None:
    keys = KEYS[section]
    for key, raw_value in table.items():
        name = f"{section}.{key}"
        spec = keys.get(key)
        if spec is None:
            problems.at(name, unknown("key", key, keys))
            continue
        del values[name]
        try:
            value = spec.kind(raw_value)
        except Invalid as exc:
            problems.at(name, str(exc))
            continue
        found = [problem for check in spec.checks for problem in check(value)]
        for problem in found:
            problems.at(name, problem)
        if not found:
            values[name] = value


def _check_relations(values: Mapping[str, Any], problems: Problems) -> None:
    for key, other in _AT_LEAST_OTHER:
        if key in values and other in values and values[key] < values[other]:
            problems.at(key, f"must be >= {other} ({number(values[other])}), got {number(values[key])}")
