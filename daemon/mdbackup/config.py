"""The TOML configuration: lookup, parsing into frozen dataclasses, and validation.

Validation collects every problem before raising `ConfigError`; each problem is
one line naming where it comes from and what is wrong:

    /home/u/.config/mdbackup/config.toml: at 'watch.debounce': expected a number of seconds, got string "2s"
    --repo: /x: not a git working tree

The keys, their types, defaults, range checks and one-line docs live in one table,
`KEYS`; the dataclasses have no defaults of their own, and `config.example.toml` is
rendered from the table by `mdbackup.config_doc`.
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from mdbackup.git.repo import find_worktree
from mdbackup.message import template_problems

ENV_CONFIG = "MDBACKUP_CONFIG"
"""Environment variable naming the config file when `--config` is not given."""

DEFAULTS_LABEL = "defaults"
"""Stands in for the file name in problems when no config file is used."""

MAX_SECONDS = 365 * 24 * 3600
"""Upper bound of every duration key (one year): larger values overflow timers."""


class ConfigError(Exception):
    """The configuration is unusable; `problems` holds one line per problem (exit code 2)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = [_one_line(problem) for problem in problems]
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True, kw_only=True)
class StoreConfig:
    """The store: a folder inside a git working tree.

    `repo` is the absolute, resolved root of the working tree. `path` is the store
    folder relative to `repo`, normalized POSIX (`notes/daily`), `.` for the root,
    outside `.git`; when it exists it is a folder. `include`/`exclude` are
    gitignore-style globs relative to the store folder. `max_file_size` is in bytes (> 0).
    """

    repo: Path
    path: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    max_file_size: int


@dataclass(frozen=True, kw_only=True)
class WatchConfig:
    """Batching and scanning, all in seconds.

    0 <= debounce <= max_delay, 0 < max_delay; poll_interval 0 means the native
    observer, > 0 the polling one; rescan_interval 0 turns periodic scans off.
    """

    debounce: float
    max_delay: float
    poll_interval: float
    rescan_interval: float


@dataclass(frozen=True, kw_only=True)
class CommitConfig:
    """Committing. `message` is a valid template (see `mdbackup.message`).

    An empty `author_name`/`author_email` means: the repository's user.name /
    user.email, else `mdbackup` / `mdbackup@<hostname>` (the caller decides).
    """

    enabled: bool
    message: str
    author_name: str
    author_email: str


@dataclass(frozen=True, kw_only=True)
class PushConfig:
    """Pushing. `remote` is non-empty; an empty `branch` means the checked-out branch.

    Retries of a failed push back off from `retry_min` (> 0) to `retry_max`
    (>= retry_min) seconds.
    """

    enabled: bool
    remote: str
    branch: str
    retry_min: float
    retry_max: float


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    """Credentials. `ssh_key` is "" (ssh-agent, then default keys) or an absolute path.

    `ssh_passphrase_env` and `token_env` name environment variables ("" = none);
    an empty `username` means `git` for HTTPS.
    """

    ssh_key: str
    ssh_passphrase_env: str
    username: str
    token_env: str


