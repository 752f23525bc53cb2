"""Glob rules of the contract ("Types") and the store filter ("What gets committed")."""

from __future__ import annotations

import time
from fnmatch import fnmatchcase

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdbackup.patterns import BUILTIN_EXCLUDES, GlobError, GlobSet, StoreFilter

# --- GlobSet: one row per rule -------------------------------------------------

GLOB_CASES = [
    # `*` does not cross `/`
    ("*.md", "a.md", True),
    ("*.md", "sub/a.md", True),  # no `/`: any depth
    ("/*.md", "a.md", True),
    ("/*.md", "sub/a.md", False),  # leading `/` anchors
    ("a*", "ab/c", False),
    ("x/*", "x/a", True),
    ("x/*", "x/a/b", False),
    ("x/*", "y/x/a", False),  # middle `/` anchors
    # `?` is one non-slash character
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("x?y", "x/y", False),
    ("/x?y", "x/y", False),
    # classes
    ("[ab].md", "a.md", True),
    ("[ab].md", "c.md", False),
    ("[!ab].md", "c.md", True),
    ("[!ab].md", "a.md", False),
    ("[^ab].md", "c.md", True),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("[]a]", "]", True),
    ("[[:digit:]]*.md", "2024.md", True),
    ("[[:digit:]]*.md", "x2024.md", False),
    ("[!a]", "/", False),
    ("/x[!a]y", "x/y", False),
    ("/x[+-0]y", "x/y", False),  # a range spanning `/` still never matches it
    ("[a", "[a", True),  # unclosed class: literal `[`
    # escapes
    (r"\*.md", "*.md", True),
    (r"\*.md", "a.md", False),
    (r"a\?", "a?", True),
    (r"a\?", "ab", False),
    # `**/`
    ("**/*.md", "a.md", True),
    ("**/*.md", "x/y/a.md", True),
    ("**/*.md", "a.txt", False),
    ("**/b", "b", True),
    ("**/x/b", "x/b", True),
    ("**/x/b", "a/c/x/b", True),
    ("**/x/b", "a/c/x/y/b", False),
    # `/**` at the end: everything inside, not the folder itself
    ("a/**", "a/b", True),
    ("a/**", "a/b/c", True),
    ("a/**", "a", False),
    ("a/**", "b/a/c", False),
    # `a/**/b`: zero or more folders between
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/xb", False),
    ("a/**/**/b", "a/b", True),
    # `**` inside a segment is a plain `*`
    ("a**b", "axxb", True),
    ("a**b", "ax/xb", False),
    ("**", "anything/at/all", True),
    # literal names at any depth
    ("4913", "4913", True),
    ("4913", "x/4913", True),
    ("4913", "x49133", False),
    (".DS_Store", "a/.DS_Store", True),
    # trailing spaces dropped unless escaped
    ("a.md  ", "a.md", True),
    ("a\\ ", "a ", True),
    # case-sensitive
    ("*.md", "A.MD", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), GLOB_CASES)
def test_glob_rules(pattern: str, path: str, expected: bool) -> None:
    assert GlobSet.compile([pattern]).matches(path) is expected


FOLDER_CASES = [
    # (pattern, path, matches as file, matches as folder, covers file)
    ("drafts/", "drafts", False, True, False),
    ("drafts/", "drafts/a.md", False, False, True),
    ("drafts/", "x/drafts/a.md", False, False, True),
    ("drafts", "drafts/a.md", False, False, True),
    ("drafts", "drafts", True, True, True),
    ("/drafts/", "x/drafts/a.md", False, False, False),
    ("a/b/", "a/b/c/d", False, False, True),
    ("*.tmp", "x.tmp/a.md", False, False, True),
]


@pytest.mark.parametrize(("pattern", "path", "as_file", "as_dir", "covered"), FOLDER_CASES)
def test_folder_only_patterns_and_covers(
    pattern: str, path: str, as_file: bool, as_dir: bool, covered: bool
) -> None:
    globs = GlobSet.compile([pattern])
    assert globs.matches(path) is as_file
    assert globs.matches(path, is_dir=True) is as_dir
    assert globs.covers(path) is covered


@pytest.mark.parametrize("pattern", ["", "/", "[z-a]", "!negated", "   "])
def test_invalid_globs_raise_naming_the_pattern(pattern: str) -> None:
    with pytest.raises(GlobError) as info:
        GlobSet.compile(["*.md", pattern])
    assert repr(pattern.rstrip(" ")) in str(info.value) or repr(pattern) in str(info.value)


