"""git's name rules: paths that git itself would refuse to put in a tree (reads no config).

`refusal(path, mode)` answers with the reason git would refuse a repository-relative
path, or None when git accepts it. It is the union of what `verify_path` in git's
read-cache.c checks on every platform (with `core.protectNTFS`, on by default, and
`core.protectHFS`, on by default on macOS) and what `git fsck` (hence a server with
`receive.fsckObjects`) refuses in a tree: an empty, `.` or `..` component; `.git` in
any case, and every name NTFS or HFS+ treats as `.git` (`git~1`, trailing dots and
spaces, an NTFS stream `.git::$INDEX_ALLOCATION`, HFS+ ignorable code points such as
U+200C inside `.git`) in any component; and a `.gitmodules` (or one of its NTFS/HFS+
equivalents) that is a symbolic link. A path holding such a name never reaches a tree:
it would make every later push to a checking server fail for ever.
"""

from __future__ import annotations

from pygit2.enums import FileMode

__all__ = ["refusal"]

# Code points HFS+ ignores when comparing names (git's utf8.c next_hfs_char).
_HFS_IGNORED = frozenset(
    (0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x206A, 0x206B)
) | frozenset((0x206C, 0x206D, 0x206E, 0x206F, 0xFEFF))


def refusal(path: str, mode: int) -> str | None:
    """Why git would refuse `path` (with the git file `mode` it would get), or None.

    `path` is repository-relative and `/`-separated; names that are not UTF-8 travel
    as surrogate escapes and are never taken for `.git` (as in git, where malformed
    UTF-8 is no HFS+ name).
    """
    link = mode == FileMode.LINK
    components = path.split("/")
    for component in components:
        if component in ("", ".", ".."):
            return f"git would refuse this path: it has a {component or 'empty'!r} component"
        for piece in component.split("\\"):  # NTFS (core.protectNTFS) splits names at backslashes
            if _is_ntfs_dotgit(piece) or _is_hfs_dot(piece, "git"):
                return f"git would refuse this path: {component!r} names the .git folder on some file systems"
    last = components[-1].rsplit("\\", 1)[-1]
    if link and (_is_ntfs_dot_generic(last, "gitmodules", "gi7eba") or _is_hfs_dot(last, "gitmodules")):
        return "git would refuse this path: .gitmodules must not be a symbolic link"
    return None


def _is_ntfs_dotgit(name: str) -> bool:
    """git's is_ntfs_dotgit for one name: `.git` or `git~1`, then only dots and spaces
    up to the end or an NTFS stream separator `:`."""
    lower = name.lower()
    if lower.startswith(".git"):
        rest = name[4:]
    elif lower.startswith("git~1"):
        rest = name[5:]
    else:
        return False
    return _only_dots_and_spaces(rest)


def _only_dots_and_spaces(rest: str) -> bool:
    """True when `rest` is dots and spaces up to its end or a `:` (the rest is a stream)."""
    for char in rest:
        if char == ":":
            return True
        if char not in ". ":
            return False
    return True


def _is_ntfs_dot_generic(name: str, dotname: str, shortname_prefix: str) -> bool:
    """git's is_ntfs_dot_generic: `.<dotname>`, its 8.3 short name `<first 6>~1..4`, or the
    fall-back short name `<shortname_prefix>~N`, each with trailing dots and spaces."""
    if name[:1] == "." and name[1 : 1 + len(dotname)].lower() == dotname:
        return _only_dots_and_spaces(name[1 + len(dotname) :])
    if name[:6].lower() == dotname[:6] and name[6:7] == "~" and "1" <= name[7:8] <= "4":
        return _only_dots_and_spaces(name[8:])
    # The fall-back short name: up to six characters of the prefix, `~`, digits (8 in all).
    head = name[:8]
    if len(head) < 8:
        return False
    saw_tilde = False
    i = 0
    while i < 8:
        char = head[i]
        if saw_tilde:
            if not "0" <= char <= "9":
                return False
        elif char == "~":
            i += 1
            if i >= 8 or not "1" <= head[i] <= "9":
                return False
            saw_tilde = True
        elif i >= 6 or ord(char) > 0x7F or char.lower() != shortname_prefix[i]:
            return False
        i += 1
    return _only_dots_and_spaces(name[8:])


def _is_hfs_dot(name: str, needle: str) -> bool:
    """git's is_hfs_dot_generic: `name` is `.<needle>` (any case) once the code points
    HFS+ ignores are dropped."""
    if name.isascii():  # every ignorable code point and every surrogate is beyond ASCII
        return name[:1] == "." and name[1:].lower() == needle
    chars = []
    for char in name:
        if "\udc80" <= char <= "\udcff":
            return False  # not UTF-8: never an HFS+ name
        if ord(char) not in _HFS_IGNORED:
            chars.append(char)
    folded = "".join(chars)
    return folded[:1] == "." and folded[1:].isascii() and folded[1:].lower() == needle
