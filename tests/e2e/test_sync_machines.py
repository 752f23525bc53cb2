"""Sync across machines (issue 12), against the contract's "## Sync": two or three working
clones of one bare remote, a real daemon on each with `[sync] enabled = true`.

Harness: tests/support/sync.py. Scenarios that need one machine to be the merger make the
other machine's change first and keep the merger offline until then (its change committed
by `mdbackup --once` with push and sync off, as on a laptop without network): the merge is
then always the merger's, so ours/theirs and the merge commit's parents are known exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.invariants import git_text
from tests.support.sync import (
    STORE,
    Cluster,
    Converged,
    Machine,
    conflict_copies,
    conflict_pattern,
    is_ancestor,
    is_conflict_copy,
    merged_in,
    parents,
    read_blobs,
    status_lines,
    utc_stamp_near,
)
from tests.support.wait import wait_until

NOTE = f"{STORE}/n.md"


def text(changes: dict[int, str] | None = None, n: int = 30) -> str:
    """A note of `n` lines, `line i`, with some lines replaced."""
    changes = changes or {}
    plain = "of a note long enough to merge line by line"
    return "".join(changes.get(i, f"line {i} {plain}") + "\n" for i in range(n))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(**kw: object) -> Cluster:
        kw.setdefault("interval", 1)
        c = Cluster.create(tmp_path / f"cluster{len(made)}", **kw)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def wait_pushed(c: Cluster, m: Machine, *, timeout: float = 30.0) -> str:
    """Wait until the remote's head is `m`'s and holds every save `m` made since the last
    round; returns that commit (each ref read once a look)."""
    mine = {path: data for (name, path), data in c.ledger.saved.items() if name == m.name}

    def pushed() -> str | None:
        remote = c.remote_head()
        if remote is None or remote != m.head():
            return None
        files = c.remote_files(remote)
        return remote if all(files.get(p) == d for p, d in mine.items()) else None

    return wait_until(pushed, timeout=timeout, interval=0.05, message=lambda: f"{m.name}'s push\n{c.logs()}")


def merged_by_b(
    c: Cluster, a_edits: Callable[[Machine], None], b_edits: Callable[[Machine], None]
) -> tuple[str, str, Converged, dict[str, bytes]]:
    """b saves and commits offline; a saves and pushes; then b comes online and merges.
    Returns (b's local commit, a's pushed commit, the convergence, the converged store)."""
    a, b = c.machines
    b_edits(b)
    b.commit_locally()
    b_commit = b.head()
    assert b_commit is not None
    a.start()
    a_edits(a)
    a_commit = wait_pushed(c, a)
    b.start()
    done = c.wait_converged(timeout=60)
    files = c.remote_files(done.commit)
    assert c.check_round(done) == []
    return b_commit, a_commit, done, files


def copies_in(files: dict[str, bytes]) -> list[str]:
    return sorted(p for p in files if is_conflict_copy(p))


# -- both online -----------------------------------------------------------------------------


def test_edits_to_different_files_on_two_machines_converge(cluster) -> None:
    c = cluster(files={NOTE: text()})
    seed = c.remote_head()
    c.start()
    a, b = c.machines
    a.write(f"{STORE}/from-a.md", "written on a\n")
    b.write(f"{STORE}/from-b.md", "written on b\n")
    b.write(f"{STORE}/sub/deep.md", "a folder the remote does not have yet\n")
    done = c.wait_converged(timeout=60)
    files = c.remote_files(done.commit)
    assert files == {
        f"{STORE}/index.md": b"# notes\n",
        NOTE: text().encode(),
        f"{STORE}/from-a.md": b"written on a\n",
        f"{STORE}/from-b.md": b"written on b\n",
        f"{STORE}/sub/deep.md": b"a folder the remote does not have yet\n",
    }
    assert c.check_round(done) == []  # both machines' commits are in the remote's history
    assert seed is not None and is_ancestor(c.remote, seed, done.commit)
    assert git_text(c.remote, "show", f"{done.commit}:README.txt") == "outside the store\n"

    # each edits the other's note, and one deletes a file the other made: both arrive
    a.write(f"{STORE}/from-b.md", "b's note, edited on a\n")
    b.delete(f"{STORE}/from-a.md")
    b.write(NOTE, text({3: "line 3 edited on b"}))
    done = c.wait_converged(timeout=60)
    files = c.remote_files(done.commit)
    assert files[f"{STORE}/from-b.md"] == b"b's note, edited on a\n"
    assert f"{STORE}/from-a.md" not in files
    assert files[NOTE] == text({3: "line 3 edited on b"}).encode()
    assert copies_in(files) == []
    assert c.check_round(done) == []


def test_three_machines_editing_at_once_converge(cluster) -> None:
    """Each round all three save a note of their own and a different line of one shared note
    at once: line-level merges, no conflict copy, nothing lost."""
    c = cluster(machines=3, files={NOTE: text()})
    c.start()
    for r in range(3):
        for i, m in enumerate(c.machines):
            m.write(f"{STORE}/{m.name}-{r}.md", f"round {r} on {m.name}\n")
            lines = m.read(NOTE).decode().splitlines(keepends=True)
            lines[r * 9 + i * 3] = f"round {r}: line {r * 9 + i * 3} as {m.name} wrote it\n"
            m.write(NOTE, "".join(lines))
        done = c.wait_converged(timeout=90)
        assert c.check_round(done) == []
    files = c.remote_files(done.commit)
    assert copies_in(files) == []
    edited = {k: f"round {k // 9}: line {k} as m{k % 9 // 3} wrote it" for k in range(27) if k % 3 == 0}
    assert files[NOTE] == text(edited).encode()
    assert {p for p in files if p[-5:] in ("-0.md", "-1.md", "-2.md")} == {
        f"{STORE}/m{i}-{r}.md" for i in range(3) for r in range(3)
    }


# -- one merger ------------------------------------------------------------------------------


def test_the_same_note_edited_on_different_lines_merges_line_by_line(cluster) -> None:
    c = cluster(files={NOTE: text()})
    b_commit, a_commit, done, files = merged_by_b(
        c,
        a_edits=lambda a: a.write(NOTE, text({2: "line 2 as a wrote it"})),
        b_edits=lambda b: b.write(NOTE, text({25: "line 25 as b wrote it"})),
    )
    assert files[NOTE] == text({2: "line 2 as a wrote it", 25: "line 25 as b wrote it"}).encode()
    assert copies_in(files) == []
    assert parents(c.remote, done.commit) == [b_commit, a_commit]  # a merge commit, local first
    assert c.machines[1].status()["sync"]["conflicts"] == []


def test_overlapping_edits_keep_ours_at_the_path_and_theirs_as_a_committed_conflict_copy(cluster) -> None:
    c = cluster(files={NOTE: text()})
    started = time.time()
    ours, theirs = text({10: "line 10 as b wrote it"}), text({10: "line 10 as a wrote it"})
    b_commit, a_commit, done, files = merged_by_b(
        c, a_edits=lambda a: a.write(NOTE, theirs), b_edits=lambda b: b.write(NOTE, ours)
    )
    assert files[NOTE] == ours.encode()
    copies = copies_in(files)
    assert len(copies) == 1 and copies == conflict_copies(files, NOTE), copies
    copy = copies[0]
    assert files[copy] == theirs.encode()
    found = conflict_pattern(NOTE).match(copy)
    assert found is not None and found["who"] and utc_stamp_near(found["stamp"], since=started), copy
    # committed in the merge commit itself (local parent first), the same on both machines
    assert parents(c.remote, done.commit) == [b_commit, a_commit]
    for m in c.machines:
        assert m.read(copy) == theirs.encode() and m.read(NOTE) == ours.encode()
    b = c.machines[1]
    assert copy.rsplit("/", 1)[1] in str(b.status()["sync"]["conflicts"])
    assert b.daemon is not None and copy.rsplit("/", 1)[1] in b.daemon.log()
    assert all(b"<<<<<<<" not in data for data in files.values())


@pytest.mark.parametrize("deleted_on", ["theirs", "ours"])
def test_modify_delete_keeps_the_modified_file(cluster, deleted_on: str) -> None:
    c = cluster(files={NOTE: text()})
    modified = text({7: "line 7 changed"})

    def deletes(m: Machine) -> None:
        m.delete(NOTE)

    def modifies(m: Machine) -> None:
        m.write(NOTE, modified)

    a_edits, b_edits = (deletes, modifies) if deleted_on == "theirs" else (modifies, deletes)
    b_commit, a_commit, done, files = merged_by_b(c, a_edits=a_edits, b_edits=b_edits)
    assert files[NOTE] == modified.encode()
    assert copies_in(files) == []
    assert parents(c.remote, done.commit) == [b_commit, a_commit]


def test_both_added_keeps_both(cluster) -> None:
    c = cluster()
    new, same = f"{STORE}/new.md", f"{STORE}/same.md"

    def add(m: Machine) -> None:
        m.write(new, f"added on {m.name}\n")
        m.write(same, "the same words on both\n")

    b_commit, a_commit, done, files = merged_by_b(c, a_edits=add, b_edits=add)
    assert files[new] == b"added on m1\n"  # ours
    assert [files[p] for p in conflict_copies(files, new)] == [b"added on m0\n"]  # theirs beside it
    assert files[same] == b"the same words on both\n" and conflict_copies(files, same) == []
    assert parents(c.remote, done.commit) == [b_commit, a_commit]


@pytest.mark.parametrize("renamed_on", ["theirs", "ours"])
def test_rename_on_one_machine_and_edit_on_the_other_gives_the_edited_file_at_the_new_name(
    cluster, renamed_on: str
) -> None:
    c = cluster(files={NOTE: text()})
    target = f"{STORE}/renamed/n-moved.md"
    edited = text({12: "line 12 edited while the other machine renamed the note"})

    def renames(m: Machine) -> None:
        m.rename(NOTE, target)

    def edits(m: Machine) -> None:
        m.write(NOTE, edited)

    a_edits, b_edits = (renames, edits) if renamed_on == "theirs" else (edits, renames)
    b_commit, a_commit, done, files = merged_by_b(c, a_edits=a_edits, b_edits=b_edits)
    assert files.get(target) == edited.encode(), sorted(files)
    assert NOTE not in files
    assert copies_in(files) == []
    assert parents(c.remote, done.commit) == [b_commit, a_commit]


def test_a_deletion_that_looks_like_a_rename_onto_a_file_both_added_is_still_a_deletion(cluster) -> None:
    """a deletes x.md and adds y.md; b adds the same y.md and leaves x.md alone. x.md and y.md
    differ in one line, so libgit2's rename detection pairs a's deletion with its y.md (a
    rename/add conflict against b's y.md). Git merges this cleanly: x.md deleted (only a
    changed it), y.md once. Found by the sync soak (seed 7, round 114): a deleted conflict
    copy came back, and an identical file got a copy of itself."""
    c = cluster(files={f"{STORE}/x.md": "first line of x\n" + text(n=12)})
    same = "first line of y\n" + text(n=12)

    def a_edits(a: Machine) -> None:
        a.delete(f"{STORE}/x.md")
        a.write(f"{STORE}/y.md", same)

    b_commit, a_commit, done, files = merged_by_b(
        c, a_edits=a_edits, b_edits=lambda b: b.write(f"{STORE}/y.md", same)
    )
    assert f"{STORE}/x.md" not in files, "a's deletion was undone"
    assert files[f"{STORE}/y.md"] == same.encode()
    assert copies_in(files) == []
    tree = git_text(c.remote, "merge-tree", "--write-tree", b_commit, a_commit).split()[0]
    assert git_text(c.remote, "rev-parse", f"{done.commit}^{{tree}}").strip() == tree  # git's merge


def test_a_machine_offline_for_200_remote_commits_comes_back_and_converges(cluster) -> None:
    c = cluster(files={NOTE: text(), f"{STORE}/old.md": "to be renamed\n", f"{STORE}/gone.md": "deleted\n"})
    a, b = c.machines
    a.start()
    changes: list[dict[str, bytes | str | None]] = []
    for k in range(200):
        change: dict[str, bytes | str | None] = {f"{STORE}/bulk/b{k % 40}.md": f"remote commit {k}\n"}
        if k == 50:
            change[f"{STORE}/gone.md"] = None
        if k == 100:
            change[NOTE] = text({28: "line 28 changed by the remote"})
        if k == 150:
            change[f"{STORE}/old.md"] = None
            change[f"{STORE}/moved/old.md"] = "to be renamed\n"
        changes.append(change)
    remote = c.push_commits(changes)
    # offline meanwhile: b saved two things (one a note the remote changed too)
    b.write(f"{STORE}/written-offline.md", "saved while offline\n")
    b.write(NOTE, text({1: "line 1 changed offline"}))
    b.start()
    done = c.wait_converged(timeout=120)
    files = c.remote_files(done.commit)
    assert is_ancestor(c.remote, remote, done.commit)
    assert files[NOTE] == text({1: "line 1 changed offline", 28: "line 28 changed by the remote"}).encode()
    assert files[f"{STORE}/written-offline.md"] == b"saved while offline\n"
    assert files[f"{STORE}/moved/old.md"] == b"to be renamed\n"
    assert f"{STORE}/gone.md" not in files and f"{STORE}/old.md" not in files
    assert {files[f"{STORE}/bulk/b{k}.md"] for k in range(40)} == {
        f"remote commit {k}\n".encode() for k in range(160, 200)
    }
    assert c.check_round(done) == []


def test_saves_racing_the_updates_of_the_same_note_are_never_lost(cluster) -> None:
    """An editor on b saves the note every few milliseconds without reloading it (each save
    is b's buffer: the base with b's line 5) while a's edits of line 25 arrive and are
    written into b's working tree under the editor's feet. No save is clobbered: b's last
    save ends at the path, merged in, or as a conflict copy; every version a saved is in the
    remote's history (b's next save of its stale buffer may take a's line out again: that
    is b's save, committed as such)."""
    c = cluster(files={NOTE: text()})
    c.start()
    a, b = c.machines
    stop = threading.Event()
    saves = 0

    def editor() -> None:
        nonlocal saves
        while not stop.is_set():
            saves += 1
            b.write(NOTE, text({5: f"line 5, save {saves} of b's editor"}), atomic=saves % 2 == 0)
            time.sleep(0.005)

    a_saves = []
    thread = threading.Thread(target=editor, name="b's editor")
    thread.start()
    try:
        for k in range(5):
            lines = a.read(NOTE).decode().splitlines(keepends=True)
            lines[25] = f"line 25, edit {k} on a\n"
            a.write(NOTE, "".join(lines))
            a_saves.append("".join(lines).encode())
            wait_until(  # b merged it (b's head read once), under the editor's feet
                lambda k=k: git_text(b.repo, "log", f"-Sedit {k} on a", "--format=%H", b.head() or "HEAD"),
                timeout=30,
                message=lambda: f"a's edit merged on b\n{c.logs()}",
            )
    finally:
        stop.set()
        thread.join(timeout=10)
    done = c.wait_converged(timeout=60)
    files = c.remote_files(done.commit)
    b_last = c.ledger.saved[("m1", NOTE)]
    assert b_last is not None and saves > 50
    merges = git_text(c.remote, "rev-list", "--merges", done.commit).split()
    assert len(merges) >= 5, "a's edits were not merged into b's saves: no race was exercised"
    places = [p for p in (NOTE, *conflict_copies(files, NOTE)) if p in files]
    assert any(files[p] == b_last or merged_in(files[p], text().encode(), b_last) for p in places), places
    raw = git_text(c.remote, "log", "-m", "--raw", "--no-abbrev", "--format=", done.commit, "--", NOTE)
    versions = read_blobs(c.remote, (line.split()[3] for line in raw.splitlines() if line.startswith(":")))
    for k, saved in enumerate(a_saves):
        assert saved in versions.values(), f"a's save {k} is not in the remote's history"
    assert all(b"<<<<<<<" not in data for data in files.values())
    for key in [key for key in c.ledger.saved if key[0] == a.name]:  # checked in history above
        del c.ledger.saved[key]
    assert c.check_round(done) == []  # b's saves, and every commit of both in the remote