def test_empty_globset_matches_nothing() -> None:
    globs = GlobSet.compile([])
    assert not globs.matches("a.md")
    assert not globs.covers("a/b.md")
    assert not globs.covers("a", is_dir=True)


def test_globset_equality_by_patterns() -> None:
    assert GlobSet.compile(["*.md"]) == GlobSet.compile(["*.md"])
    assert hash(GlobSet.compile(["*.md"])) == hash(GlobSet.compile(["*.md"]))
    assert GlobSet.compile(["*.md"]) != GlobSet.compile(["*.txt"])


# --- StoreFilter: one row per rule of "What gets committed" --------------------

DEFAULT = dict(include=["**/*.md"], exclude=[])

FILTER_CASES = [
    # (store_prefix, include, exclude, repo-relative path, wanted)
    ("", ["**/*.md"], [], "a.md", True),
    ("", ["**/*.md"], [], "x/y/a.md", True),
    ("", ["**/*.md"], [], "a.txt", False),
    # under store.path only
    ("notes", ["**/*.md"], [], "notes/a.md", True),
    ("notes", ["**/*.md"], [], "a.md", False),
    ("notes", ["**/*.md"], [], "notesx/a.md", False),
    ("notes", ["**/*.md"], [], "other/notes/a.md", False),
    ("notes", ["**/*.md"], [], "notes", False),
    ("./notes/", ["**/*.md"], [], "notes/a.md", True),
    (".", ["**/*.md"], [], "a.md", True),
    ("a/b", ["**/*.md"], [], "a/b/c.md", True),
    ("a/b", ["**/*.md"], [], "a/c.md", False),
    # globs are relative to the store folder
    ("notes", ["/*.md"], [], "notes/a.md", True),
    ("notes", ["/*.md"], [], "notes/sub/a.md", False),
    ("notes", ["sub/*.md"], [], "notes/sub/a.md", True),
    ("notes", ["**/*.md"], ["/private/**"], "notes/private/a.md", False),
    ("notes", ["**/*.md"], ["/private/**"], "notes/x/private/a.md", True),
    # a folder-only include takes everything inside
    ("", ["journal/"], [], "journal/2024/a.txt", True),
    ("", ["journal/"], [], "x/journal/a.txt", True),
    ("", ["journal/"], [], "journal", False),
    ("", ["/journal/"], [], "x/journal/a.txt", False),
    ("", ["a/journal/"], [], "a/journal/x/y.txt", True),
    # exclude, also through a parent folder
    ("", ["**/*.md"], ["drafts"], "drafts/a.md", False),
    ("", ["**/*.md"], ["drafts/"], "drafts/a.md", False),
    ("", ["**/*.md"], ["drafts/"], "x/drafts/y/a.md", False),
    ("", ["**/*.md"], ["drafts/"], "drafts.md", True),
    ("", ["**/*.md"], ["secret*.md"], "a/secret-1.md", False),
    ("", ["**/*.md"], ["archive/**"], "archive/a.md", False),
    # built-in editor temp patterns
    ("", ["**/*.md"], [], "a.md.swp", False),
    ("", ["**"], [], ".a.md.swp", False),
    ("", ["**"], [], "x/.a.md.swo", False),
    ("", ["**"], [], ".a.md.swx", False),
    ("", ["**"], [], "4913", False),
    ("", ["**"], [], "x/4913", False),
    ("", ["**"], [], "a.md~", False),
    ("", ["**/*.md"], [], ".#a.md", False),
    ("", ["**"], [], "#a.md#", False),
    ("", ["**"], [], "a.md.tmp", False),
    ("", ["**"], [], "a.md___jb_tmp___", False),
    ("", ["**"], [], "a.md___jb_old___", False),
    ("", ["**"], [], ".DS_Store", False),
    ("", ["**"], [], "x.tmp/a.md", False),  # a temp-named folder hides its content
    ("", ["**"], [], "a#b.md", True),
    ("", ["**"], [], "49131", True),
    # never inside .git
    ("", ["**"], [], ".git/config", False),
    ("", ["**/*.md"], [], ".git/a.md", False),
    ("", ["**/*.md"], [], "sub/.git/a.md", False),
    ("", ["**/*.md"], [], ".git", False),
    ("", ["**/*.md"], [], ".gitx/a.md", True),
    ("", ["**/*.md"], [], "a.git/a.md", True),
    ("", ["**/*.md"], [], ".github/a.md", True),
]


