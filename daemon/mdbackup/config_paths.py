"""Resolving the paths a configuration names: the repo, the store folder, file paths.

Paths in the file are relative to the config file's folder, `--repo` to the
current directory, the store folder to the repo; `~` is expanded. Each helper
returns either the resolved path or a string saying what is wrong
(`<path>: not a git working tree`), which `resolve_paths` reports at the key or
flag the value came from. This is the only part of loading that looks at disk
(besides reading the file itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from mdbackup.config_values import Problems
from mdbackup.git.repo import UnsupportedRepository, find_worktree


def resolve_paths(
    values: dict[str, Any],
    *,
    repo_override: Path | None,
    store_override: str | None,
    base: Path,
    cwd: Path,
    problems: Problems,
) -> None:
    """Resolve `store.repo`, `store.path`, `state.db` and `auth.ssh_key` in `values`, in place.

    `values` is what `mdbackup.config_keys.parse` returned; a key missing from it
    had the wrong type and was reported already. Afterwards, unless a problem was
    reported: `store.repo` is the absolute, resolved root of a git working tree
    (`repo_override` relative to `cwd`, else `store.repo` relative to `base`, else
    the working tree containing `cwd`); `store.path` (`store_override` when given)
    is the repo-relative POSIX store folder (`.` for the root), inside the repo,
    outside `.git`, a folder when it exists; a non-empty `state.db` and
    `auth.ssh_key` are absolute paths (relative to `base`, `~` expanded) that are
    not folders. When a problem was reported, `values` is left partly resolved and
    must not be used.
    """
    repo = _resolve_repo(values, override=repo_override, base=base, cwd=cwd, problems=problems)
    if repo is not None:
        values["store.repo"] = repo
        _resolve_store(values, repo=repo, override=store_override, problems=problems)
    for key in ("state.db", "auth.ssh_key"):
        if values.get(key):
            _resolve_file(values, key, base=base, problems=problems)


def _resolve_file(values: dict[str, Any], key: str, *, base: Path, problems: Problems) -> None:
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
    values: Mapping[str, Any], *, override: Path | None, base: Path, cwd: Path, problems: Problems
) -> Path | None:
    """The working tree root from `--repo`, `store.repo` or `cwd`; None (reported) when unusable."""
    if override is not None:
        return _checked(_worktree_root(override, cwd), partial(problems.flag, "--repo"))
    if "store.repo" not in values:
        return None  # its type was wrong: already reported
    if values["store.repo"]:
        return _checked(_worktree_root(values["store.repo"], base), partial(problems.at, "store.repo"))
    try:
        root = find_worktree(cwd)
    except UnsupportedRepository as exc:
        problems.at("store.repo", str(exc))
        return None
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
    try:
        root = find_worktree(resolved) if is_dir else None
    except UnsupportedRepository as exc:
        return str(exc)
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


def _resolve_store(values: dict[str, Any], *, repo: Path, override: str | None, problems: Problems) -> None:
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