@dataclass(frozen=True, kw_only=True)
class StateConfig:
    """The state database: "" means `<git dir>/mdbackup/state.db` (the caller computes it),
    otherwise an absolute path (`~` expanded, relative to the config file's folder)."""

    db: str


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    """Logging: `level` is debug|info|warning|error, `format` auto|console|json (lower case)."""

    level: str
    format: str


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole validated configuration; `source` is the config file used (None: defaults only).

    Built by `load_config` (or `default_config`) only: the sections have no defaults
    of their own, the key table `KEYS` is the one place defaults are written.
    """

    store: StoreConfig
    watch: WatchConfig
    commit: CommitConfig
    push: PushConfig
    auth: AuthConfig
    state: StateConfig
    log: LogConfig
    source: Path | None

    @property
    def repo(self) -> Path:
        """The absolute, resolved root of the git working tree."""
        return self.store.repo

    @property
    def store_prefix(self) -> str:
        """The store folder relative to the repo, POSIX, without a trailing `/`; "" for the root."""
        return "" if self.store.path == "." else self.store.path


@dataclass(frozen=True)
class Overrides:
    """Command-line values that replace the file's: `--repo`, `--store`, `--push/--no-push`.

    `repo` is relative to the current directory, `store` relative to the repo.
    """

    repo: Path | None = None
    store: str | None = None
    push: bool | None = None


# --------------------------------------------------------------------------- value kinds


class _Invalid(Exception):
    """A raw TOML value does not have the expected type; the message says what was expected."""


_CONTROL = {code: f"\\x{code:02x}" for code in range(32) if chr(code) != "\t"} | {10: "\\n", 13: "\\r"}


def _one_line(text: str) -> str:
    """`text` with control characters escaped, so a problem is always exactly one printable line."""
    return text.translate(_CONTROL)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: float | int) -> str:
    """`2`, `2.5`, `inf`: numbers as a user would write them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _describe(value: object) -> str:
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


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"expected a number of seconds, got {_describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(f"expected a finite number of seconds, got {_describe(value)}")
    return float(value)


def _byte_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected an integer number of bytes, got {_describe(value)}")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_describe(value)}")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_describe(value)}")
    return value


def _globs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"expected a list of strings, got {_describe(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _Invalid(f"expected a list of strings, got {_describe(item)} at index {index}")
        if not item:
            raise _Invalid(f"expected a list of non-empty strings, got an empty string at index {index}")
    return tuple(value)


def _choice(*options: str) -> Callable[[object], str]:
    """A string kind accepting `options`, case-insensitively; the value is lower-cased."""
    expected = f"expected one of {', '.join(options)}"

    def parse(value: object) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise _Invalid(f"{expected}, got {_describe(value)}")
        return value.lower()

    return parse


# --------------------------------------------------------------------------- value checks

_Check = Callable[[Any], Iterable[str]]


def _at_least(bound: float) -> _Check:
    def check(value: float) -> Iterator[str]:
        if value < bound:
            yield f"must be >= {_number(bound)}, got {_number(value)}"

    return check


def _above(bound: float) -> _Check:
    def check(value: float) -> Iterator[str]:
        if value <= bound:
            yield f"must be > {_number(bound)}, got {_number(value)}"

    return check


def _at_most(bound: float) -> _Check:
    def check(value: float) -> Iterator[str]:
        if value > bound:
            yield f"must be <= {_number(bound)}, got {_number(value)}"

    return check


def _non_empty(value: str) -> Iterator[str]:
    if not value.strip():
        yield "must not be empty"


def _template(value: str) -> Iterator[str]:
    yield from _non_empty(value)
    yield from template_problems(value)


# --------------------------------------------------------------------------- the key table


@dataclass(frozen=True, kw_only=True)
class Key:
    """One config key: the one place its type, default, range checks and documentation live.

    `kind` parses the raw TOML value (raising `_Invalid` with what was expected);
    `default` is the parsed value used when the key is absent; `checks` yield range
    problems of a parsed value; `doc` is the key's one-line comment in
    `config.example.toml`. `example`, only for keys whose default is "", is a value
    the example shows commented out (`# repo = "~/notes"`) instead of the default.
    """

    kind: Callable[[object], Any]
    default: Any
    doc: str
    checks: tuple[_Check, ...] = ()
    example: str | None = None

    def __post_init__(self) -> None:
        if not self.doc.strip() or "\n" in self.doc:
            raise ValueError(f"a key's doc is one non-empty line, got {self.doc!r}")
        if self.example is not None and self.default != "":
            raise ValueError(f'only a key whose default is "" shows an example, not {self.default!r}')


_DURATION_CAP = _at_most(MAX_SECONDS)
_DURATION = (_at_least(0), _DURATION_CAP)
_POSITIVE_DURATION = (_above(0), _DURATION_CAP)