@pytest.mark.parametrize(("prefix", "include", "exclude", "path", "wanted"), FILTER_CASES)
def test_store_filter_rules(
    prefix: str, include: list[str], exclude: list[str], path: str, wanted: bool
) -> None:
    store = StoreFilter.build(store_prefix=prefix, include=include, exclude=exclude)
    assert store.wants(path) is wanted


def test_store_relative() -> None:
    store = StoreFilter.build(store_prefix="notes/daily", **DEFAULT)
    assert store.store_relative("notes/daily/a.md") == "a.md"
    assert store.store_relative("notes/daily") == ""
    assert store.store_relative("notes/dailyx/a.md") is None
    assert store.store_relative("notes/a.md") is None
    root = StoreFilter.build(store_prefix="", **DEFAULT)
    assert root.store_relative("a/b.md") == "a/b.md"


@pytest.mark.parametrize("prefix", ["/abs", "../up", "a/../b"])
def test_bad_store_prefix(prefix: str) -> None:
    with pytest.raises(ValueError, match="store prefix"):
        StoreFilter.build(store_prefix=prefix, **DEFAULT)


MIGHT_CONTAIN_CASES = [
    # (store_prefix, exclude, folder, expected)
    ("notes", [], "", True),  # the repository root holds the store
    ("notes/daily", [], "notes", True),  # an ancestor of the store
    ("notes", [], "notes", True),
    ("notes", [], "notes/sub", True),
    ("notes", [], "other", False),
    ("notes", [], "notesx", False),
    ("", [], ".git", False),
    ("", [], ".git/objects", False),
    ("", [], "sub/.git", False),
    ("notes", ["drafts"], "notes/drafts", False),
    ("notes", ["drafts/"], "notes/x/drafts/y", False),
    ("notes", ["/drafts/"], "notes/x/drafts", True),
    ("notes", ["archive/**"], "notes/archive", True),  # `a/**` matches inside, not the folder
    ("notes", ["archive/**"], "notes/archive/old", False),
    ("", [], "x.tmp", False),
]


@pytest.mark.parametrize(("prefix", "exclude", "folder", "expected"), MIGHT_CONTAIN_CASES)
def test_might_contain(prefix: str, exclude: list[str], folder: str, expected: bool) -> None:
    store = StoreFilter.build(store_prefix=prefix, include=["**/*.md"], exclude=exclude)
    assert store.might_contain(folder) is expected


def test_store_filter_is_frozen_and_comparable() -> None:
    a = StoreFilter.build(store_prefix="n", **DEFAULT)
    b = StoreFilter.build(store_prefix="n", **DEFAULT)
    assert a == b
    with pytest.raises(AttributeError):
        a.store_prefix = "x"  # type: ignore[misc]


def test_wants_is_fast() -> None:
    """A loose bound (the measured figure is far lower): it runs on the observer thread."""
    store = StoreFilter.build(store_prefix="notes", include=["**/*.md"], exclude=["drafts/", "*.bak"])
    paths = [f"notes/dir{i % 50}/sub/note{i}.md" for i in range(1000)]
    start = time.perf_counter()
    for _ in range(100):
        for path in paths:
            store.wants(path)
    assert time.perf_counter() - start < 5.0


# --- properties ----------------------------------------------------------------

NAME_CHARS = st.sampled_from("ab.m-d_~#*?[]!x")
names = st.text(alphabet="abmdx.-_#~ ", min_size=1, max_size=8).filter(lambda n: n not in (".", ".."))
rel_paths = st.lists(names, min_size=1, max_size=5).map("/".join)


@given(rel_paths)
def test_double_star_md_matches_exactly_md_names_at_any_depth(path: str) -> None:
    assert GlobSet.compile(["**/*.md"]).matches(path) is path.rsplit("/", 1)[-1].endswith(".md")


@given(rel_paths, st.sampled_from(["*", "a*", "*b", "a*b", "*.md", "*x*"]))
def test_star_never_crosses_a_slash(path: str, star: str) -> None:
    anchored = GlobSet.compile(["/" + star])
    assert not ("/" in path and anchored.matches(path))
    floating = GlobSet.compile([star])
    assert floating.matches(path) is fnmatchcase(path.rsplit("/", 1)[-1], star)


