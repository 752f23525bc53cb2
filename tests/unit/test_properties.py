"""Property-based tests (hypothesis).

(a) `StoreFilter.wants` against a small reference model of the contract's glob rules,
    written separately: patterns are matched segment by segment with `fnmatchcase`,
    `**` by recursion, never through the regex translation under test.
(b) Stored paths: any file name (bytes, UTF-8 or not) survives the state database.
(c) The commit builder: for any sequence of file operations (write, rewrite, delete,
    rename, a file turned into a folder and back, links, chmod +x), committing the
    touched paths gives HEAD's tree with exactly those paths replaced by their
    working-tree content. The expected tree is built by the git CLI from a scratch
    index (`read-tree`, `update-index --index-info`, `write-tree`); the user's staged
    change outside the touched paths stays staged and out of the commit.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pygit2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdbackup.git.commit import Committer
from mdbackup.git.repo import open_repository
from mdbackup.patterns import BUILTIN_EXCLUDES, StoreFilter
from mdbackup.state.db import StateDB, path_from_db, path_to_db
from mdbackup.state.queue import SUCCESS, PathQueue
from tests.support.git import init_repo

# 40 examples keep the suite fast; MDBACKUP_PROPERTY_EXAMPLES=2000 for a deeper search.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("MDBACKUP_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- (a) path filtering ------------------------------------------------------------------


def _segments_match(pattern: list[str], path: list[str]) -> bool:
    """Reference: glob segments against path segments (`**` = zero or more folders, or,
    as the last segment, one or more names: everything inside)."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if not rest:
            return len(path) >= 1
        return any(_segments_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], head) and _segments_match(rest, path[1:])


def ref_matches(pattern: str, rel: str, *, is_dir: bool) -> bool:
    """Reference: does the store-relative `rel` (a file, or a folder when `is_dir`) match?"""
    dir_only = pattern.endswith("/")
    if dir_only and not is_dir:
        return False
    body = pattern.rstrip("/")
    anchored = body.startswith("/") or "/" in body.strip("/")
    segments = [s for s in body.split("/") if s]
    if not anchored:
        segments = ["**", *segments]  # a name at any depth
    return _segments_match(segments, rel.split("/"))


def ref_wants(store: str, include: list[str], exclude: list[str], path: str) -> bool:
    """Reference model of the contract's "What gets committed" (minus .gitignore)."""
    parts = path.split("/")
    if ".git" in parts:
        return False
    if store:
        if not path.startswith(store + "/"):
            return False
        rel = path[len(store) + 1 :]
    else:
        rel = path
    rel_parts = rel.split("/")
    folders = ["/".join(rel_parts[:i]) for i in range(1, len(rel_parts))]
    included = any(
        any(ref_matches(p, f, is_dir=True) for f in folders)
        if p.endswith("/")
        else ref_matches(p, rel, is_dir=False)
        for p in include
    )
    excluded = any(
        ref_matches(p, rel, is_dir=False) or any(ref_matches(p, f, is_dir=True) for f in folders)
        for p in (*BUILTIN_EXCLUDES, *exclude)
    )
    return included and not excluded


NAMES = [
    "a",
    "b",
    "a.md",
    "b.md",
    "ab.md",
    ".git",
    "4913",
    "a.md~",
    ".#a.md",
    "#a#",
    "c.tmp",
    "x.swp",
    "a b.md",
    "a+(1).md",
    "[a].md",
    "ü.md",
    os.fsdecode(b"\xe9.md"),
    "journal",
    "-x.md",
]
PATTERN_SEGMENTS = [
    "a",
    "b",
    "*",
    "?",
    "*.md",
    "a*",
    "*b",
    "[ab]",
    "[!a]*",
    "**",
    "a.md",
    "?.md",
    "journal",
    "a?*",
    "*.m?",
]

names = st.sampled_from(NAMES)
paths = st.lists(names, min_size=1, max_size=4).map("/".join)


@st.composite
def patterns(draw) -> str:
    segments = draw(st.lists(st.sampled_from(PATTERN_SEGMENTS), min_size=1, max_size=3))
    lead = draw(st.sampled_from(["", "", "/"]))
    trail = draw(st.sampled_from(["", "", "", "/"]))
    return lead + "/".join(segments) + trail