def test_a_fetch_head_lock_left_by_a_killed_git_fetch_never_stops_sync_silently(cluster) -> None:
    """A `git fetch` killed long ago left `.git/FETCH_HEAD.lock`: git's lock, not ours to delete.
    Sync must either still bring the remote's commits in (the remote-tracking ref says what
    was fetched) or say `failed` naming the lock; never idle "behind" with no error while
    every push is refused. (A kill inside our own fetch: found by the sync soak, seed 7
    round 48; that leftover is now named in the fetch's marker and removed at start.)"""
    c = cluster(machines=1, files={NOTE: text()})
    (m,) = c.machines
    lock = m.repo / ".git" / "FETCH_HEAD.lock"
    lock.write_text("")
    c.push_commits([{f"{STORE}/remote.md": "from elsewhere\n"}])
    m.write(f"{STORE}/local.md", "a local backup\n")
    m.start()

    def outcome() -> str | None:
        if c.convergence()[0] is not None:
            return "converged"
        sync = m.status()["sync"]
        if sync["status"] == "failed" and "FETCH_HEAD" in (sync["last_error"] or ""):
            return "failed, naming the lock"
        return None

    found = wait_until(
        outcome,
        timeout=30,
        interval=0.2,
        message=lambda: f"sync to go on or say why\n{c.logs()}",
    )
    assert lock.exists()  # never removed: not ours
    if found == "converged":
        done = c.wait_converged(timeout=30)
        assert c.remote_files(done.commit)[f"{STORE}/remote.md"] == b"from elsewhere\n"
        assert c.check_round(done) == []


