"""The configuration: where the file is, loading it into frozen dataclasses, and `ConfigError`.

Loading collects every problem before raising `ConfigError`; each problem is one
line naming where it comes from and what is wrong:

    /home/u/.config/mdbackup/config.toml: at 'watch.debounce': expected a number of seconds, got string "2s"
    --repo: /x: not a git working tree

This module is what the rest of the program imports. Its parts live in:
`mdbackup.config_keys`, the key table `KEYS` (every key's kind, default, checks
and one-line doc; the dataclasses below have no defaults of their own) and
parsing a TOML document against it; `mdbackup.config_values`, the value kinds,
checks and problem wording; `mdbackup.config_paths`, resolving the repo, the
store folder and file paths on disk. `config.example.toml` is rendered from the
table by `mdbackup.config_doc`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdbackup.config_keys import KEYS, defaults, parse
from mdbackup.config_paths import resolve_paths
from mdbackup.config_values import Problems, one_line

__all__ = [
    "DEFAULTS_LABEL",
    "ENV_CONFIG",
    "KEYS",
    "SECTIONS",
    "AuthConfig",
    "CommitConfig",
    "Config",
    "ConfigError",
    "LogConfig",
    "Overrides",
    "PushConfig",
    "StateConfig",
    "StoreConfig",
    "SyncConfig",
    "WatchConfig",
    "default_config",
    "find_config_file",
    "load_config",
]

ENV_CONFIG = "MDBACKUP_CONFIG"
"""Environment variable naming the config file when `--config` is not given."""

DEFAULTS_LABEL = "defaults"
"""Stands in for the file name in problems when no config file is used."""


class ConfigError(Exception):
    """The configuration is unusable; `problems` holds one line per problem (exit code 2)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = [one_line(problem) for problem in problems]
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
    an empty `username` means `git` for HTTPS. `allow_plain_http`: a token or password may
    be sent over plain `http://` to a host that is not loopback (default: refused).
    """

    ssh_key: str
    ssh_passphrase_env: str
    username: str
    token_env: str
    allow_plain_http: bool = False


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    """Sync across machines: `enabled` fetches `push.remote`'s `push.branch` and merges it
    (fast-forward or a merge commit, never a rebase); `interval` (> 0) is the seconds
    between fetches while idle."""

    enabled: bool
    interval: float


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
    sync: SyncConfig
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


SECTIONS: Mapping[str, type] = {
    "store": StoreConfig,
    "watch": WatchConfig,
    "commit": CommitConfig,
    "push": PushConfig,
    "auth": AuthConfig,
    "sync": SyncConfig,
    "state": StateConfig,
    "log": LogConfig,
}
"""The dataclass of each section of `KEYS`; its fields are exactly the section's keys."""


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
    `--store`) must lie inside the repo and outside `.git`, and be a folder if it
    exists (a missing store folder is accepted).
    File values replaced by an override are still type-checked, but only the
    effective repo and store are checked on disk.
    """
    source = None if path is None else cwd / Path(path).expanduser()
    problems = Problems(DEFAULTS_LABEL if source is None else str(source))
    raw = {} if source is None else _read_toml(source, problems.source)
    values = parse(raw, problems)
    base = cwd if source is None else source.parent
    resolve_paths(
        values,
        repo_override=overrides.repo,
        store_override=overrides.store,
        base=base,
        cwd=cwd,
        problems=problems,
    )
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


# --------------------------------------------------------------------------- building


def default_config(*, repo: Path, source: Path | None = None) -> Config:
    """The configuration `load_config` gives without a file or overrides, for the working tree
    `repo`, with the table's defaults; nothing is checked (for tests and tools)."""
    return _build(defaults() | {"store.repo": repo}, source)


def _build(values: Mapping[str, Any], source: Path | None) -> Config:
    """The Config of `values` (`section.key` -> parsed, resolved value, one for every key)."""
    sections = {
        section: cls(**{key: values[f"{section}.{key}"] for key in KEYS[section]})
        for section, cls in SECTIONS.items()
    }
    return Config(**sections, source=source)
