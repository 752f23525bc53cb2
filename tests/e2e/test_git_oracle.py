"""Git is the oracle: the same repository built twice, mdbackup's Committer on one and
`git add -A -- <store> && git commit -- <store>` on the other; the committed tree, the
index (`git ls-files -s -v`: modes, blobs, stages and flags) and
`git status --porcelain=v2` must be the same.

Hypothesis generates the repository's shape (files, folders, symlinks, modes, a nested
repository, a submodule, skip-worktree entries, a sparse cone, .gitignore and
.gitattributes content, core.autocrlf/fileMode/symlinks, a clean filter) and the
operations after the last commit (writes, deletions, renames, chmods, symlinks, staged
and unstaged user changes in and out of the store). The batch given to mdbackup is
every path under the store that the working tree, the index or HEAD knows, even those
inside another repository or ignored: mdbackup must sort them out as git does.

Examples: 300 by default; `MDBACKUP_ORACLE_EXAMPLES=5000 pytest tests/e2e/test_git_oracle.py`
runs more (`MDBACKUP_ORACLE_SEED` fixes the seed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pygit2
from hypothesis import HealthCheck, given, reject, seed, settings
from hypothesis import strategies as st

from mdbackup.git import pack
from mdbackup.git.commit import Committer
from mdbackup.git.repo import open_repository
from tests.support.git import git, init_repo

EXAMPLES = int(os.environ.get("MDBACKUP_ORACLE_EXAMPLES", "300"))
SEED = int(os.environ.get("MDBACKUP_ORACLE_SEED", "20261203"))
STORE = "notes"
# Memory-backed when there is one: the examples create many small files (10x quicker).
FAST_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
SIG = pygit2.Signature("mdbackup oracle", "oracle@example.com", 1_700_000_000, 0)
ENV = {
    "GIT_AUTHOR_DATE": "1700000000 +0000",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
    "GIT_AUTHOR_NAME": "mdbackup oracle",
    "GIT_AUTHOR_EMAIL": "oracle@example.com",
    "GIT_COMMITTER_NAME": "mdbackup oracle",
    "GIT_COMMITTER_EMAIL": "oracle@example.com",
}

FILES = [
    "notes/a.md",
    "notes/b.txt",
    "notes/c.up",
    "notes/sub/d.md",
    "notes/sub/e.up",
    "notes/x.log",
    "notes/ign/f.md",
    "notes/sub/deep/g.md",
    "notes/A.md",  # with core.ignoreCase: notes/a.md's alias
    "notes/Sub/d.md",  # with core.ignoreCase: in notes/sub/
    "other/o.md",
    "other/p.txt",
]
# Binary content with CR, a lone CR, a vertical tab and a final ^Z: where libgit2's crlf
# filter and git's convert.c disagree (mdbackup.git.eol decides as git does).
CONTENTS = [
    b"",
    b"one\n",
    b"two\r\nlines\r\n",
    b"mixed\r\nend\n",
    b"no newline",
    b"\x00binary\n",
    b"\x00binary\r\n",
    b"lone\rcr\r\n",
    b"tab\vline\r\n",
    b"dos\r\neof\r\n\x1a",
    b"$Id: 1234 $\r\n",
]
GITIGNORES = [None, "*.log\n", "ign/\n", "*.log\nsub/deep/\n"]
GITATTRIBUTES = [
    None,
    "*.up filter=upper\n",
    "*.md text eol=crlf\n",
    "*.txt -text\n*.up filter=upper\n",
    "* text=auto\n*.md ident\n",
    "*.md text=auto eol=lf\n*.txt crlf\n",
]


@dataclass(frozen=True)
class Shape:
    """The committed starting point and the settings in force."""

    files: dict[str, tuple[bytes, bool]]  # path -> (content, executable)
    links: dict[str, str]  # path -> target
    gitignore: str | None
    gitattributes: str | None
    autocrlf: str | None
    core_eol: str | None
    file_mode: bool
    symlinks: bool
    upper_required: bool
    skip_worktree: tuple[str, ...]
    sparse: bool
    nested: bool
    submodule: bool
    ignore_case: bool


@dataclass(frozen=True)
class Op:
    kind: str  # write, delete, chmod, link, rename, stage, stage_other
    path: str
    content: bytes = b""
    other: str = ""


paths = st.sampled_from(FILES)
shapes = st.builds(
    Shape,
    files=st.dictionaries(paths, st.tuples(st.sampled_from(CONTENTS), st.booleans()), max_size=6),
    links=st.dictionaries(
        st.sampled_from(["notes/l.md", "notes/sub/l2.md"]), st.sampled_from(["a.md", "../x"]), max_size=1
    ),
    gitignore=st.sampled_from(GITIGNORES),
    gitattributes=st.sampled_from(GITATTRIBUTES),
    autocrlf=st.sampled_from([None, "true", "input", "false"]),
    core_eol=st.sampled_from([None, None, "crlf", "lf"]),
    file_mode=st.booleans(),
    symlinks=st.booleans(),
    upper_required=st.booleans(),
    skip_worktree=st.lists(paths, max_size=2, unique=True).map(tuple),
    sparse=st.booleans(),
    nested=st.booleans(),
    submodule=st.sampled_from([False] * 7 + [True]),
    ignore_case=st.sampled_from([False, False, True]),
)
ops = st.lists(
    st.one_of(
        st.builds(Op, kind=st.just("write"), path=paths, content=st.sampled_from(CONTENTS)),
        st.builds(Op, kind=st.just("delete"), path=paths),
        st.builds(Op, kind=st.just("chmod"), path=paths),
        st.builds(Op, kind=st.just("link"), path=paths, other=st.sampled_from(["a.md", "missing"])),
        st.builds(Op, kind=st.just("rename"), path=paths, other=paths),
        st.builds(Op, kind=st.just("stage"), path=paths, content=st.sampled_from(CONTENTS)),
    ),
    max_size=6,
)


def write_bytes(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.is_symlink() or not path.parent.is_dir():
        return
    path.write_bytes(data)


def build(root: Path, shape: Shape) -> Path:
    repo = init_repo(root / "repo", hooks=False)
    cfg = [("core.fileMode", "true" if shape.file_mode else "false")]
    cfg.append(("core.symlinks", "true" if shape.symlinks else "false"))
    if shape.autocrlf is not None:
        cfg.append(("core.autocrlf", shape.autocrlf))
    if shape.core_eol is not None:
        cfg.append(("core.eol", shape.core_eol))
    cfg += [("filter.upper.clean", "tr a-z A-Z"), ("filter.upper.smudge", "cat")]
    if shape.upper_required:
        cfg.append(("filter.upper.required", "true"))
    with (repo / ".git" / "config").open("a") as config:  # one write instead of a git call each
        for key, value in cfg:
            section, name = key.rsplit(".", 1)
            head, _, sub = section.partition(".")
            config.write(f'[{head} "{sub}"]\n' if sub else f"[{head}]\n")
            config.write(f"\t{name} = {value}\n")
    if shape.gitignore is not None:
        write_bytes(repo, "notes/.gitignore", shape.gitignore.encode())
    if shape.gitattributes is not None:
        write_bytes(repo, ".gitattributes", shape.gitattributes.encode())
    spelled: dict[str, str] = {}  # lower-cased name or folder -> its spelling
    for rel, (data, executable) in shape.files.items():
        names = ["/".join(rel.split("/")[: i + 1]) for i in range(rel.count("/") + 1)]
        if shape.ignore_case and any(spelled.get(n.lower(), n) != n for n in names):
            continue  # two names differing only in case: no case-insensitive file system has them
        spelled.update((n.lower(), n) for n in names)
        write_bytes(repo, rel, data)
        if executable and (repo / rel).is_file():
            os.chmod(repo / rel, 0o755)
    for rel, target in shape.links.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, repo / rel)
    git(repo, "add", "-A", "-f", ".")
    git(repo, "commit", "-q", "--allow-empty", "-m", "base", env=ENV)
    if shape.submodule:
        upstream = init_repo(root / "upstream", hooks=False)
        git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(upstream), "notes/mod")
        git(repo, "commit", "-q", "-m", "submodule", env=ENV)
    if shape.nested:
        nested = repo / "notes" / "nested"
        nested.mkdir(parents=True, exist_ok=True)
        git(nested, "init", "-q", "--template=")
        write_bytes(nested, "n.md", b"nested\n")
    flagged = [p for p in shape.skip_worktree if p in shape.files]
    if flagged:
        git(repo, "update-index", "--skip-worktree", *flagged)
    if shape.ignore_case:  # what git sets on a case-insensitive file system
        git(repo, "config", "core.ignoreCase", "true")
    if shape.sparse:
        git(repo, "update-index", "-q", "--refresh")
        git(repo, "sparse-checkout", "set", "--cone", "notes/sub", "other", check=False)
    return repo


def apply(repo: Path, op: Op) -> None:
    full = repo / op.path
    if op.kind == "write":
        write_bytes(repo, op.path, op.content)
    elif op.kind == "delete":
        if full.is_symlink() or full.is_file():
            full.unlink()
    elif op.kind == "chmod":
        if full.is_file() and not full.is_symlink():
            os.chmod(full, full.stat().st_mode ^ 0o111)
    elif op.kind == "link":
        if full.is_symlink() or full.is_file():
            full.unlink()
        if not full.exists() and full.parent.is_dir():
            os.symlink(op.other, full)
    elif op.kind == "rename":
        target = repo / op.other
        if (full.is_file() or full.is_symlink()) and not target.exists() and not target.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.parent.is_dir() and not target.parent.is_symlink():
                os.rename(full, target)
    elif op.kind == "stage":  # the user stages a version, then keeps editing (or not)
        write_bytes(repo, op.path, op.content)
        if full.is_file():
            git(repo, "add", "-f", "--", op.path, check=False)


def candidates(repo: Path) -> list[str]:
    """Every path under the store the working tree, the index or HEAD knows (even inside
    another repository, even ignored)."""
    found: set[str] = set()
    for folder, dirs, names in os.walk(repo / STORE):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            if name != ".git":
                found.add((Path(folder) / name).relative_to(repo).as_posix())
    found.update(p for p in git(repo, "ls-files", "--", STORE).split("\n") if p)
    found.update(p for p in git(repo, "ls-tree", "-r", "--name-only", "HEAD", "--", STORE).split("\n") if p)
    return sorted(found)


def spelled_otherwise(repo: Path) -> bool:
    """With core.ignoreCase: a file whose folder the index spells in another case, or whose
    index entry (spelled otherwise) has no file under its own spelling. git then looks for
    the index's spelling (its `commit -- notes`, `status`), which only a case-insensitive
    file system finds (this one is not): no oracle for those (the named ignore_case tests
    below compare with `git add`)."""
    tracked = [p for p in git(repo, "ls-files").split("\n") if p]
    files = {p.lower(): p for p in tracked}
    folders: dict[str, str] = {}
    for path in tracked:
        parts = path.split("/")[:-1]
        for i in range(len(parts)):
            folder = "/".join(parts[: i + 1])
            folders.setdefault(folder.lower(), folder)
    for path in candidates(repo):
        if not os.path.lexists(repo / path):
            continue
        entry = files.get(path.lower(), path)
        if entry != path and not os.path.lexists(repo / entry):
            return True
        parts = path.split("/")[:-1]
        if any(folders.get(f.lower(), f) != f for f in ("/".join(parts[: i + 1]) for i in range(len(parts)))):
            return True
    return False


def run_git(repo: Path) -> bool:
    """`git add -A` and `git commit` of the store; False when git refused the whole add
    (two new paths that differ only in case, with core.ignoreCase: mdbackup fails just
    the second, test_a_second_new_alias_fails_alone)."""
    exclude = [":(exclude)notes/nested"] if (repo / "notes" / "nested").exists() else []
    added = subprocess.run(
        ["git", "-C", str(repo), "add", "-A", "--", STORE, *exclude], capture_output=True, check=False
    )
    if b"will not add file alias" in added.stderr:
        return False
    subprocess.run(
        ["git", "-C", str(repo), "commit", "-q", "-m", "backup", "--", STORE, *exclude],
        capture_output=True,
        check=False,
        env={**os.environ, **ENV},
    )
    return True


def run_mdbackup(repo: Path, *, packed: bool = False) -> frozenset[str]:
    """Commit every candidate with mdbackup; returns the paths it found equal to HEAD.
    `packed`: the blobs go into one pack, as for a large batch (`mdbackup.git.pack`)."""
    threshold = pack.PACK_MIN
    pack.PACK_MIN = 1 if packed else threshold
    try:
        result = Committer(open_repository(repo)).commit_paths(
            candidates(repo),
            message=lambda changes: "backup",
            author=SIG,
            committer=SIG,
            max_file_size=1 << 20,
        )
    finally:
        pack.PACK_MIN = threshold
    if packed:
        git(repo, "fsck", "--strict", "--no-dangling")  # every object there and well formed
    return frozenset(result.unchanged)


def observe(repo: Path, *, leaving: frozenset[str] = frozenset()) -> dict[str, str]:
    """The tree, the index and `git status`, without the lines of the paths in `leaving`."""

    def without(text: str) -> str:
        return "".join(line for line in text.splitlines(keepends=True) if _line_path(line) not in leaving)

    return {
        "tree": git(repo, "ls-tree", "-r", "HEAD"),
        "index": without(git(repo, "ls-files", "-s", "-v")),  # mode, blob, stage, flags (H, S, ...)
        "status": without(git(repo, "status", "--porcelain=v2", "--untracked-files=all")),
    }


def _line_path(line: str) -> str:
    """The path a `ls-files -s` or `status --porcelain=v2` line is about (a rename's new one)."""
    line = line.rstrip("\n")
    if "\t" in line:  # ls-files: "H mode oid stage\tpath"; status rename: "2 ... path\torig"
        head, _, tail = line.partition("\t")
        return tail if not line.startswith("2 ") else head.rsplit(" ", 1)[-1]
    return line.rsplit(" ", 1)[-1]  # status: the path is the last field (our names have no space)


@seed(SEED)
@settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)
@given(shape=shapes, operations=ops, packed=st.booleans())
def test_mdbackup_commits_what_git_would(shape: Shape, operations: list[Op], packed: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="mdbackup-oracle-", dir=FAST_TMP) as tmp:
        root = Path(tmp)
        repo = build(root / "built", shape)
        for op in operations:
            apply(repo, op)
        if shape.ignore_case and spelled_otherwise(repo):
            reject()
        twin = root / "twin"
        shutil.copytree(repo, twin / "repo", symlinks=True)
        ours = repo
        theirs = twin / "repo"
        index_before = observe(ours)["index"]
        equal_to_head = run_mdbackup(ours, packed=packed)
        if not run_git(theirs):
            reject()
        # Documented difference (README "What gets committed"): a path whose content equals
        # HEAD keeps its index entry (what the user staged stays staged), where `git add`
        # would stage the working tree. Those entries must be exactly as they were.
        assert observe(ours, leaving=equal_to_head) == observe(theirs, leaving=equal_to_head)
        kept = [line for line in index_before.splitlines() if _line_path(line) in equal_to_head]
        assert kept == [
            line for line in observe(ours)["index"].splitlines() if _line_path(line) in equal_to_head
        ]


