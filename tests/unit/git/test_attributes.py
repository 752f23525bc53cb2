"""Filter drivers (`filter.<driver>.clean`, `required`) against real repositories, with
`git hash-object --path` (which runs the same filters `git add` runs) as the oracle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mdbackup.git.attributes import Driver, DriverFailed, FilterScope, clean, driver_for
from mdbackup.git.repo import open_repository
from tests.support.committing import commit, write
from tests.support.git import git, head_files


def git_would_store(repo: Path, rel: str) -> str:
    """The blob id `git add -- rel` would stage (filters and all)."""
    return git(repo, "hash-object", f"--path={rel}", rel).strip()


def all_objects(repo: Path) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
    ).stdout


@pytest.fixture
def upper(repo: Path) -> Path:
    (repo / ".gitattributes").write_text("*.md filter=upper\n")
    git(repo, "config", "filter.upper.clean", "tr a-z A-Z")
    git(repo, "config", "filter.upper.smudge", "cat")
    return repo


def test_the_clean_command_runs_as_git_runs_it(upper: Path) -> None:
    write(upper, "notes/a.md", b"hello\n")
    result = commit(upper, ["notes/a.md"])
    assert result.failed == {}
    assert head_files(upper)["notes/a.md"] == "HELLO\n"
    assert git(upper, "rev-parse", "HEAD:notes/a.md").strip() == git_would_store(upper, "notes/a.md")
    assert git(upper, "status", "--porcelain", "notes/a.md") == ""


def test_percent_f_is_the_quoted_path(repo: Path) -> None:
    (repo / ".gitattributes").write_text("*.md filter=named\n")
    git(repo, "config", "filter.named.clean", "echo %f 100%%f; cat")
    write(repo, "notes/it's a note.md", b"x\n")
    commit(repo, ["notes/it's a note.md"])
    assert head_files(repo)["notes/it's a note.md"] == "notes/it's a note.md 100%f\nx\n"
    assert git(repo, "rev-parse", "HEAD:notes/it's a note.md").strip() == git_would_store(
        repo, "notes/it's a note.md"
    )


def test_the_driver_runs_before_the_built_in_filters(upper: Path) -> None:
    (upper / ".gitattributes").write_text("*.md filter=upper text eol=crlf\n")
    write(upper, "notes/a.md", b"one\r\ntwo\r\n")
    commit(upper, ["notes/a.md"])
    assert head_files(upper)["notes/a.md"] == "ONE\nTWO\n"
    assert git(upper, "rev-parse", "HEAD:notes/a.md").strip() == git_would_store(upper, "notes/a.md")


@pytest.mark.parametrize("clean_command", ["exit 3", "no-such-program-mdbackup-test", None])
def test_a_required_driver_that_fails_fails_the_path_and_stores_nothing_raw(
    repo: Path, clean_command: str | None
) -> None:
    (repo / ".gitattributes").write_text("secret/*.md filter=crypt\n")
    git(repo, "config", "filter.crypt.required", "true")
    if clean_command is not None:
        git(repo, "config", "filter.crypt.clean", clean_command)
    write(repo, "secret/s.md", b"the plaintext secret 4711\n")
    write(repo, "notes/ok.md", b"fine\n")
    result = commit(repo, ["secret/s.md", "notes/ok.md"])
    assert "crypt" in result.failed["secret/s.md"]
    assert set(head_files(repo)) == {"README.txt", "notes/ok.md"}
    assert b"plaintext secret 4711" not in all_objects(repo)
    # git agrees: it refuses to stage the path at all
    assert subprocess.run(["git", "-C", str(repo), "add", "secret/s.md"], capture_output=True).returncode != 0


def test_a_driver_that_is_not_required_and_fails_passes_the_content_through(repo: Path) -> None:
    (repo / ".gitattributes").write_text("*.md filter=flaky\n")
    git(repo, "config", "filter.flaky.clean", "exit 1")
    write(repo, "notes/a.md", b"raw\n")
    result = commit(repo, ["notes/a.md"])
    assert result.failed == {}
    assert head_files(repo)["notes/a.md"] == "raw\n"
    assert git(repo, "rev-parse", "HEAD:notes/a.md").strip() == git_would_store(repo, "notes/a.md")


def test_driver_for_reads_the_attribute_and_the_config(upper: Path) -> None:
    repo = open_repository(upper)
    assert driver_for(repo, "notes/a.md") == Driver(
        name="upper", clean="tr a-z A-Z", required=False, has_process=False
    )
    assert driver_for(repo, "notes/a.txt") is None


def test_clean_without_a_command(tmp_path: Path) -> None:
    optional = Driver(name="x", clean=None, required=False, has_process=True)
    assert clean(optional, workdir=str(tmp_path), path="a.md", data=b"d") == b"d"
    with pytest.raises(DriverFailed, match="process"):
        clean(
            Driver(name="lfs", clean=None, required=True, has_process=True),
            workdir=str(tmp_path),
            path="a.md",
            data=b"d",
        )


def test_binary_content_survives_the_driver_and_the_built_in_filters(upper: Path) -> None:
    """pygit2's FilterList.apply_to_buffer cut the content at its first NUL byte."""
    git(upper, "config", "core.autocrlf", "true")
    write(upper, "notes/bin.md", b"\x00binary\r\n")
    commit(upper, ["notes/bin.md"])
    assert git(upper, "rev-parse", "HEAD:notes/bin.md").strip() == git_would_store(upper, "notes/bin.md")