# -- outside the store ---------------------------------------------------------------------

USER_EDIT = b"the user's own unsaved edit of README.txt on this machine\n"


def test_a_user_change_outside_the_store_that_the_remote_also_changed_blocks_the_merge(cluster) -> None:
    c = cluster(machines=1, files={NOTE: text()})
    (m,) = c.machines
    readme = m.path("README.txt")
    readme.write_bytes(USER_EDIT)
    index_before = git_text(m.repo, "ls-files", "-s", "--", "README.txt")
    theirs = {"README.txt": "the remote's README\n", f"{STORE}/remote.md": "from elsewhere\n"}
    remote = c.push_commits([theirs])
    m.write(f"{STORE}/local.md", "a local backup\n")
    m.start()

    def blocked() -> dict | None:
        sync = m.status()["sync"]
        return sync if sync["status"] == "blocked" else None

    sync = wait_until(blocked, timeout=30, interval=0.2, message=lambda: f"blocked\n{m.log_tail()}")
    assert sync["blocked_by"] == "README.txt", sync
    # local backups go on: the local save is committed, and so is one made while blocked
    m.write(f"{STORE}/while-blocked.md", "saved while the merge waits\n")

    def backed_up() -> str | None:
        head = m.head()
        if head is None:
            return None
        names = git_text(m.repo, "ls-tree", "-r", "--name-only", head, "--", STORE).split()
        return head if {f"{STORE}/local.md", f"{STORE}/while-blocked.md"} <= set(names) else None

    head = wait_until(backed_up, timeout=30, message=lambda: f"local backups\n{m.log_tail()}")
    assert not is_ancestor(m.repo, remote, head)  # not merged
    assert readme.read_bytes() == USER_EDIT  # never overwritten
    assert git_text(m.repo, "ls-files", "-s", "--", "README.txt") == index_before
    assert not (m.path(f"{STORE}/remote.md")).exists()
    assert m.status()["sync"]["blocked_by"] == "README.txt"

    # `check` says so and changes nothing
    before = (m.head(), readme.read_bytes(), status_lines(m.repo))
    checked = m.cli("check")
    assert "README.txt" in checked.out + checked.err, checked
    assert (m.head(), readme.read_bytes(), status_lines(m.repo)) == before

    # the user drops their edit: the merge goes on by itself
    git_text(m.repo, "checkout", "--", "README.txt")
    done = c.wait_converged(timeout=60)
    files = c.remote_files(done.commit)
    assert files[f"{STORE}/remote.md"] == b"from elsewhere\n"
    assert files[f"{STORE}/while-blocked.md"] == b"saved while the merge waits\n"
    assert readme.read_bytes() == b"the remote's README\n"
    assert c.check_round(done) == []


