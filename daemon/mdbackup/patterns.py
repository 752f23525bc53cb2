"""Gitignore-style globs and the filter that decides which paths are store paths.

Glob rules (the contract's "Types"), for paths relative to the store folder:

- `*` matches any run of characters except `/`; `?` one character except `/`;
  `[abc]`, `[a-z]`, `[!a]` / `[^a]` are character classes (never matching `/`);
  a backslash makes the next character literal.
- `**/` matches zero or more folders (`**/*.md` matches `a.md` and `x/y/a.md`);
  a trailing `/**` matches everything inside (`a/**` matches `a/b` and `a/b/c`,
  not `a`); `a/**/b` matches `a/b`, `a/x/b`, `a/x/y/b`. `**` that is not a whole
  segment is an ordinary `*`.
- A pattern without a `/` (apart from a trailing one) matches a name at any
  depth (`*.tmp` matches `a.tmp` and `x/a.tmp`). A leading or middle `/`
  anchors the pattern to the store folder (`/a.md` and `x/a.md` only match
  there).
- A trailing `/` makes the pattern match folders only (`drafts/`).
- Trailing spaces are dropped unless escaped (`\\ `); a leading `!`
  (gitignore negation) is rejected: write `\\!` for a literal `!`.

Each pattern is translated to a regular expression once (cached by pattern
text); a `GlobSet` joins its patterns into precompiled alternations, plus set
and `str.endswith`/`startswith` fast paths for literal names (`*.swp`,
`4913`), and nothing is compiled per call. `.gitignore` is not handled here:
the git layer asks libgit2 about it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

BUILTIN_EXCLUDES: tuple[str, ...] = (
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

_ANY_FOLDERS = "(?:.*/)?"  # `**/`: zero or more whole folders
_FOLDER_CACHE_SIZE = 4096  # folders remembered per GlobSet by `covers`


class GlobError(ValueError):
    """A glob that cannot be compiled (e.g. a reversed range `[z-a]`); the message names it."""


@dataclass(frozen=True)
class _Compiled:
    """One translated pattern.

    `body` matches a whole store-relative path when `floating` is False, and
    the tail of a path starting at a folder boundary when it is True (the
    pattern is preceded by an implicit `**/`).
    """

    body: str
    floating: bool
    dir_only: bool
    single_name: bool  # floating and one segment: `body` matches a name (no `/`)
    name_kind: str = "regex"  # single names only: "exact", "suffix" (`*lit`), "prefix" (`lit*`) or "regex"
    literal: str = ""  # the literal text of an exact/suffix/prefix name pattern

    @property
    def regex(self) -> str:
        """The regex matching a whole store-relative path."""
        return _ANY_FOLDERS + self.body if self.floating else self.body


@functools.lru_cache(maxsize=1024)
def _compile_pattern(pattern: str) -> _Compiled:
    """Translate one glob to an anchored regex body; raises GlobError for an invalid glob."""
    body = _strip_trailing_spaces(pattern)
    dir_only = body.endswith("/") and body.rstrip("/") != ""
    body = body.rstrip("/")
    anchored = body.startswith("/") or "/" in body.strip("/")
    body = body.lstrip("/")
    segments = [segment for segment in body.split("/") if segment != ""]
    if not segments:
        raise GlobError(f"empty glob {pattern!r}")
    if pattern.startswith("!"):
        raise GlobError(
            f"negated glob {pattern!r}: '!' patterns are not supported (write '\\!' for a literal '!')"
        )
    while len(segments) > 1 and segments[0] == "**":
        segments.pop(0)
        anchored = False
    single_name = not anchored and len(segments) == 1
    kind, literal = _name_shape(segments[0]) if single_name else ("regex", "")
    compiled = _Compiled(
        body=_translate_segments(segments),
        floating=not anchored,
        dir_only=dir_only,
        single_name=single_name,
        name_kind=kind,
        literal=literal,
    )
    try:
        re.compile(compiled.regex)
    except re.error as exc:
        raise GlobError(f"invalid glob {pattern!r}: {exc}") from exc
    return compiled


def _name_shape(segment: str) -> tuple[str, str]:
    """Classify a name pattern for the fast paths: ("exact"|"suffix"|"prefix"|"regex", literal)."""
    if segment == "**":
        return "regex", ""
    core = segment.strip("*")
    if any(char in core for char in "*?[\\"):
        return "regex", ""
    starts, ends = segment.startswith("*"), segment.endswith("*")
    if not starts and not ends:
        return "exact", segment
    if starts and not ends:
        return "suffix", core
    if ends and not starts:
        return "prefix", core
    return "regex", ""


def _strip_trailing_spaces(pattern: str) -> str:
    """Drop trailing spaces unless backslash-escaped, as git does (`a\\ ` keeps one space)."""
    stripped = pattern.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(pattern):
        return stripped + " "
    return stripped


def _translate_segments(segments: Sequence[str]) -> str:
    """Join translated segments with `/`, turning whole `**` segments into folder wildcards."""
    parts: list[str] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "**":
            if index == last:
                parts.append(".+")  # `a/**`: everything inside
            elif not parts or parts[-1] != _ANY_FOLDERS:
                parts.append(_ANY_FOLDERS)  # `a/**/b` (repeated `**` collapse)
            continue
        parts.append(_translate_segment(segment))
        if index != last:
            parts.append("/")
    return "".join(parts)


def _translate_segment(segment: str) -> str:
    """Translate one path segment (no `/`): `*`, `?`, classes and backslash escapes."""
    out: list[str] = []
    i, n = 0, len(segment)
    while i < n:
        char = segment[i]
        if char == "*":
            while i + 1 < n and segment[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(segment[i]))
        elif char == "[":
            translated, end = _translate_class(segment, i)
            if translated is None:
                out.append(re.escape("["))
            else:
                out.append(translated)
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


_POSIX_CLASSES: dict[str, str] = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}


def _translate_class(segment: str, start: int) -> tuple[str | None, int]:
    """Translate the class opening at `segment[start] == '['`.

    Supports ranges, `!`/`^` negation, a leading literal `]`, backslash
    escapes and POSIX classes such as `[[:digit:]]`. Returns (regex, index of
    the closing `]`), or (None, start) when the class is not closed (then `[`
    is literal, as in git). The class never matches `/`.
    """
    i = start + 1
    n = len(segment)
    negate = i < n and segment[i] in "!^"
    if negate:
        i += 1
    items: list[str] = []
    first = True
    while i < n and (segment[i] != "]" or first):
        char = segment[i]
        posix_end = segment.find(":]", i + 2) if segment.startswith("[:", i) else -1
        if posix_end != -1 and segment[i + 2 : posix_end] in _POSIX_CLASSES:
            items.append(_POSIX_CLASSES[segment[i + 2 : posix_end]])
            i = posix_end + 1
        elif char == "\\" and i + 1 < n:
            i += 1
            items.append(re.escape(segment[i]))
        elif char == "-" and not first and i + 1 < n and segment[i + 1] != "]":
            items.append("-")
        else:
            items.append(re.escape(char))
        first = False
        i += 1
    if i >= n:
        return None, start
    body = "".join(items)
    if negate:
        return f"[^/{body}]", i
    return f"(?!/)[{body}]", i


def _alternation(bodies: Iterable[str]) -> re.Pattern[str] | None:
    """One compiled regex fully matching what any of `bodies` matches; None when there are none."""
    unique = list(dict.fromkeys(bodies))
    if not unique:
        return None
    return re.compile("|".join(f"(?:{body})" for body in unique), re.DOTALL)


def _matcher(compiled: Sequence[_Compiled]) -> Callable[[str], bool]:
    """A function telling whether a whole store-relative path matches one of `compiled`.

    Single-name patterns look at the last component only: literal ones through
    a set lookup or `str.endswith`/`startswith`, the others through one
    alternation regex; the remaining patterns through one regex over the path.
    Built as a closure so that a call costs one Python frame.
    """
    names = [c for c in compiled if c.single_name]
    exact = frozenset(c.literal for c in names if c.name_kind == "exact")
    suffixes = tuple(dict.fromkeys(c.literal for c in names if c.name_kind == "suffix"))
    prefixes = tuple(dict.fromkeys(c.literal for c in names if c.name_kind == "prefix"))
    name_regex = _alternation(c.body for c in names if c.name_kind == "regex")
    path_regex = _alternation(c.regex for c in compiled if not c.single_name)
    name_full = name_regex.fullmatch if name_regex is not None else None
    path_full = path_regex.fullmatch if path_regex is not None else None

    def matches(rel: str) -> bool:
        name = rel[rel.rfind("/") + 1 :]
        return (
            name in exact
            or name.endswith(suffixes)
            or name.startswith(prefixes)
            or (name_full is not None and name_full(name) is not None)
            or (path_full is not None and path_full(rel) is not None)
        )

    return matches


class GlobSet:
    """An immutable set of gitignore-style globs, compiled once; thread-safe.

    `matches(rel)` asks about the path itself; `covers(rel)` also says True
    when one of its parent folders matches (gitignore semantics: an excluded
    folder excludes everything inside it). Folder-only patterns (trailing `/`)
    match a path itself only when `is_dir=True`, and always match parent folders.
    `covers` remembers the answer for recently seen folders (bounded cache).
    """

    __slots__ = ("_dir", "_file", "_folder_covered", "patterns")

    patterns: tuple[str, ...]

    def __init__(self, patterns: Sequence[str], compiled: Sequence[_Compiled]) -> None:
        """Use `GlobSet.compile`."""
        self.patterns = tuple(patterns)
        self._file = _matcher([c for c in compiled if not c.dir_only])
        self._dir = _matcher(compiled)
        self._folder_covered = functools.lru_cache(maxsize=_FOLDER_CACHE_SIZE)(self._compute_folder_covered)

    @classmethod
    def compile(cls, patterns: Iterable[str]) -> GlobSet:
        """Compile `patterns`; raises GlobError naming the first invalid one."""
        patterns = tuple(patterns)
        return cls(patterns, [_compile_pattern(pattern) for pattern in patterns])

    def matches(self, rel: str, *, is_dir: bool = False) -> bool:
        """True when the store-relative POSIX path `rel` itself matches a pattern."""
        return self._dir(rel) if is_dir else self._file(rel)

    def covers(self, rel: str, *, is_dir: bool = False) -> bool:
        """True when `rel` or one of its parent folders matches a pattern."""
        if is_dir:
            return self._folder_covered(rel)
        slash = rel.rfind("/")
        return (slash > 0 and self._folder_covered(rel[:slash])) or self._file(rel)

    def _compute_folder_covered(self, folder: str) -> bool:
        """`covers(folder, is_dir=True)`: the folder or one of its parents matches. A loop,
        not recursion: a folder tree 500 levels deep must not raise RecursionError."""
        slash = folder.find("/", 1)
        while slash > 0:
            if self._dir(folder[:slash]):
                return True
            slash = folder.find("/", slash + 1)
        return self._dir(folder)

    def __repr__(self) -> str:
        return f"GlobSet({list(self.patterns)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GlobSet) and other.patterns == self.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)


def _normalize_prefix(store_prefix: str) -> str:
    """`"."`, `"./notes/"` -> `""`, `"notes"`; rejects absolute paths and `..`."""
    parts = [part for part in store_prefix.replace("\\", "/").split("/") if part not in ("", ".")]
    if store_prefix.startswith("/") or ".." in parts:
        raise ValueError(f"store prefix must be repo-relative without '..': {store_prefix!r}")
    return "/".join(parts)


def _in_git_dir(repo_rel: str) -> bool:
    """True when a component of the repo-relative path is `.git`."""
    return (
        repo_rel == ".git"
        or repo_rel.startswith(".git/")
        or repo_rel.endswith("/.git")
        or "/.git/" in repo_rel
    )


@dataclass(frozen=True)
class StoreFilter:
    """Which repo-relative paths are store paths (the contract's "What gets committed").

    A path is wanted when it lies under the store folder, has no `.git`
    component, matches `include` (a folder-only include such as `journal/`
    takes everything inside that folder) and neither it nor any parent
    folder matches `exclude` or `BUILTIN_EXCLUDES`. `.gitignore` is the git
    layer's business. Thread-safe and cheap (a few microseconds a call).
    """

    store_prefix: str
    include: GlobSet
    exclude: GlobSet
    _wants: Callable[[str], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_wants", _wants_function(self.store_prefix, self.include, self.exclude))

    @classmethod
    def build(cls, *, store_prefix: str, include: Sequence[str], exclude: Sequence[str]) -> StoreFilter:
        """Compile the filter; `store_prefix` is the repo-relative store folder (`""` for the root).

        Raises GlobError for an invalid glob and ValueError for a bad prefix.
        """
        include_patterns = [_folder_include(pattern) for pattern in include]
        return cls(
            store_prefix=_normalize_prefix(store_prefix),
            include=GlobSet.compile(include_patterns),
            exclude=GlobSet.compile([*BUILTIN_EXCLUDES, *exclude]),
        )

    def store_relative(self, repo_rel: str) -> str | None:
        """The path relative to the store folder, `""` for the folder itself, None when outside it."""
        prefix = self.store_prefix
        if not prefix:
            return repo_rel
        if repo_rel == prefix:
            return ""
        if repo_rel.startswith(prefix) and repo_rel[len(prefix) : len(prefix) + 1] == "/":
            return repo_rel[len(prefix) + 1 :]
        return None

    def wants(self, repo_rel: str) -> bool:
        """True when the file at the repo-relative path `repo_rel` is a store path to back up."""
        return self._wants(repo_rel)

    def might_contain(self, repo_rel_dir: str) -> bool:
        """False when nothing inside the folder `repo_rel_dir` can be wanted (skip walking it).

        `""` is the repository root. Ancestors of the store folder may contain
        it; `.git` folders, folders outside the store and excluded folders
        never contain wanted paths. Include patterns do not prune folders.
        """
        if repo_rel_dir and _in_git_dir(repo_rel_dir):
            return False
        rel = self.store_relative(repo_rel_dir)
        if rel is None:
            return self._is_store_ancestor(repo_rel_dir)
        return rel == "" or not self.exclude.covers(rel, is_dir=True)

    def _is_store_ancestor(self, repo_rel_dir: str) -> bool:
        """True when the store folder lies strictly inside `repo_rel_dir`."""
        return repo_rel_dir == "" or self.store_prefix.startswith(repo_rel_dir + "/")


def _wants_function(store_prefix: str, include: GlobSet, exclude: GlobSet) -> Callable[[str], bool]:
    """`StoreFilter.wants` as one closure over precomputed values (it runs for every watchdog event)."""
    head = store_prefix + "/" if store_prefix else ""
    cut = len(head)
    included = include._file
    excluded = exclude._file
    folder_excluded = exclude._folder_covered

    def wants(repo_rel: str) -> bool:
        if not repo_rel.startswith(head):
            return False
        rel = repo_rel[cut:]
        if not rel or (".git" in repo_rel and _in_git_dir(repo_rel)) or not included(rel):
            return False
        slash = rel.rfind("/")
        return not ((slash > 0 and folder_excluded(rel[:slash])) or excluded(rel))

    return wants


def _folder_include(pattern: str) -> str:
    """A folder-only include selects everything inside: `journal/` -> `**/journal/**`, `/a/b/` -> `/a/b/**`.

    A folder ending in `**` is at least one folder deep: `a/**/` -> `a/*/**` (files in
    `a/x/`, not `a/f`), `**/` -> `**/*/**` (files inside some folder, not at the top).
    """
    stripped = _strip_trailing_spaces(pattern)
    folder = stripped.rstrip("/")
    if not stripped.endswith("/") or not folder:
        return pattern
    segments = folder.split("/")
    if segments[-1] == "**":  # `a/**` as a folder is `a/*` or deeper
        while segments and segments[-1] == "**":
            segments.pop()
        folder = "/".join([*segments, "*"])
    if "/" in folder.lstrip("/"):
        return folder + "/**"
    return ("" if folder.startswith("/") else "**/") + folder + "/**"