KEYS: Mapping[str, Mapping[str, Key]] = {
    "store": {
        "repo": Key(
            kind=_text,
            default="",
            example="~/notes",
            doc="root of the git working tree; default: the working tree around the current directory",
        ),
        "path": Key(
            kind=_text,
            default=".",
            doc='the store folder, relative to repo ("." = the whole working tree)',
        ),
        "include": Key(
            kind=_globs,
            default=("**/*.md",),
            doc="gitignore-style globs, relative to the store folder, of the files to back up",
        ),
        "exclude": Key(
            kind=_globs,
            default=(),
            doc="more globs to skip, on top of the built-in editor temp patterns and .gitignore",
        ),
        "max_file_size": Key(
            kind=_byte_count,
            default=10485760,
            checks=(_above(0),),
            doc='bytes; a larger file is not committed and its status is "failed"',
        ),
    },
    "watch": {
        "debounce": Key(
            kind=_seconds,
            default=2.0,
            checks=_DURATION,
            doc="seconds of quiet on a batch before it is committed",
        ),
        "max_delay": Key(
            kind=_seconds,
            default=30.0,
            checks=_POSITIVE_DURATION,
            doc="seconds: a batch never waits longer than this after its first change (>= debounce)",
        ),
        "poll_interval": Key(
            kind=_seconds,
            default=0.0,
            checks=_DURATION,
            doc="0: native file system events; > 0: poll with this interval (network file systems)",
        ),
        "rescan_interval": Key(
            kind=_seconds,
            default=3600.0,
            checks=_DURATION,
            doc="seconds between full reconciliation scans; 0 turns them off",
        ),
    },
    "commit": {
        "enabled": Key(
            kind=_boolean,
            default=True,
            doc='false: changes are recorded with status "disabled", nothing is committed',
        ),
        "message": Key(
            kind=_text,
            default="backup: {summary}",
            checks=(_template,),
            doc="placeholders: {summary} {count} {added} {modified} {deleted} {files} {hostname} {timestamp}",
        ),
        "author_name": Key(
            kind=_text,
            default="",
            doc='"": the repository\'s user.name, else "mdbackup"',
        ),
        "author_email": Key(
            kind=_text,
            default="",
            doc='"": the repository\'s user.email, else "mdbackup@<hostname>"',
        ),
    },
    "push": {
        "enabled": Key(
            kind=_boolean,
            default=False,
            doc="true: push after each commit (fast-forward only, never forced)",
        ),
        "remote": Key(
            kind=_text,
            default="origin",
            checks=(_non_empty,),
            doc="name of the remote to push to",
        ),
        "branch": Key(
            kind=_text,
            default="",
            doc='remote branch; "": the checked-out branch\'s name',
        ),
        "retry_min": Key(
            kind=_seconds,
            default=5.0,
            checks=_POSITIVE_DURATION,
            doc="seconds before the first retry of a failed push",
        ),
        "retry_max": Key(
            kind=_seconds,
            default=900.0,
            checks=_POSITIVE_DURATION,
            doc="seconds: retries of a failed push never wait longer than this (>= retry_min)",
        ),
    },
    "auth": {
        "ssh_key": Key(
            kind=_text,
            default="",
            doc='SSH private key file; "": ssh-agent, then ~/.ssh/id_ed25519, ~/.ssh/id_rsa',
        ),
        "ssh_passphrase_env": Key(
            kind=_text,
            default="",
            doc='name of the environment variable holding the key\'s passphrase ("": none)',
        ),
        "username": Key(
            kind=_text,
            default="",
            doc='HTTPS user name; "": "git"',
        ),
        "token_env": Key(
            kind=_text,
            default="MDBACKUP_TOKEN",
            doc="name of the environment variable holding the HTTPS password or token",
        ),
    },
    "state": {
        "db": Key(
            kind=_text,
            default="",
            doc='SQLite state database; "": <git dir>/mdbackup/state.db',
        ),
    },
    "log": {
        "level": Key(
            kind=_choice("debug", "info", "warning", "error"),
            default="info",
            doc="debug, info, warning or error",
        ),
        "format": Key(
            kind=_choice("auto", "console", "json"),
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

SECTIONS: Mapping[str, type] = {
    "store": StoreConfig,
    "watch": WatchConfig,
    "commit": CommitConfig,
    "push": PushConfig,
    "auth": AuthConfig,
    "state": StateConfig,
    "log": LogConfig,
}
"""The dataclass of each section of `KEYS`; its fields are exactly the section's keys."""


def _defaults() -> dict[str, Any]:
    """`section.key` -> the table's default, for every key."""
    return {f"{section}.{name}": key.default for section, keys in KEYS.items() for name, key in keys.items()}


# --------------------------------------------------------------------------- problems


class _Problems:
    """Collects problem lines: `SOURCE: at 'key': what` for file keys, `FLAG: what` for flags."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def at(self, key: str, what: str) -> None:
        self.lines.append(f"{self.source}: at '{key}': {what}")

    def flag(self, flag: str, what: str) -> None:
        self.lines.append(f"{flag}: {what}")


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {kind}{hint} (known: {', '.join(known)})"


# --------------------------------------------------------------------------- lookup


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME")
    return Path(home) if home else Path.home()


def _expand(path: Path, environ: Mapping[str, str]) -> Path:
    """Expand a leading `~` using `environ`'s HOME (`~user` via the password database)."""
    if path.parts and path.parts[0] == "~":
        return _home(environ).joinpath(*path.parts[1:])
    return path.expanduser()


def find_config_file(*, explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to use: `--config`, else `$MDBACKUP_CONFIG`, else the XDG one, else None.

    The XDG file is `$XDG_CONFIG_HOME/mdbackup/config.toml` (`~/.config` when the
    variable is unset, empty or relative) and is used only if it exists. An
    explicit or `$MDBACKUP_CONFIG` file that does not exist is a ConfigError
    naming it. `~` is expanded; a relative path is returned relative.
    """
    if explicit is not None:
        return _existing(_expand(Path(explicit), environ), "--config")
    from_env = environ.get(ENV_CONFIG, "")
    if from_env:
        return _existing(_expand(Path(from_env), environ), f"${ENV_CONFIG}")
    xdg = environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else _home(environ) / ".config"
    candidate = base / "mdbackup" / "config.toml"
    return candidate if _exists(candidate, "XDG_CONFIG_HOME") else None


def _existing(path: Path, origin: str) -> Path:
    """`path` when it exists and is not a folder, else a ConfigError naming `origin`."""
    if not _exists(path, origin):
        raise ConfigError([f"{origin}: {path}: no such file"])
    if path.is_dir():
        raise ConfigError([f"{origin}: {path}: is a folder, not a file"])
    return path


def _exists(path: Path, origin: str) -> bool:
    try:
        return path.exists()
    except OSError as exc:
        raise ConfigError([f"{origin}: {path}: cannot access ({exc.strerror})"]) from exc


# --------------------------------------------------------------------------- loading


def load_config(path: Path | None, *, overrides: Overrides = Overrides(), cwd: Path) -> Config:
    """Read, validate and resolve the configuration; raise ConfigError listing every problem.

    `path` None means defaults only (problems then name `defaults` as the file).
    Relative paths in the file (`store.repo`, `state.db`, `auth.ssh_key`) are
    relative to the file's folder (to `cwd` without a file), `~` is expanded.
    `store.repo` (or `--repo`) must be the root of a git working tree; when neither
    is given the repo is the working tree containing `cwd`. `store.path` (or
    `--store`) must be an existing folder inside the repo and outside `.git`.
    File values replaced by an override are still type-checked, but only the
    effective repo and store are checked on disk.
    """
    source = None if path is None else cwd / Path(path).expanduser()
    problems = _Problems(DEFAULTS_LABEL if source is None else str(source))
    raw = {} if source is None else _read_toml(source, problems.source)
    values = _parse(raw, problems)
    _check_relations(values, problems)
    base = cwd if source is None else source.parent
    _resolve_paths(values, overrides=overrides, base=base, cwd=cwd, problems=problems)
    if overrides.push is not None:
        values["push.enabled"] = overrides.push
    if problems.lines:
        raise ConfigError(problems.lines)
    return _build(values, source)


def _read_toml(source: Path, label: str) -> dict[str, Any]:
    try:
        with source.open("rb") as stream:
            return tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{label}: invalid TOML: {exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{label}: invalid TOML: not UTF-8 ({exc.reason} at byte {exc.start})"]) from exc
    except OSError as exc:
        raise ConfigError([f"{label}: cannot read: {exc.strerror or exc}"]) from exc


def _parse(raw: Mapping[str, Any], problems: _Problems) -> dict[str, Any]:
    """Parse and range-check every key; returns `section.key` -> value for the valid ones and
    the defaults of the absent ones (invalid keys are left out)."""
    values = _defaults()
    for section, table in raw.items():
        if section not in KEYS:
            problems.at(section, _unknown("section", section, KEYS))
        elif not isinstance(table, dict):
            problems.at(section, f"expected a table, got {_describe(table)}")
        else:
            _parse_section(section, table, values, problems)
    return values


def _parse_section(
    section: str, table: Mapping[str, Any], values: dict[str, Any], problems: _Problems
) -> None:
    keys = KEYS[section]
    for key, raw_value in table.items():
        name = f"{section}.{key}"
        spec = keys.get(key)
        if spec is None:
            problems.at(name, _unknown("key", key, keys))
            continue
        del values[name]
        try:
            value = spec.kind(raw_value)
        except _Invalid as exc:
            problems.at(name, str(exc))
            continue
        found = [problem for check in spec.checks for problem in check(value)]
        for problem in found:
            problems.at(name, problem)
        if not found:
            values[name] = value


def _check_relations(values: Mapping[str, Any], problems: _Problems) -> None:
    for key, other in _AT_LEAST_OTHER:
        if key in values and other in values and values[key] < values[other]:
            problems.at(key, f"must be >= {other} ({_number(values[other])}), got {_number(values[key])}")


# --------------------------------------------------------------------------- paths


def _resolve_paths(
    values: dict[str, Any], *, overrides: Overrides, base: Path, cwd: Path, problems: _Problems
) -> None:
    """Resolve repo, store, state.db and auth.ssh_key in `values`, in place, reporting problems."""
    repo = _resolve_repo(values, overrides=overrides, base=base, cwd=cwd, problems=problems)
    if repo is not None:
        values["store.repo"] = repo
        _resolve_store(values, repo=repo, override=overrides.store, problems=problems)
    for key in ("state.db", "auth.ssh_key"):
        if values.get(key):
            _resolve_file(values, key, base=base, problems=problems)


def _resolve_file(values: dict[str, Any], key: str, *, base: Path, problems: _Problems) -> None:
    """Make the file path at `key` absolute (relative to `base`, `~` expanded); it must not be a folder."""
    given = values.pop(key)
    path = _checked(_file_path(given, base), partial(problems.at, key))
    if path is not None:
        values[key] = str(path)


def _file_path(given: str, base: Path) -> Path | str:
    path = _user_path(given, base)
    if isinstance(path, str):
        return f"{given}: {path}"
    try:
        is_dir = path.is_dir()
    except OSError as exc:
        return f"{path}: cannot access ({exc.strerror})"
    return f"{path}: is a folder, expected a file" if is_dir else path


def _user_path(text: str | Path, base: Path) -> Path | str:
    """`text` with `~` expanded, relative to `base`; or what is wrong (a NUL, an unknown `~user`)."""
    if "\x00" in str(text):
        return "contains a NUL character"
    try:
        return base / Path(text).expanduser()
    except RuntimeError as exc:
        return f"cannot expand ~ ({exc})"


def _resolve_repo(
    values: Mapping[str, Any], *, overrides: Overrides, base: Path, cwd: Path, problems: _Problems
) -> Path | None:
    """The working tree root from `--repo`, `store.repo` or `cwd`; None (reported) when unusable."""
    if overrides.repo is not None:
        return _checked(_worktree_root(overrides.repo, cwd), partial(problems.flag, "--repo"))
    if "store.repo" not in values:
        return None  # its type was wrong: already reported
    if values["store.repo"]:
        return _checked(_worktree_root(values["store.repo"], base), partial(problems.at, "store.repo"))
    root = find_worktree(cwd)
    if root is None:
        problems.at(
            "store.repo",
            f"not set, and the current directory {cwd} is not inside a git working tree"
            " (pass --repo or set store.repo)",
        )
    return root


_T = TypeVar("_T")


def _checked(result: _T | str, report: Callable[[str], None]) -> _T | None:
    """Pass a result through; a string is a problem: report it and return None."""
    if isinstance(result, str):
        report(result)
        return None
    return result


def _worktree_root(given: str | Path, base: Path) -> Path | str:
    """`given` (relative to `base`) resolved, when it is the root of a git working tree;
    else `<path>: what is wrong`."""
    candidate = _user_path(given, base)
    if isinstance(candidate, str):
        return f"{given}: {candidate}"
    try:
        resolved = candidate.resolve()
        exists, is_dir = resolved.exists(), resolved.is_dir()
    except OSError as exc:
        return f"{candidate}: cannot access ({exc.strerror})"
    root = find_worktree(resolved) if is_dir else None
    if not exists:
        what = "does not exist"
    elif not is_dir:
        what = "not a folder"
    elif root is None:
        what = "not a git working tree"
    elif root != resolved:
        what = f"not the root of a git working tree (the root is {root})"
    else:
        return resolved
    return f"{candidate}: {what}"


def _resolve_store(values: dict[str, Any], *, repo: Path, override: str | None, problems: _Problems) -> None:
    """Normalize the effective store path to a repo-relative POSIX path (`.` for the root)."""
    if override is not None:
        relative = _checked(_store_folder(override, repo), partial(problems.flag, "--store"))
    elif "store.path" in values:
        relative = _checked(_store_folder(values["store.path"], repo), partial(problems.at, "store.path"))
    else:
        return  # its type was wrong: already reported
    if relative is not None:
        values["store.path"] = relative.as_posix()


def _store_folder(given: str, repo: Path) -> Path | str:
    """`given` (relative to `repo`, or absolute) as a path relative to `repo`;
    else `<given>: what is wrong`."""
    if "\x00" in given:
        return f"{given}: contains a NUL character"
    try:
        resolved = (repo / (given or ".")).resolve()
        exists, is_dir = resolved.exists(), resolved.is_dir()
    except OSError as exc:
        return f"{given}: cannot access ({exc.strerror})"
    if not resolved.is_relative_to(repo):
        return f"{given}: outside the repository {repo}"
    relative = resolved.relative_to(repo)
    if ".git" in relative.parts:
        return f"{given}: inside .git"
    if exists and not is_dir:
        return f"{given}: not a folder"
    # A store folder that does not exist (yet, or deleted for a moment) is fine: the
    # scan commits its files' deletion and the watcher waits for it to appear.
    return relative


# --------------------------------------------------------------------------- building


def default_config(*, repo: Path, source: Path | None = None) -> Config:
    """The configuration `load_config` gives without a file or overrides, for the working tree
    `repo`, with the table's defaults; nothing is checked (for tests and tools)."""
    return _build(_defaults() | {"store.repo": repo}, source)


def _build(values: Mapping[str, Any], source: Path | None) -> Config:
    """The Config of `values` (`section.key` -> parsed, resolved value, one for every key)."""
    sections = {
        section: cls(**{key: values[f"{section}.{key}"] for key in KEYS[section]})
        for section, cls in SECTIONS.items()
    }
    return Config(**sections, source=source)