@PROPERTY_SETTINGS
@given(
    store=st.sampled_from(["", "a", "journal/b"]),
    include=st.lists(patterns(), min_size=1, max_size=2),
    exclude=st.lists(patterns(), max_size=2),
    candidates=st.lists(paths, min_size=1, max_size=20),
)
def test_store_filter_wants_matches_the_reference_model(store, include, exclude, candidates) -> None:
    store_filter = StoreFilter.build(store_prefix=store, include=include, exclude=exclude)
    for path in candidates:
        for full in {path, f"{store}/{path}" if store else path}:
            assert store_filter.wants(full) == ref_wants(store, include, exclude, full), (
                f"path {full!r}, store {store!r}, include {include}, exclude {exclude}"
            )


@PROPERTY_SETTINGS
@given(store=st.sampled_from(["", "a"]), exclude=st.lists(patterns(), max_size=2), path=paths)
def test_might_contain_never_prunes_a_folder_holding_a_wanted_path(store, exclude, path) -> None:
    store_filter = StoreFilter.build(store_prefix=store, include=["**"], exclude=exclude)
    full = f"{store}/{path}" if store else path
    if store_filter.wants(full):
        parts = full.split("/")
        for i in range(len(parts)):
            assert store_filter.might_contain("/".join(parts[:i])), (full, i)


def test_reference_model_agrees_with_the_contract_examples() -> None:
    """The reference itself, on the contract's own examples."""
    assert ref_matches("**/*.md", "a.md", is_dir=False)
    assert ref_matches("**/*.md", "x/y/a.md", is_dir=False)
    assert not ref_matches("*.md", "x/a", is_dir=False)
    assert ref_matches("*.tmp", "x/a.tmp", is_dir=False)
    assert not ref_matches("/a.md", "x/a.md", is_dir=False)
    assert ref_matches("a/**", "a/b/c", is_dir=False) and not ref_matches("a/**", "a", is_dir=True)
    assert ref_matches("a/**/b", "a/b", is_dir=False) and ref_matches("a/**/b", "a/x/y/b", is_dir=False)
    assert not ref_matches("drafts/", "drafts", is_dir=False)
    assert ref_wants("", ["**/*.md"], ["drafts/"], "a.md")
    assert not ref_wants("", ["**/*.md"], ["drafts/"], "drafts/a.md")
    assert not ref_wants("", ["**/*.md"], [], "x/.git/a.md")
    assert ref_wants("", ["journal/"], [], "x/journal/y/z")


# -- (b) stored paths ------------------------------------------------------------------------

name_bytes = st.binary(min_size=1, max_size=12).filter(lambda b: b"\0" not in b and b"/" not in b)
raw_paths = st.lists(name_bytes, min_size=1, max_size=3).map(lambda parts: os.fsdecode(b"/".join(parts)))


@PROPERTY_SETTINGS
@given(path=raw_paths)
def test_stored_path_form_is_text_and_round_trips(path: str) -> None:
    stored = path_to_db(path)
    stored.encode("utf-8")  # SQLite text can hold it
    assert path_from_db(stored) == path
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        assert stored.startswith("/")
    else:
        assert stored == path  # valid names are stored as they are


@PROPERTY_SETTINGS
@given(paths=st.lists(raw_paths, min_size=1, max_size=6, unique=True))
def test_queue_round_trips_any_file_name(paths: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="mdbackup-prop-") as tmp:
        db = StateDB(Path(tmp) / "state.db")
        queue = PathQueue(db)
        try:
            assert queue.record(paths, now=1.0) == len(paths)
            batch = queue.take_batch(now=2.0)
            assert sorted(batch.paths) == sorted(paths)
            queue.record(paths[:1], now=2.5)  # changed while queued: pending again
            queue.finish_batch(batch, {p: SUCCESS for p in paths}, now=3.0, retry_delay=lambda _n: 1.0)
            rows = {row.path: row.status.value for row in queue.rows(include_success=True)}
            assert rows == {p: "pending" if p == paths[0] else "success" for p in paths}
        finally:
            db.close()


# -- (c) the commit builder -----------------------------------------------------------------

