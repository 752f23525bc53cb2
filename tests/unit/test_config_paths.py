"""mdbackup.config_paths.resolve_paths on real folders and repositories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mdbackup.config_keys import defaults
from mdbackup.config_paths import resolve_paths
from mdbackup.config_values import Problems


def resolve(
    base: Path,
    *,
    cwd: Path | None = None,
    repo_override: Path | None = None,
    store_override: str | None = None,
    **values: Any,
) -> tuple[dict[str, Any], list[str]]:
    resolved = defaults() | {key.replace("__", "."): value for key, value in values.items()}
    problems = Problems("c.toml")
    resolve_paths(
        resolved,
        repo_override=repo_override,
        store_override=store_override,
        base=base,
        cwd=cwd or base,
        problems=problems,
    )
    return resolved, problems.lines


def test_repo_relative_to_the_config_and_store_relative_to_the_repo(repo: Path, store: Path) -> None:
    values, problems = resolve(repo.parent, store__repo="repo", store__path="notes/")
    assert problems == []
    assert values["store.repo"] == repo.resolve() and values["store.path"] == "notes"


@pytest.mark.parametrize("given", [".", "", "./"])
def test_the_whole_working_tree_is_dot(repo: Path, given: str) -> None:
    values, problems = resolve(repo, store__repo=str(repo), store__path=given)
    assert (values["store.path"], problems) == (".", [])


def test_an_absolute_store_inside_the_repo_becomes_relative(repo: Path, store: Path) -> None:
    values, _ = resolve(repo, store__repo=str(repo), store__path=str(store / "sub"))
    assert values["store.path"] == "notes/sub"  # need not exist yet


def test_no_repo_configured_is_the_working_tree_around_cwd(repo: Path, store: Path, tmp_path: Path) -> None:
    values, problems = resolve(tmp_path, cwd=store)
    assert (values["store.repo"], problems) == (repo.resolve(), [])
    _, problems = resolve(tmp_path, cwd=tmp_path)
    assert (
        len(problems) == 1
        and "is not inside a git working tree (pass --repo or set store.repo)" in problems[0]
    )


def test_flags_win_and_problems_name_them(repo: Path, store: Path, tmp_path: Path) -> None:
    values, problems = resolve(
        tmp_path, cwd=repo.parent, repo_override=Path("repo"), store_override="notes", store__repo="elsewhere"
    )
    assert (values["store.repo"], values["store.path"], problems) == (repo.resolve(), "notes", [])
    _, problems = resolve(tmp_path, repo_override=tmp_path / "missing")
    assert problems == [f"--repo: {tmp_path / 'missing'}: does not exist"]
    _, problems = resolve(tmp_path, repo_override=repo, store_override="../outside")
    assert problems == [f"--store: ../outside: outside the repository {repo.resolve()}"]


def test_what_is_wrong_with_a_repo(repo: Path, store: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "plain").mkdir()
    cases = {
        "file": "not a folder",
        "plain": "not a git working tree",
        str(store): f"not the root of a git working tree (the root is {repo.resolve()})",
        "nul\x00": "contains a NUL character",
    }
    for given, what in cases.items():
        _, problems = resolve(tmp_path, store__repo=given)
        assert len(problems) == 1 and problems[0].startswith("c.toml: at 'store.repo': "), problems
        assert problems[0].endswith(what), problems


def test_what_is_wrong_with_a_store(repo: Path, store: Path) -> None:
    (store / "a.md").write_text("")
    for given, what in {
        ".git/x": "inside .git",
        "notes/a.md": "not a folder",
        "/": "outside the repository",
    }.items():
        _, problems = resolve(repo, store__repo=str(repo), store__path=given)
        assert len(problems) == 1 and problems[0].startswith(f"c.toml: at 'store.path': {given}: {what}")


def test_file_paths_are_made_absolute_and_must_not_be_folders(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    values, problems = resolve(
        tmp_path, store__repo=str(repo), state__db="state/db.sqlite", auth__ssh_key="~/.ssh/k"
    )
    assert problems == []
    assert values["state.db"] == str(tmp_path / "state/db.sqlite")
    assert values["auth.ssh_key"] == str(tmp_path / "home/.ssh/k")
    (tmp_path / "folder").mkdir()
    _, problems = resolve(tmp_path, store__repo=str(repo), state__db="folder")
    assert problems == [f"c.toml: at 'state.db': {tmp_path / 'folder'}: is a folder, expected a file"]
