"""mdbackup.git.objects: the tree entry record and turning write failures into RepositoryUnwritable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from mdbackup.git.objects import Entry, RepositoryUnwritable, storing
from mdbackup.git.repo import open_repository


def test_an_entry_is_a_frozen_value() -> None:
    oid = pygit2.hash(b"a\n")
    assert Entry(oid, FileMode.BLOB) == Entry(pygit2.hash(b"a\n"), FileMode.BLOB)
    assert Entry(oid, FileMode.BLOB) != Entry(oid, FileMode.BLOB_EXECUTABLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Entry(oid, FileMode.BLOB).mode = FileMode.LINK  # type: ignore[misc]


def test_a_failed_object_write_becomes_repository_unwritable(repo: Path) -> None:
    data = b"a blob whose object folder cannot be made\n"
    fan_out = repo / ".git/objects" / str(pygit2.hash(data))[:2]
    fan_out.write_text("a file where git wants a folder (even root cannot write into it)")
    r = open_repository(repo)
    with pytest.raises(RepositoryUnwritable) as exc, storing("blob"):
        r.create_blob(data)
    assert str(exc.value).startswith("cannot write to the repository (blob): ")
    assert isinstance(exc.value.__cause__, pygit2.GitError | OSError)


def test_oserror_is_converted_and_named() -> None:
    expected = r"^cannot write to the repository \(index\): .*No space"
    with pytest.raises(RepositoryUnwritable, match=expected), storing("index"):
        raise OSError(28, "No space left on device")


def test_repository_unwritable_passes_through_unchanged() -> None:
    original = RepositoryUnwritable("cannot write to the repository (tree): already said")
    with pytest.raises(RepositoryUnwritable) as exc, storing("commit"):
        raise original
    assert exc.value is original


def test_other_errors_are_not_write_failures() -> None:
    with pytest.raises(KeyError), storing("blob"):
        raise KeyError("a bug, not a full disk")


def test_repository_unwritable_is_a_git_error() -> None:
    assert issubclass(RepositoryUnwritable, pygit2.GitError)