def test_a_binary_index_blob_with_cr_does_not_stop_autocrlf(repo: Path) -> None:
    """libgit2's crlf filter skips the conversion when the index blob has any CR; git only
    when that blob is text with CRLF (convert.c has_crlf_in_index)."""
    git(repo, "config", "core.autocrlf", "true")
    (repo / "notes").mkdir()
    (repo / "notes" / "a.md").write_bytes(b"\x00binary\r\n")
    git(repo, "add", "notes/a.md")
    git(repo, "commit", "-qm", "binary with CR")
    (repo / "notes" / "a.md").write_bytes(b"two\r\nlines\r\n")
    twin = repo.parent / "twin"
    shutil.copytree(repo, twin, symlinks=True)
    run_mdbackup(repo)
    run_git(twin)
    assert observe(repo)["tree"] == observe(twin)["tree"]


def ignore_case_twins(repo: Path) -> Path:
    """`repo` with notes/a.md and notes/sub/b.md committed, then core.ignoreCase = true (as
    git sets it on a case-insensitive file system); returns its twin's path."""
    (repo / "notes" / "sub").mkdir(parents=True)
    (repo / "notes" / "a.md").write_text("a\n")
    (repo / "notes" / "sub" / "b.md").write_text("b\n")
    git(repo, "add", "notes")
    git(repo, "commit", "-qm", "store")
    git(repo, "config", "core.ignoreCase", "true")
    return repo.parent / "twin"