def test_a_committed_user_change_outside_the_store_that_conflicts_keeps_both_versions(cluster) -> None:
    """The user committed their README by hand (no uncommitted change: nothing blocks) and the
    remote changed the same line: the merge keeps theirs beside ours, never markers."""
    c = cluster(machines=1, files={NOTE: text()})
    (m,) = c.machines
    c.push_commits([{"README.txt": "the remote's README\n"}])
    m.path("README.txt").write_text("the user's README, committed by hand\n")
    git_text(m.repo, "commit", "-q", "-m", "the user's own commit", "--", "README.txt")
    mine = m.head()
    m.write(f"{STORE}/local.md", "a local backup\n")
    m.start()
    done = c.wait_converged(timeout=60)
    assert mine is not None and is_ancestor(c.remote, mine, done.commit)  # the user's commit kept
    top = {
        name: git_text(c.remote, "show", f"{done.commit}:{name}").encode()
        for name in git_text(c.remote, "ls-tree", "--name-only", done.commit).split()
        if name not in (STORE, "src")
    }
    assert top["README.txt"] == b"the user's README, committed by hand\n"
    copies = conflict_copies(top, "README.txt")
    assert [top[p] for p in copies] == [b"the remote's README\n"], sorted(top)
    assert m.path("README.txt").read_bytes() == top["README.txt"]
    assert m.path(copies[0]).read_bytes() == b"the remote's README\n"
    assert c.check_round(done) == []


