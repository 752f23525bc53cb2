"""Commit message templates: the placeholders, their validation and rendering.

A template is a `str.format` string restricted to bare named placeholders from
`PLACEHOLDERS` (no format specs, no conversions, no attribute or index access).
Literal braces are written `{{` and `}}`. Paths in messages are relative to the
store folder, POSIX style.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

PLACEHOLDERS: frozenset[str] = frozenset(
    {"summary", "count", "added", "modified", "deleted", "files", "hostname", "timestamp"}
)

SUMMARY_MAX = 72
"""`{summary}` never exceeds this many characters."""

_ELLIPSIS = "..."
_MORE = ", ..."
_SEPARATOR = ", "


def _known() -> str:
    return ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS))


def template_problems(template: str) -> list[str]:
    """Describe everything wrong with `template`, one string per problem; empty when it is fine.

    Problems: malformed braces, an empty `{}`, an unknown placeholder (named),
    a format spec (`{count:>3}`) or a conversion (`{summary!r}`).
    """
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as exc:
        return [f"malformed braces ({exc}); write {{{{ and }}}} for literal braces"]
    problems: list[str] = []
    for name, spec, conversion in fields:
        problem = _field_problem(name, spec, conversion)
        if problem is not None and problem not in problems:
            problems.append(problem)
    return problems


def _field_problem(name: str, spec: str | None, conversion: str | None) -> str | None:
    """The problem with one `{name!conversion:spec}` field, or None."""
    if name == "":
        return f"empty placeholder {{}} (known: {_known()})"
    if name not in PLACEHOLDERS:
        return f"unknown placeholder {{{name}}} (known: {_known()})"
    if conversion:
        return f"conversion not allowed in {{{name}!{conversion}}}"
    if spec:
        return f"format spec not allowed in {{{name}:{spec}}}"
    return None


@dataclass(frozen=True)
class ChangeSummary:
    """The paths of one commit, relative to the STORE folder, POSIX style.

    The three tuples are expected to be disjoint (a rename is one deletion plus
    one addition); a path listed twice is counted once.
    """

    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path of the change, sorted, each once."""
        return tuple(sorted({*self.added, *self.modified, *self.deleted}))


def _one_line(path: str) -> str:
    """A path as it is written in a message: control characters (a newline in a file
    name) escaped, so every path stays on its line and the subject stays one line."""
    if path.isprintable():
        return path
    return "".join(
        c if c.isprintable() or _is_byte_escape(c) else c.encode("unicode_escape").decode() for c in path
    )


def _is_byte_escape(c: str) -> bool:
    """A byte that is not UTF-8, carried as a surrogate; the commit writer shows it as \\xNN."""
    return "\udc80" <= c <= "\udcff"


def summarize(paths: tuple[str, ...] | list[str], *, limit: int = SUMMARY_MAX) -> str:
    """`1 file: a.md` / `3 files: a.md, b.md, sub/c.md`, never longer than `limit` characters.

    `paths` are listed sorted. When they do not all fit, as many whole names as
    fit are kept, followed by `, ...`. When not even the first whole name fits,
    its tail is kept behind `...` (the file name is the informative end):
    `1 file: ...deep/folder/name.md`, `4 files: ...name.md, ...`.
    """
    names = [_one_line(name) for name in sorted(paths)]
    count = len(names)
    header = f"{count} file{'' if count == 1 else 's'}"
    if count == 0:
        return header
    header += ": "
    full = header + _SEPARATOR.join(names)
    if len(full) <= limit:
        return full
    suffix = "" if count == 1 else _MORE
    # Add names from the front while the next one still fits: linear in what is kept.
    kept: list[str] = []
    length = len(header) + len(_MORE)
    for name in names[: count - 1]:
        extra = len(name) + (len(_SEPARATOR) if kept else 0)
        if length + extra > limit:
            break
        kept.append(name)
        length += extra
    if kept:
        return header + _SEPARATOR.join(kept) + _MORE
    room = limit - len(header) - len(_ELLIPSIS) - len(suffix)
    tail = names[0][-room:] if room > 0 else ""
    return (header + _ELLIPSIS + tail + suffix)[:limit]


def render_message(template: str, *, changes: ChangeSummary, hostname: str, now: datetime) -> str:
    """Render a commit message; raises ValueError when `template_problems(template)` is not empty.

    `{timestamp}` is `now` in local time with its offset, seconds precision
    (`2026-11-27T10:00:00+01:00`); a naive `now` is taken as local time.
    """
    problems = template_problems(template)
    if problems:
        raise ValueError("; ".join(problems))
    paths = changes.paths
    values = {
        "summary": summarize(paths),
        "count": str(len(paths)),
        "added": str(len(set(changes.added))),
        "modified": str(len(set(changes.modified))),
        "deleted": str(len(set(changes.deleted))),
        "files": "\n".join(_one_line(path) for path in paths),
        "hostname": hostname,
        "timestamp": now.astimezone().isoformat(timespec="seconds"),
    }
    return template.format_map(values)


class ChangeLike(Protocol):
    """One path of a commit: `path` repository-relative, POSIX; `kind` is `added`,
    `modified` or `deleted` (e.g. `mdbackup.git.commit.PathChange`)."""

    @property
    def path(self) -> str: ...

    @property
    def kind(self) -> str: ...


def renderer(
    *, template: str, store_prefix: str, hostname: str, now: Callable[[], datetime]
) -> Callable[[Sequence[ChangeLike]], str]:
    """A function from a commit's changes to its message, through `render_message`.

    Paths are made relative to the store folder `store_prefix` (repository-relative,
    POSIX, no trailing `/`; `""` for the repository root); a path outside it is kept
    as it is. `{timestamp}` is `now()` at the time of rendering. The returned function
    has no other input and no side effect; like `render_message` it raises ValueError
    for a template with problems (`template_problems`).
    """
    head = f"{store_prefix}/" if store_prefix else ""

    def relative(path: str) -> str:
        if head and path.startswith(head) and len(path) > len(head):
            return path[len(head) :]
        return path

    def render(changes: Sequence[ChangeLike]) -> str:
        def of_kind(kind: str) -> tuple[str, ...]:
            return tuple(relative(change.path) for change in changes if change.kind == kind)

        summary = ChangeSummary(
            added=of_kind("added"), modified=of_kind("modified"), deleted=of_kind("deleted")
        )
        return render_message(template, changes=summary, hostname=hostname, now=now())

    return render