FOLDERS = ["", "d", "d/e", "f"]
LEAVES = ["a.md", "b", "-x.md", "sp ace.md", "ü.md", "nl\nx.md", os.fsdecode(b"\xff.md"), "d", "e"]
UNIVERSE = sorted({f"{folder}/{leaf}" if folder else leaf for folder in FOLDERS for leaf in LEAVES})
LINK_TARGETS = ["a.md", "../b", "/etc/passwd", "nowhere", "d", "."]
STAGED = "user/staged.txt"
SIG = pygit2.Signature("mdbackup test", "t@example.com")

contents = st.binary(max_size=64) | st.sampled_from([b"", b"same\n", b"line\r\nline\n"])
targets = st.sampled_from(UNIVERSE)
operations = st.one_of(
    st.tuples(st.just("write"), targets, contents),
    st.tuples(st.just("delete"), targets),
    st.tuples(st.just("rename"), targets, targets),
    st.tuples(st.just("mkdir"), targets),
    st.tuples(st.just("symlink"), targets, st.sampled_from(LINK_TARGETS)),
    st.tuples(st.just("symlink"), st.sampled_from(["d", "d/e", "f"]), st.sampled_from(LINK_TARGETS)),
    st.tuples(st.just("chmod_x"), targets),
)
initial_files = st.dictionaries(targets, contents, max_size=8)


class Tree:
    """The working tree under test, recording every path an operation touched."""

    def __init__(self, root: Path) -> None:
        self.root = os.fsencode(root)
        self.touched: set[str] = set()

    def full(self, rel: str) -> bytes:
        return self.root + b"/" + os.fsencode(rel)

    def _clear(self, rel: str) -> None:
        """Remove whatever is at `rel` (a folder with everything in it), touching it all."""
        full = self.full(rel)
        if os.path.isdir(full) and not os.path.islink(full):
            for dirpath, dirnames, filenames in os.walk(full):
                for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                    self.touched.add(os.fsdecode(os.path.relpath(os.path.join(dirpath, name), self.root)))
            shutil.rmtree(full)
        elif os.path.lexists(full):
            os.unlink(full)
        self.touched.add(rel)

    def _parents(self, rel: str) -> None:
        """Make the folders above `rel`, removing a file or link that stands in the way."""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            full = self.full(folder)
            if os.path.lexists(full) and (os.path.islink(full) or not os.path.isdir(full)):
                self._clear(folder)
            if not os.path.lexists(full):
                os.mkdir(full)

    def apply(self, op: tuple) -> None:
        kind, rel = op[0], op[1]
        full = self.full(rel)
        if kind == "write":
            self._parents(rel)
            if (os.path.isdir(full) and not os.path.islink(full)) or os.path.islink(full):
                self._clear(rel)
            with open(full, "wb") as f:
                f.write(op[2])
            self.touched.add(rel)
        elif kind == "delete":
            self._clear(rel)
        elif kind == "rename":
            dest = op[2]
            if (
                not os.path.isfile(full)
                or os.path.islink(full)
                or dest == rel
                or dest.startswith(rel + "/")
                or rel.startswith(dest + "/")
            ):
                return
            self._parents(dest)
            if os.path.lexists(self.full(dest)):
                self._clear(dest)
            os.replace(full, self.full(dest))
            self.touched.update((rel, dest))
        elif kind == "mkdir":  # a file turned into a folder (with nothing in it yet)
            self._parents(rel)
            if os.path.lexists(full) and (os.path.islink(full) or not os.path.isdir(full)):
                self._clear(rel)
            os.makedirs(full, exist_ok=True)
            self.touched.add(rel)
        elif kind == "symlink":
            self._parents(rel)
            if os.path.lexists(full):
                self._clear(rel)
            os.symlink(op[2], full)
            self.touched.add(rel)
        elif kind == "chmod_x" and os.path.isfile(full) and not os.path.islink(full):
            os.chmod(full, os.stat(full).st_mode ^ 0o111)
            self.touched.add(rel)


def run_git(repo: Path, *args: str, input: bytes | None = None, env: dict | None = None) -> bytes:
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=input,
        capture_output=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, **(env or {})},
    )
    assert result.returncode == 0, (args, result.stderr.decode(errors="replace"))
    return result.stdout


