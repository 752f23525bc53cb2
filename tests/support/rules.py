"""Which store files are wanted under a given config and set of ignore rules: the loss
oracle's own answer, independent of the daemon's code on purpose.

- `include` / `exclude` (the config's `[store]` globs) are matched by `glob_matches`, a
  small re-implementation of the contract's glob rules (gitignore-style, relative to the
  store folder: `*` does not cross `/`, `**/` is zero or more folders, a trailing `/**`
  everything inside, a pattern without `/` matches a name at any depth, a leading `/`
  anchors, a trailing `/` matches folders only). It is not `mdbackup.patterns`.
- `.gitignore` in the store and `.git/info/exclude` are asked of the git binary
  (`git check-ignore --no-index`), the oracle of what git would ignore: in the real
  repository for the rules on disk now, or in a scratch repository holding the same rule
  files for rules that were in force earlier (`IgnoreOracle`).

A tracked path stays tracked whatever `.gitignore` says (git's rule): ignore rules only
decide whether an untracked file is added. `Rules.allows` says what a commit may change.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

STORE = "notes"
DEFAULT_INCLUDE = ("**/*.md",)

# The contract's built-in editor temp patterns (matched against the file's name).
TEMP_PATTERNS = (
    "*.swp",
    "*.swo",
    "*.swx",
    "4913",
    "*~",
    ".#*",
    "#*#",
    "*.tmp",
    "*___jb_tmp___",
    "*___jb_old___",
    ".DS_Store",
)


def _segments_match(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    head = pattern[0]
    if head == "**":
        if len(pattern) == 1:
            return len(path) >= 1  # a trailing `/**`: everything inside
        return any(_segments_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], head) and _segments_match(pattern[1:], path[1:])


def glob_matches(pattern: str, rel: str, *, is_dir: bool = False) -> bool:
    """The contract's glob `pattern` matches the store-relative path `rel` itself (a folder
    when `is_dir`)."""
    dir_only = pattern.endswith("/")
    body = pattern.rstrip("/")
    if dir_only and not is_dir:
        return False
    anchored = body.startswith("/") or "/" in body
    segments = body.lstrip("/").split("/")
    if not anchored:
        segments = ["**", *segments]
    return _segments_match(segments, rel.split("/"))


@dataclass(frozen=True)
class Rules:
    """What decides which store files are wanted: the config's `include` and `exclude`, the
    store's `.gitignore` (its text; "" for none) and `.git/info/exclude` (its text)."""

    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = ()
    gitignore: str = ""
    info_exclude: str = ""

    def config_wants(self, path: str) -> bool:
        """The config (and the built-in temp patterns) wants the repo-relative `path`: under
        the store, no `.git` component, matching `include`, and neither it nor a folder above
        it matching `exclude`. Ignore files are not looked at here."""
        if not path.startswith(STORE + "/"):
            return False
        parts = path.split("/")
        if ".git" in parts:
            return False
        if any(fnmatch.fnmatchcase(parts[-1], p) for p in TEMP_PATTERNS):
            return False
        rel = path[len(STORE) + 1 :]
        if not any(glob_matches(p, rel) for p in self.include):
            return False
        segments = rel.split("/")
        for i in range(1, len(segments)):
            folder = "/".join(segments[:i])
            if any(glob_matches(p, folder, is_dir=True) for p in self.exclude):
                return False
        return not any(glob_matches(p, rel) for p in self.exclude)

    def toml(self) -> str:
        """The `[store]` keys of these rules (the lines to put under `[store]`)."""
        return (
            f"include = {json.dumps(list(self.include), ensure_ascii=False)}\n"
            f"exclude = {json.dumps(list(self.exclude), ensure_ascii=False)}\n"
        )

    def describe(self) -> str:
        return (
            f"include {list(self.include)} exclude {list(self.exclude)} "
            f".gitignore {self.gitignore!r} info/exclude {self.info_exclude!r}"
        )


CHECK_IGNORE = ("-c", "core.excludesFile=/dev/null", "check-ignore", "--no-index", "-z", "--stdin")


def check_ignore(repo: Path, paths: list[str]) -> set[str]:
    """The repo-relative `paths` that git ignores in `repo` by its ignore files
    (`git check-ignore --no-index`: tracked or not; no global excludes file)."""
    if not paths:
        return set()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_OPTIONAL_LOCKS"] = "0"
    data = b"".join(os.fsencode(p) + b"\0" for p in paths)
    result = subprocess.run(
        ["git", "-C", str(repo), *CHECK_IGNORE],
        input=data,
        capture_output=True,
        env=env,
        check=False,
    )
    if result.returncode not in (0, 1):
        raise AssertionError(f"git check-ignore in {repo} failed: {result.stderr.decode()}")
    return {os.fsdecode(p) for p in result.stdout.split(b"\0") if p}


class IgnoreOracle:
    """`git check-ignore` under given `Rules`: in a scratch repository (under `root`) whose
    store `.gitignore` and `.git/info/exclude` hold the rules' texts."""

    def __init__(self, root: Path) -> None:
        self.repo = root
        self._written: Rules | None = None
        self._cache: dict[tuple[Rules, str], bool] = {}

    def ignored(self, rules: Rules, paths: list[str]) -> set[str]:
        """Which of `paths` the rules' ignore files ignore."""
        asked = [p for p in paths if (rules, p) not in self._cache]
        if asked:
            if not rules.gitignore and not rules.info_exclude:
                found: set[str] = set()
            else:
                self._write(rules)
                found = check_ignore(self.repo, asked)
            self._cache.update(((rules, p), p in found) for p in asked)
        return {p for p in paths if self._cache[(rules, p)]}

    def _write(self, rules: Rules) -> None:
        if self._written == rules:
            return
        if not (self.repo / ".git").exists():
            self.repo.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "-q", str(self.repo)], check=True, capture_output=True)
        (self.repo / STORE).mkdir(exist_ok=True)
        (self.repo / STORE / ".gitignore").write_text(rules.gitignore)
        (self.repo / ".git" / "info").mkdir(exist_ok=True)
        (self.repo / ".git" / "info" / "exclude").write_text(rules.info_exclude)
        self._written = rules


DIFF_TREE = ("diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", "--name-status", "--root")


def commit_changes(repo: Path, base: str | None, tip: str) -> list[tuple[str, str, str]]:
    """(commit, status letter, path) for every path each commit after `base` up to `tip`
    changed under the store, oldest commit first (no rename detection: A and D)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    span = f"{base}..{tip}" if base else tip

    def git(*args: str) -> bytes:
        result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env, check=False)
        if result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} in {repo} failed: {result.stderr.decode()}")
        return result.stdout

    commits = git("rev-list", "--reverse", span).decode().split()
    changes = []
    for commit in commits:
        out = git(*DIFF_TREE, commit, "--", STORE)
        fields = out.split(b"\0")
        for status, path in zip(fields[0::2], fields[1::2], strict=False):
            if status:
                changes.append((commit, status.decode(), os.fsdecode(path)))
    return changes