def test_ignore_case_a_path_that_aliases_an_index_entry_updates_that_entry(repo: Path) -> None:
    """The watcher names `notes/A.md`; the index has `notes/a.md`: git takes the one for
    the other (it never adds a second entry) and stores what the entry's path holds."""
    twin = ignore_case_twins(repo)
    (repo / "notes" / "a.md").write_text("a, edited\n")
    (repo / "notes" / "A.md").write_text("an alias git never adds\n")
    shutil.copytree(repo, twin, symlinks=True)
    result = Committer(open_repository(repo)).commit_paths(
        ["notes/A.md"], message=lambda changes: "backup", author=SIG, committer=SIG, max_file_size=1 << 20
    )
    run_git(twin)
    assert observe(repo) == observe(twin)
    assert git(repo, "ls-files", "notes").split() == ["notes/a.md", "notes/sub/b.md"]
    assert git(repo, "show", "HEAD:notes/a.md") == "a, edited\n"
    assert [c.path for c in result.changes] == ["notes/A.md"]  # the batch's own path is answered


def test_ignore_case_a_new_path_takes_the_index_folders_spelling(repo: Path) -> None:
    """`notes/Sub/c.md` is new and the index has `notes/sub/`: git stages it as
    `notes/sub/c.md` (adjust_dirname_case). Compared with `git add -A` alone: on this
    case-sensitive file system git's `commit -- notes` then looks for `notes/sub/c.md`,
    which only a case-insensitive one would find."""
    twin = ignore_case_twins(repo)
    (repo / "notes" / "Sub").mkdir()
    (repo / "notes" / "Sub" / "c.md").write_text("c\n")
    shutil.copytree(repo, twin, symlinks=True)
    run_mdbackup(repo)
    git(twin, "add", "-A", "--", "notes")
    assert git(repo, "ls-files", "-s") == git(twin, "ls-files", "-s")
    assert git(repo, "show", "HEAD:notes/sub/c.md") == "c\n"


def test_a_second_new_alias_fails_alone(repo: Path) -> None:
    """Two new paths that differ only in case: git refuses the whole `git add` ("will not
    add file alias"); mdbackup adds the first and fails the second with git's words."""
    twin = ignore_case_twins(repo)
    (repo / "notes" / "N.md").write_text("upper\n")
    (repo / "notes" / "n.md").write_text("lower\n")
    shutil.copytree(repo, twin, symlinks=True)
    result = Committer(open_repository(repo)).commit_paths(
        ["notes/n.md", "notes/N.md"], message=lambda c: "backup", author=SIG, committer=SIG, max_file_size=99
    )
    assert not run_git(twin)
    assert [c.path for c in result.changes] == ["notes/N.md"]
    assert "will not add file alias 'notes/n.md'" in result.failed["notes/n.md"]
    assert git(repo, "show", "HEAD:notes/N.md") == "upper\n"