# -- FilterScope: the per-pass shortcut that skips the attribute lookups -----------------


def scope(repo: Path) -> FilterScope:
    opened = open_repository(repo)
    return FilterScope(opened, opened.index)


def test_no_attribute_file_and_no_autocrlf_means_no_filter_can_apply(repo: Path) -> None:
    assert not scope(repo).may_apply("notes/sub/a.md")


@pytest.mark.parametrize("where", ["", "notes/", "notes/sub/"])
def test_a_gitattributes_file_in_any_folder_above_the_path_counts(repo: Path, where: str) -> None:
    (repo / where).mkdir(parents=True, exist_ok=True)
    (repo / where / ".gitattributes").write_text("*.md ident\n")
    assert scope(repo).may_apply("notes/sub/a.md")
    assert not scope(repo).may_apply("other/a.md") or where == ""


def test_a_gitattributes_file_only_in_the_index_counts(repo: Path) -> None:
    write(repo, "notes/.gitattributes", b"*.md ident\n")
    git(repo, "add", "notes/.gitattributes")
    (repo / "notes/.gitattributes").unlink()
    assert scope(repo).may_apply("notes/a.md")


def test_repository_wide_sources_count(repo: Path, tmp_path: Path) -> None:
    git(repo, "config", "core.autocrlf", "input")
    assert scope(repo).may_apply("notes/a.md")
    git(repo, "config", "core.autocrlf", "false")
    assert not scope(repo).may_apply("notes/a.md")
    (repo / ".git/info").mkdir(exist_ok=True)
    (repo / ".git/info/attributes").write_text("*.md ident\n")
    assert scope(repo).may_apply("notes/a.md")
    (repo / ".git/info/attributes").unlink()
    git(repo, "config", "core.attributesFile", str(tmp_path / "nowhere"))
    assert scope(repo).may_apply("notes/a.md")


def test_a_nested_gitattributes_file_is_applied_as_git_applies_it(repo: Path) -> None:
    """Why: the shortcut must never skip a filter git runs (a folder's own attributes)."""
    write(repo, "notes/sub/.gitattributes", b"*.md text\n")
    write(repo, "notes/sub/a.md", b"one\r\ntwo\r\n")
    write(repo, "notes/b.md", b"one\r\ntwo\r\n")
    commit(repo, ["notes/sub/a.md", "notes/b.md"])
    for rel in ("notes/sub/a.md", "notes/b.md"):
        assert git(repo, "rev-parse", f"HEAD:{rel}").strip() == git_would_store(repo, rel)
    assert git(repo, "cat-file", "blob", "HEAD:notes/sub/a.md") == "one\ntwo\n"
