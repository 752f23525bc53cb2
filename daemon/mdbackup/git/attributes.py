"""gitattributes filter drivers, run as git runs them (reads the repository's git config).

libgit2 knows only its built-in filters (crlf, ident): a `filter=<driver>` attribute
with `filter.<driver>.clean` configured (git-lfs, git-crypt, any user filter) is not
run by it. `clean` does what git's convert_to_git does first: it runs the driver's
clean command through `sh -c` in the working tree, with `%f` replaced by the quoted
path and the file's content on stdin, and takes its stdout as the content; git's
line-ending and ident conversion then apply to that output (`mdbackup.git.eol`). This
runs the user's filter program, never the `git` binary.

As in git: a driver that is not configured, or whose command fails, passes the content
through unchanged, unless `filter.<driver>.required` is true: then the path cannot be
committed (`DriverFailed`, naming the driver) and none of its raw content reaches any
object. A driver with only a long-running `process` command (no `clean`) is not run:
when it is required, that is a DriverFailed saying so.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import ConfigLevel, Option

from mdbackup.git import layout
from mdbackup.git.repo import git_dir

__all__ = ["Driver", "DriverFailed", "FilterScope", "apply_filter_list", "clean", "driver_for"]

_TIMEOUT = 600.0  # seconds a clean command may take (git-lfs on a large file is slow)


class DriverFailed(Exception):
    """A required filter driver is missing or failed; the message names it."""


@dataclass(frozen=True)
class Driver:
    """A configured `filter.<name>` driver: its clean command (None when not set), whether
    it is required, and whether it has a long-running `process` command."""

    name: str
    clean: str | None
    required: bool
    has_process: bool


class FilterScope:
    """For one pass: whether any filter can apply to a path, so that a path no
    `.gitattributes` file can reach is spared the attribute lookups (`eol.conversion_for`
    and `driver_for`: tens of microseconds a file, a large part of a burst's commit).

    Nothing can apply when core.autocrlf is off (unset or false) and no attribute file
    is in reach of the path: none in libgit2's global places (core.attributesFile, the XDG
    and system files, `info/attributes`) and no `.gitattributes` in the working tree or
    the index in the path's folder or any folder above it. Any doubt answers "may apply",
    which only costs the lookups. Share one instance across the paths of one pass only.
    """

    def __init__(self, repo: pygit2.Repository, index: pygit2.Index) -> None:
        self._workdir = repo.workdir or ""
        self._index = index
        self._everywhere = _global_filters_possible(repo)
        self._folders: dict[str, bool] = {}  # folder -> an attribute file is there

    def may_apply(self, path: str) -> bool:
        """False only when no gitattributes rule and no core.autocrlf can reach `path`."""
        if self._everywhere:
            return True
        folder = path
        while folder:
            folder = folder.rpartition("/")[0]
            if self._has_attributes(folder):
                return True
        return False

    def _has_attributes(self, folder: str) -> bool:
        known = self._folders.get(folder)
        if known is None:
            name = f"{folder}/.gitattributes" if folder else ".gitattributes"
            try:
                known = os.path.lexists(os.path.join(self._workdir, name)) or name in self._index
            except (ValueError, UnicodeError, pygit2.GitError):
                known = True
            self._folders[folder] = known
        return known


def _global_filters_possible(repo: pygit2.Repository) -> bool:
    """True unless core.autocrlf is off and no repository-wide attribute file exists."""
    config = repo.config
    try:
        if config.get_bool("core.autocrlf"):
            return True
    except KeyError:
        pass
    except (pygit2.GitError, ValueError):
        return True  # "input", or unreadable: filters may apply
    try:
        if "core.attributesfile" in config or "attr.tree" in config:
            return True
        own = git_dir(repo)
        places = [folder / "info" / "attributes" for folder in (own, layout.common_dir(own))]
        for level, name in ((ConfigLevel.XDG, "attributes"), (ConfigLevel.SYSTEM, "gitattributes")):
            search = pygit2.option(Option.GET_SEARCH_PATH, level) or ""
            places += [Path(folder, name) for folder in str(search).split(os.pathsep) if folder]
        return any(os.path.lexists(place) for place in places)
    except (pygit2.GitError, OSError, ValueError):
        return True


def driver_for(repo: pygit2.Repository, path: str) -> Driver | None:
    """The filter driver the `filter` attribute names for `path`, or None when no
    `filter=<name>` attribute applies (as git, attributes come from the working tree's
    .gitattributes files, then the index's)."""
    try:
        name = repo.get_attr(path, "filter")
    except (pygit2.GitError, UnicodeEncodeError, ValueError):
        return None
    if not isinstance(name, str) or not name:
        return None
    config = repo.config

    def text(key: str) -> str | None:
        try:
            value = config[key]
        except (KeyError, pygit2.GitError):
            return None
        return value if isinstance(value, str) and value else None

    try:
        required = config.get_bool(f"filter.{name}.required")
    except (KeyError, pygit2.GitError, ValueError):
        required = False
    return Driver(
        name=name,
        clean=text(f"filter.{name}.clean"),
        required=required,
        has_process=text(f"filter.{name}.process") is not None,
    )


def clean(driver: Driver, *, workdir: str, path: str, data: bytes) -> bytes:
    """`data` (the working-tree content of `path`) through the driver's clean command.

    Raises DriverFailed when the driver is required and missing or failing; a driver
    that is not required passes `data` through in those cases, as git does.
    """
    if driver.clean is None:
        if driver.required:
            how = (
                "only a process command, which mdbackup does not run"
                if driver.has_process
                else "no clean command"
            )
            raise DriverFailed(f"required filter driver {driver.name!r} has {how}; not committed")
        return data
    command = _expand(driver.clean, path)
    try:
        result = subprocess.run(
            ["sh", "-c", command],
            input=data,
            capture_output=True,
            cwd=workdir,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return _failed(driver, f"could not be run ({exc.__class__.__name__})", data)
    if result.returncode != 0:
        return _failed(driver, f"exited with status {result.returncode}", data)
    return result.stdout


def apply_filter_list(filters: pygit2.filter.FilterList, data: bytes) -> bytes:
    """`data` through libgit2's filter list (crlf, ident; either direction).

    pygit2's own `FilterList.apply_to_buffer` cuts its result at the first NUL byte
    (it reads the buffer as a C string): binary content came back empty. This reads
    the buffer by its size. Raises pygit2.GitError when a filter fails.
    """
    ffi, lib = pygit2.ffi, pygit2.C
    buf = ffi.new("git_buf *")
    err = lib.git_filter_list_apply_to_buffer(buf, filters._pointer, data, len(data))
    try:
        if err < 0:
            raise pygit2.GitError(f"libgit2's filters failed (error {err})")
        return bytes(ffi.buffer(buf.ptr, buf.size)) if buf.ptr != ffi.NULL else b""
    finally:
        lib.git_buf_dispose(buf)


def _failed(driver: Driver, how: str, data: bytes) -> bytes:
    if driver.required:
        raise DriverFailed(
            f"clean filter {driver.name!r} {how}; not committed (filter.{driver.name}.required)"
        )
    return data


def _expand(command: str, path: str) -> str:
    """git's substitution in a driver command: `%f` is the quoted path, `%%` is `%`,
    any other `%` stays as it is."""
    out: list[str] = []
    i = 0
    while i < len(command):
        char = command[i]
        following = command[i + 1 : i + 2]
        if char == "%" and following in ("%", "f"):
            out.append("%" if following == "%" else _shell_quote(path))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _shell_quote(path: str) -> str:
    """`path` quoted for sh as git's sq_quote_buf does: in single quotes, `'` as `'\\''`."""
    raw = os.fsencode(path).decode("utf-8", "surrogateescape")
    return "'" + raw.replace("'", "'\\''") + "'"