@given(
    st.lists(names, min_size=0, max_size=3).map("/".join),
    st.sampled_from(["", "."]) | names,
    st.sampled_from(BUILTIN_EXCLUDES),
    st.lists(
        st.sampled_from(["**", "*", "**/*", "**/*.md", "*.swp", "*~", "4913", ".DS_Store", "x/"]), max_size=3
    ),
)
def test_builtin_temp_files_are_never_wanted(
    folder: str, stem: str, builtin: str, include: list[str]
) -> None:
    name = builtin.replace("*", stem.strip("."), 1).replace("*", "")
    path = f"{folder}/{name}" if folder else name
    store = StoreFilter.build(store_prefix="", include=include, exclude=[])
    assert not store.wants(path)


@given(rel_paths, rel_paths)
def test_paths_outside_the_store_are_never_wanted(store_dir: str, path: str) -> None:
    store = StoreFilter.build(store_prefix=store_dir, include=["**"], exclude=[])
    assert not store.wants(store_dir)  # the store folder itself is not a file to back up
    if not path.startswith(store_dir + "/"):
        assert not store.wants(path)
        assert store.store_relative(path) == ("" if path == store_dir else None)


@given(rel_paths, rel_paths)
def test_nothing_inside_dot_git_is_wanted(before: str, after: str) -> None:
    store = StoreFilter.build(store_prefix="", include=["**"], exclude=[])
    assert not store.wants(f"{before}/.git/{after}")
    assert not store.wants(f".git/{after}")


@given(
    rel_paths, names, st.lists(st.sampled_from(["drafts", "a*", "*.md/", "/x", "b/**", "x/a"]), max_size=3)
)
def test_pruned_folders_hold_nothing_wanted(folder: str, name: str, exclude: list[str]) -> None:
    store = StoreFilter.build(store_prefix="", include=["**"], exclude=exclude)
    if not store.might_contain(folder):
        assert not store.wants(f"{folder}/{name}")


# A reference matcher written the slow, obvious way: segment by segment.
def _reference_match(pattern: str, path: str, *, is_dir: bool) -> bool:
    dir_only = pattern.endswith("/")
    body = pattern.rstrip("/")
    anchored = body.startswith("/") or "/" in body.strip("/")
    segments = [s for s in body.split("/") if s]
    if dir_only and not is_dir:
        return False
    if not anchored:
        segments = ["**", *segments]
    return _match_segments(segments, path.split("/"))


def _match_segments(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if not rest:
            return len(parts) >= 1
        return any(_match_segments(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match_segments(rest, parts[1:])


pattern_segments = st.sampled_from(["a", "b", "*", "?", "*.md", "a*", "[ab]", "[!a]", "**", "a?b", "x"])
patterns = st.builds(
    lambda lead, segs, trail: lead + "/".join(segs) + trail,
    st.sampled_from(["", "/"]),
    st.lists(pattern_segments, min_size=1, max_size=4),
    st.sampled_from(["", "/"]),
).filter(lambda p: p.strip("/") != "")
ref_paths = st.lists(
    st.sampled_from(["a", "b", "ab", "aab", "x", "a.md", "b.md", ".md", "c"]), min_size=1, max_size=5
).map("/".join)


@settings(max_examples=500)
@given(patterns, ref_paths, st.booleans())
def test_agrees_with_a_segment_by_segment_reference(pattern: str, path: str, is_dir: bool) -> None:
    assert GlobSet.compile([pattern]).matches(path, is_dir=is_dir) is _reference_match(
        pattern, path, is_dir=is_dir
    )


@settings(max_examples=300)
@given(st.lists(patterns, min_size=1, max_size=4), ref_paths, st.booleans())
def test_a_set_matches_when_one_of_its_patterns_does(pats: list[str], path: str, is_dir: bool) -> None:
    expected = any(_reference_match(p, path, is_dir=is_dir) for p in pats)
    assert GlobSet.compile(pats).matches(path, is_dir=is_dir) is expected


@settings(max_examples=300)
@given(st.lists(patterns, min_size=1, max_size=3), ref_paths)
def test_covers_means_the_path_or_a_parent_folder_matches(pats: list[str], path: str) -> None:
    parts = path.split("/")
    parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
    expected = any(_reference_match(p, path, is_dir=False) for p in pats) or any(
        _reference_match(p, parent, is_dir=True) for p in pats for parent in parents
    )
    assert GlobSet.compile(pats).covers(path) is expected
