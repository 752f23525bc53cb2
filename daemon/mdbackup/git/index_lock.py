"""The real index, read and written under git's own `index.lock` discipline.

Git updates `.git/index` by creating `index.lock` (O_CREAT|O_EXCL), reading the
index, writing the new one into the lock, and renaming the lock over the index.
Whoever holds the lock is the only writer; a reader always sees a whole index.
libgit2's `Index.write()` takes the lock only for the write itself, so a read-modify-
write through `repo.index` silently overwrites a `git add` made in between. Here the
lock is held from the read to the rename:

    files = IndexFiles(git_dir)                        # one per Committer
        index = files.current()                        # unlocked, for planning
        held = files.lock()                            # raises IndexBusy when held
        index = held.index                             # fresh under the lock
        ... change exactly our entries ...
        content_id = held.write()                      # our copy, fsynced
        held.put_in_place() / held.roll_back()         # renamed over the index; unlock

The lock is taken with `leftovers.claim` (its identity recorded before it exists),
so a lock left by our killed process can be told from git's. The in-memory index
is a standalone `pygit2.Index` over a copy in our state folder (`index.next`); it
is re-read only when `.git/index` is not the very file we last read or wrote
(inode, size, times and the SHA-1 trailer compared), so an unchanged index costs a
`stat`, not a read. Entries never touched keep their flags (skip-worktree, ...).
The new index is written by libgit2 into that copy and renamed over `.git/index`
while we hold the lock (the lock is then removed), which spares copying it into the
lock: holding the lock is what makes us the only writer, and the rename is atomic for
readers, as git's own rename of the lock is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pygit2

from mdbackup.git import layout, leftovers
from mdbackup.git.cache_tree import root_tree
from mdbackup.git.objects import RepositoryUnwritable

FSYNC_INDEX = False
"""Whether the new index is fsynced before it is renamed into place. Off, as in git
(whose default `core.fsync` leaves the index out) and libgit2: on a 50,000-entry index it
cost 17 ms a commit here, more than everything else this module adds. A torn copy after
a power cut is caught anyway: the recovery checks the SHA-1 trailer before finishing."""


CHECKOUT_WINDOW_S = 10.0
"""How long after another process wrote the index a whole cache-tree naming another tree
than HEAD's is taken for a checkout still moving HEAD (see `HeldIndex.is_another_commits`)."""

EMPTY_TREE = pygit2.Oid(hex="4b825dc642cb6eb9a060e54bf8d69288fbee4904")


class IndexBusy(Exception):
    """Another process holds `index.lock`: nothing was changed."""


@dataclass(frozen=True)
class IndexIdentity:
    """Which index file is on disk: a different one has a different value."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    trailer: bytes


def _identity(fd: int) -> IndexIdentity:
    st = os.fstat(fd)
    trailer = os.pread(fd, 20, st.st_size - 20) if st.st_size >= 20 else b""
    return IndexIdentity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, trailer)


class IndexFiles:
    """The repository's index as this process knows it, and the way to lock it."""

    def __init__(self, git_dir: Path) -> None:
        self._path = layout.index_file(git_dir)
        self._lock = layout.index_lock(git_dir)
        self._state = layout.state_dir(git_dir)
        self._copy = layout.index_copy(git_dir)
        self._index: pygit2.Index | None = None
        self._known: IndexIdentity | None = None  # of the file `_index` mirrors
        self._ours: IndexIdentity | None = None  # of the index we last put in place
        self._root: tuple[IndexIdentity, pygit2.Oid | None] | None = None  # a fresh foreign index's root

    def current(self) -> pygit2.Index:
        """The index as it is on disk now (re-read only when the file changed).

        Not locked: use it to plan, then check under `lock()` that it still holds.
        Raises RepositoryUnwritable when our copy cannot be written.
        """
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if self._index is None or self._known is not None:
                self._load(None)
            assert self._index is not None
            return self._index
        try:
            known = _identity(fd)
            if self._index is None or known != self._known or not any(known.trailer):
                self._load(fd)
                self._known = known
                self._root = None
                self.fresh_foreign_root()  # read before the lock is taken, not while held
        finally:
            os.close(fd)
        assert self._index is not None
        return self._index

    def fresh_foreign_root(self) -> pygit2.Oid | None:
        """The root tree the index in place records (`mdbackup.git.cache_tree`) when another
        process wrote it less than CHECKOUT_WINDOW_S ago; None otherwise (ours, older,
        none recorded). Read once per index file."""
        known = self._known
        if known is None or known == self._ours:
            return None
        if time.time_ns() - known.mtime_ns > CHECKOUT_WINDOW_S * 1e9:
            return None
        if self._root is None or self._root[0] != known:
            self._root = (known, root_tree(self._path))
        return self._root[1]

    def forget(self) -> None:
        """Drop the in-memory index (after a change that was not written)."""
        self._index = None
        self._known = None

    def lock(self) -> HeldIndex:
        """Take `index.lock` and read the index fresh under it.

        Raises IndexBusy when the lock exists; RepositoryUnwritable when it cannot be
        created or our state folder cannot be written.
        """
        try:
            claim = leftovers.claim(self._state, self._lock)
        except FileExistsError as exc:
            raise IndexBusy("another process holds index.lock") from exc
        except OSError as exc:
            raise RepositoryUnwritable(f"cannot write to the repository (lock the index): {exc}") from exc
        try:
            before = self._known
            index = self.current()
        except BaseException:
            leftovers.finish(claim, into=None)
            raise
        return HeldIndex(self, claim, index, changed=before != self._known)

    def _load(self, fd: int | None) -> None:
        """Read the index file open at `fd` (None: there is none yet) through our copy."""
        self._index = None
        self._known = None
        try:
            self._state.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._copy)
            if fd is not None:
                with open(self._copy, "wb") as out, os.fdopen(os.dup(fd), "rb") as src:
                    src.seek(0)
                    shutil.copyfileobj(src, out, 1 << 20)
            self._index = pygit2.Index(str(self._copy))
        except (OSError, pygit2.GitError) as exc:
            raise RepositoryUnwritable(f"cannot write to the repository (read the index): {exc}") from exc

    def _written(self, identity: IndexIdentity) -> None:
        """Our index is now the one in place, with this identity."""
        self._known = identity
        self._ours = identity