def expected_tree(repo: Path, tree: Tree, base: str, scratch: Path) -> str:
    """HEAD-before's tree with exactly the touched paths set to their working-tree
    content, built by the git CLI in a scratch index."""
    env = {"GIT_INDEX_FILE": str(scratch)}
    run_git(repo, "read-tree", base, env=env)
    records: list[bytes] = []
    for rel in sorted(tree.touched):
        full = tree.full(rel)
        parts = rel.split("/")
        beyond_link = any(  # git does not look past a link: `d/a.md` with `d` a link is gone
            not stat.S_ISDIR(os.lstat(tree.full("/".join(parts[:i]))).st_mode)
            if os.path.lexists(tree.full("/".join(parts[:i])))
            else True
            for i in range(1, len(parts))
        )
        if beyond_link:
            records.append(b"0 " + b"0" * 40 + b"\t" + os.fsencode(rel))
        elif os.path.islink(full):
            oid = run_git(repo, "hash-object", "-w", "--stdin", input=os.readlink(full)).strip()
            records.append(b"120000 " + oid + b"\t" + os.fsencode(rel))
        elif os.path.isfile(full):
            with open(full, "rb") as f:
                data = f.read()
            oid = run_git(repo, "hash-object", "-w", "--no-filters", "--stdin", input=data).strip()
            mode = b"100755" if os.lstat(full).st_mode & stat.S_IXUSR else b"100644"
            records.append(mode + b" " + oid + b"\t" + os.fsencode(rel))
        else:
            records.append(b"0 " + b"0" * 40 + b"\t" + os.fsencode(rel))
    if records:
        run_git(
            repo,
            "update-index",
            "-z",
            "--add",
            "--replace",
            "--index-info",
            input=b"\0".join(records) + b"\0",
            env=env,
        )
    return run_git(repo, "write-tree", env=env).decode().strip()


@PROPERTY_SETTINGS
@given(
    initial=initial_files,
    ops=st.lists(operations, min_size=1, max_size=12),
    executable=st.sets(targets, max_size=3),
)
def test_commit_paths_gives_head_tree_with_exactly_the_touched_paths_replaced(
    initial, ops, executable
) -> None:
    with tempfile.TemporaryDirectory(prefix="mdbackup-prop-") as tmp:
        repo = init_repo(Path(tmp) / "repo")
        tree = Tree(repo)
        for rel, data in initial.items():
            tree.apply(("write", rel, data))
        for rel in executable:
            tree.apply(("chmod_x", rel))
        run_git(repo, "add", "-A")
        run_git(repo, "commit", "-q", "--allow-empty", "-m", "initial state")
        (repo / "user").mkdir()
        (repo / STAGED).write_text("the user's staged change\n")
        run_git(repo, "add", STAGED)
        staged_before = run_git(repo, "ls-files", "-s", "--", STAGED)
        base = run_git(repo, "rev-parse", "HEAD").decode().strip()
        base_tree = run_git(repo, "rev-parse", "HEAD^{tree}").decode().strip()

        tree.touched.clear()
        for op in ops:
            tree.apply(op)
        touched = sorted(tree.touched)
        result = Committer(open_repository(repo)).commit_paths(
            touched,
            message=lambda changes: "backup",
            author=SIG,
            committer=SIG,
            max_file_size=10_000,
        )
        assert result.busy is None and result.refused is None, result
        assert not result.failed, result.failed
        assert not result.skipped

        want = expected_tree(repo, tree, base, Path(tmp) / "scratch-index")
        head = run_git(repo, "rev-parse", "HEAD").decode().strip()
        if want == base_tree:
            assert head == base and result.commit_id is None, "an empty commit was made"
        else:
            assert result.commit_id == head
            assert run_git(repo, "rev-parse", "HEAD~1").decode().strip() == base
            assert run_git(repo, "rev-parse", "HEAD^{tree}").decode().strip() == want
        # the user's staged change is still staged, unchanged, and nothing else is
        assert run_git(repo, "diff", "--cached", "--name-only", "-z").split(b"\0")[:-1] == [STAGED.encode()]
        assert run_git(repo, "ls-files", "-s", "--", STAGED) == staged_before
        # the touched paths are clean in `git status`: index entries updated
        if touched:
            assert (
                run_git(repo, "status", "--porcelain", "-z", "--untracked-files=all", "--", *touched) == b""
            )
