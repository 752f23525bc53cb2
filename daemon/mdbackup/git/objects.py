"""What the commit layer's modules share: a tree entry, and the error for a repository
that cannot be written.

`mdbackup.git.commit` re-exports `RepositoryUnwritable`; the leaves
(`mdbackup.git.snapshot`, `mdbackup.git.trees`) import it from here, so neither
depends on the committer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pygit2
from pygit2.enums import FileMode


class RepositoryUnwritable(pygit2.GitError):
    """Git's objects, index or branch cannot be written (read-only, disk full, ...).

    Nothing was moved: the branch is where it was. The message says what failed.
    """


@dataclass(frozen=True)
class Entry:
    """A blob or link as a tree or the index records it: object id and git file mode."""

    oid: pygit2.Oid
    mode: FileMode


@contextmanager
def storing(what: str) -> Iterator[None]:
    """Turn a failure to write into the object database into RepositoryUnwritable.

    `what` names the write in the message: `cannot write to the repository (WHAT): ...`.
    A RepositoryUnwritable raised inside passes through unchanged.
    """
    try:
        yield
    except RepositoryUnwritable:
        raise
    except (pygit2.GitError, OSError) as exc:
        raise RepositoryUnwritable(f"cannot write to the repository ({what}): {exc}") from exc