class HeldIndex:
    """`index.lock`, held by us; `index` is the index read under it."""

    def __init__(
        self, files: IndexFiles, claim: leftovers.Claim, index: pygit2.Index, *, changed: bool
    ) -> None:
        self._files = files
        self._claim = claim
        self.index = index
        self.changed = changed  # the index on disk is not the one `current()` gave before
        self._released = False
        self._next_fd: int | None = None

    def is_another_commits(self, tree_id: pygit2.Oid | None) -> bool:
        """True when the index in place is, by git's own record, another commit's than the
        one whose tree is `tree_id` (None: the empty tree of an unborn branch).

        `git switch`, `git checkout`, a fast-forward `git merge` or `git pull` write the
        new commit's index, release `index.lock`, and only then move HEAD (a `git switch
        -c` runs the reference-transaction hook in between). An index another process
        wrote less than CHECKOUT_WINDOW_S ago whose whole cache-tree (`mdbackup.git.
        cache_tree`) names another tree than HEAD's is such a checkout's tail: committing
        now would put the backup on the branch being left and our entries into the new
        branch's index. Otherwise (our own index, an older one, a cache-tree that a
        `git add` invalidated) nothing is claimed.
        """
        root = self._files.fresh_foreign_root()
        return root is not None and root != (tree_id if tree_id is not None else EMPTY_TREE)

    def write(self) -> str:
        """Write the changed index (our copy, `index.next`; fsynced with FSYNC_INDEX); returns its
        content id (the SHA-1 trailer). The index in place is unchanged until
        `put_in_place`."""
        try:
            # libgit2 writes index.next through index.next.lock: one left by a kill during
            # that write would fail every later write. It is ours (our state folder), and we
            # hold index.lock and the repository lock: no one else writes index.next.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self._files._copy}.lock")
            self.index.write()
            self._close_next()
            self._next_fd = os.open(self._files._copy, os.O_RDONLY | os.O_CLOEXEC)
            if FSYNC_INDEX:
                os.fsync(self._next_fd)
            trailer = _identity(self._next_fd).trailer
        except (OSError, pygit2.GitError) as exc:
            raise RepositoryUnwritable(f"cannot write to the repository (write the index): {exc}") from exc
        return trailer.hex()

    def note_completion(self, *, content_id: str, condition: dict[str, str]) -> None:
        """From now on a crash leaves a lock the next start resolves: the written index is
        put in place when `condition` holds (see `leftovers.clear_left_behind`)."""
        try:
            leftovers.note_completion(
                self._claim,
                source=self._files._copy,
                target=self._files._path,
                content_id=content_id,
                condition=condition,
            )
        except OSError as exc:
            raise RepositoryUnwritable(f"cannot write to the repository (mark the write): {exc}") from exc

    def put_in_place(self) -> None:
        """Rename the written index over the index (we hold the lock: the only writer),
        then release the lock."""
        self._released = True
        try:
            if self._next_fd is None:
                raise OSError("the new index was not written")
            os.rename(self._files._copy, self._files._path)
            identity = _identity(self._next_fd)  # after the rename: it changes the ctime
        except OSError as exc:
            self._files.forget()
            leftovers.finish(self._claim, into=None)
            raise RepositoryUnwritable(f"cannot write to the repository (replace the index): {exc}") from exc
        finally:
            self._close_next()
        leftovers.finish(self._claim, into=None)
        self._files._written(identity)

    def roll_back(self) -> None:
        """Remove the lock; the index in place was never changed. Idempotent."""
        self._close_next()
        if self._released:
            return
        self._released = True
        self._files.forget()  # our in-memory edits were not written
        leftovers.finish(self._claim, into=None)

    def _close_next(self) -> None:
        if self._next_fd is not None:
            os.close(self._next_fd)
            self._next_fd = None

    def __enter__(self) -> HeldIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.roll_back()


def clear_left_behind(repo: pygit2.Repository) -> list[leftovers.Cleared]:
    """At start (holding mdbackup's repository lock): finish or roll back what a killed
    process of ours left. A complete new index whose commit is on its branch is put in
    place (the commit happened; without it the user's next `git commit` would revert the
    backup); any other lock of ours is removed; git's are never touched."""

    def branch_points_at(condition: Mapping[str, str]) -> bool:
        ref = repo.references.get(condition.get("ref", ""))
        return ref is not None and str(ref.target) == condition.get("oid")

    git_dir = Path(repo.path).resolve()
    return leftovers.clear_left_behind(layout.state_dir(git_dir), condition_holds=branch_points_at)