def test_the_users_staged_changes_stay_staged_through_a_merge_and_a_staged_clash_blocks(cluster) -> None:
    """A staged new file the remote does not touch stays staged (same blob, not committed)
    through a merge; a staged edit of a file the remote changed blocks the merge, and its
    index entry and working-tree file stay the user's."""
    c = cluster(machines=1, files={NOTE: text()})
    (m,) = c.machines
    staged = m.path("src/staged.txt")
    staged.parent.mkdir()
    staged.write_text("the user's staged file\n")
    git_text(m.repo, "add", "src/staged.txt")
    staged_entry = git_text(m.repo, "ls-files", "-s", "--", "src/staged.txt")
    c.push_commits([{f"{STORE}/remote.md": "from elsewhere\n", "other.txt": "a new file outside\n"}])
    m.write(f"{STORE}/local.md", "a local backup\n")
    m.start()
    done = c.wait_converged(timeout=60)
    assert git_text(m.repo, "ls-files", "-s", "--", "src/staged.txt") == staged_entry
    assert git_text(m.repo, "diff", "--cached", "--name-only") == "src/staged.txt\n"
    assert git_text(c.remote, "ls-tree", "--name-only", done.commit, "--", "src/") == ""
    assert m.path("other.txt").read_text() == "a new file outside\n"
    assert c.check_round(done) == []

    m.path("other.txt").write_text("the user's staged edit\n")
    git_text(m.repo, "add", "other.txt")
    other_entry = git_text(m.repo, "ls-files", "-s", "--", "other.txt")
    c.push_commits([{"other.txt": "the remote's edit\n"}])
    m.write(f"{STORE}/later.md", "saved while the merge waits\n")

    def blocked() -> dict | None:
        sync = m.status()["sync"]
        return sync if sync["status"] == "blocked" else None

    sync = wait_until(blocked, timeout=30, interval=0.2, message=lambda: f"blocked\n{m.log_tail()}")
    assert sync["blocked_by"] == "other.txt", sync
    assert git_text(m.repo, "ls-files", "-s", "--", "other.txt") == other_entry
    assert m.path("other.txt").read_text() == "the user's staged edit\n"
    assert git_text(m.repo, "ls-files", "-s", "--", "src/staged.txt") == staged_entry


# -- over SSH ----------------------------------------------------------------------------------


def test_two_machines_sync_over_ssh(cluster, ssh_server) -> None:
    auth = f'[auth]\nssh_key = "{ssh_server.client_key}"\n'
    c = cluster(remote=ssh_server.bare, url=ssh_server.url, extra=auth, files={NOTE: text()})
    for m in c.machines:
        ssh_server.write_known_hosts(m.home / ".ssh" / "known_hosts")
    c.start()
    a, b = c.machines
    a.write(f"{STORE}/over-ssh-a.md", "from a over ssh\n")
    b.write(f"{STORE}/over-ssh-b.md", "from b over ssh\n")
    a.write(NOTE, text({1: "line 1 from a"}))
    done = c.wait_converged(timeout=90)
    files = c.remote_files(done.commit)
    assert files[f"{STORE}/over-ssh-a.md"] == b"from a over ssh\n"
    assert files[f"{STORE}/over-ssh-b.md"] == b"from b over ssh\n"
    assert files[NOTE] == text({1: "line 1 from a"}).encode()
    assert c.check_round(done) == []
