"""mdbackup.git.eol against git itself: for every mix of attributes (text, eol, crlf, ident),
core.autocrlf and core.eol, every pair of (index blob, working-tree content) must give
the blob `git add` gives."""

from __future__ import annotations

import itertools
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from mdbackup.git.eol import Conversion, EolRefused, conversion_for, has_crlf_in_index, to_git
from tests.support.git import git, init_repo

CONTENTS = [
    b"",
    b"one\n",
    b"two\r\nlines\r\n",
    b"mixed\r\nend\n",
    b"\x00binary\r\n",
    b"lone\rcr\r\n",
    b"tab\vline\r\n",
    b"dos\r\neof\r\n\x1a",
    b"$Id: 1234 $\r\nand $Id: x\n$ not\n",
    b"\x01\x02\x03\x04 ctrl\r\n",
    b"no newline",
]
# None: the path is not in the index (a new file).
INDEX_BLOBS = [None, b"one\n", b"two\r\nlines\r\n", b"\x00bin\r\n", b"lone\rcr\n", b"bin\x00 no cr\n"]
ATTRIBUTES = [
    None,
    "* text=auto\n",
    "*.md text eol=crlf\n*.txt eol=lf\n",
    "* text=auto eol=crlf\n*.md ident\n",
    "*.txt crlf=input\n*.md -text\n",
    "*.md text\n*.txt crlf\n",
]
CONFIGS = list(itertools.product(ATTRIBUTES, [None, "true", "input"], [None, "crlf"]))


def ours(repo: pygit2.Repository, path: str, data: bytes, index: pygit2.Index) -> pygit2.Oid:
    entry = index[path] if path in index else None  # noqa: SIM401 (an Index has no get)
    oid, mode = (entry.id, entry.mode) if entry is not None else (None, None)
    converted = to_git(
        conversion_for(repo, path), data, path=path, index_has_crlf=lambda: has_crlf_in_index(repo, oid, mode)
    )
    return pygit2.hash(converted)


@pytest.mark.parametrize(("attributes", "autocrlf", "core_eol"), CONFIGS)
def test_what_git_add_stores(
    tmp_path: Path, attributes: str | None, autocrlf: str | None, core_eol: str | None
) -> None:
    work = init_repo(tmp_path / "r", commit=False, hooks=False)
    if autocrlf is not None:
        git(work, "config", "core.autocrlf", autocrlf)
    if core_eol is not None:
        git(work, "config", "core.eol", core_eol)
    if attributes is not None:
        (work / ".gitattributes").write_text(attributes)
    repo = pygit2.Repository(str(work))
    cases: dict[str, bytes] = {}
    index = repo.index
    for (i, before), (j, after), ext in itertools.product(
        enumerate(INDEX_BLOBS), enumerate(CONTENTS), ("md", "txt")
    ):
        path = f"c{i}_{j}.{ext}"
        if before is not None:  # the index blob exactly as given, whatever the filters say
            index.add(pygit2.IndexEntry(path, repo.create_blob(before), FileMode.BLOB))
        (work / path).write_bytes(after)
        cases[path] = after
    index.write()
    index.read(force=True)
    expected = {path: ours(repo, path, data, index) for path, data in cases.items()}
    git(work, "add", "-A")
    staged = {}
    for line in git(work, "ls-files", "-s").splitlines():
        meta, _, path = line.partition("\t")
        staged[path] = pygit2.Oid(hex=meta.split()[1])
    wrong = {p: cases[p] for p in cases if staged[p] != expected[p]}
    assert not wrong, f"differs from git add: {wrong}"


def test_safecrlf_true_refuses_what_git_refuses(repo: Path) -> None:
    git(repo, "config", "core.autocrlf", "input")
    git(repo, "config", "core.safecrlf", "true")
    (repo / "a.md").write_bytes(b"crlf\r\n")
    (repo / "b.md").write_bytes(b"lf\n")
    handle = pygit2.Repository(str(repo))
    conversion = conversion_for(handle, "a.md")
    assert conversion == Conversion(crlf_action="auto_input", checkout_crlf=False, safecrlf="true")
    assert git(repo, "add", "b.md", check=False) == ""
    with pytest.raises(AssertionError, match="CRLF would be replaced by LF"):
        git(repo, "add", "a.md")
    with pytest.raises(EolRefused, match=r"CRLF would be replaced by LF in a\.md"):
        to_git(conversion, b"crlf\r\n", path="a.md", index_has_crlf=lambda: False)
    assert to_git(conversion, b"lf\n", path="b.md", index_has_crlf=lambda: False) == b"lf\n"


def test_only_a_text_index_blob_with_crlf_keeps_crlf(repo: Path) -> None:
    handle = pygit2.Repository(str(repo))
    text = handle.create_blob(b"a\r\nb\r\n")
    binary = handle.create_blob(b"\x00a\r\n")
    assert has_crlf_in_index(handle, text, FileMode.BLOB)
    assert not has_crlf_in_index(handle, binary, FileMode.BLOB)
    assert not has_crlf_in_index(handle, text, FileMode.COMMIT)  # a gitlink has no blob
    assert not has_crlf_in_index(handle, None, None)


def test_nothing_to_convert_is_streamed() -> None:
    assert Conversion().changes_nothing
    assert not Conversion(ident=True).changes_nothing
    assert not Conversion(crlf_action="auto").changes_nothing
