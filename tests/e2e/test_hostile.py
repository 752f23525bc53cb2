"""Hostile and odd input: strange file names, files that change or vanish under the
read, unreadable files, links, FIFOs and sockets, a vanishing store folder, a damaged
state database, a read-only repository and a full disk.

Real repositories in temp folders, inspected with the git CLI (bytes, so names that
are not UTF-8 survive); the CLI as a user runs it; the real daemon where a running
daemon matters. Permission cases run the CLI as `nobody` through `setpriv` (root
ignores file modes); the full disk is a 1 MiB tmpfs mounted for the test.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

import mdbackup.git.snapshot as snapshot_module
from mdbackup.git.commit import Committer
from mdbackup.git.repo import open_repository
from mdbackup.git.scan import changed_paths
from tests.support.cli import PYTHONPATH, ROOT, Result, config_file, mdbackup
from tests.support.daemon import FAST, Daemon
from tests.support.git import commit_count, init_repo
from tests.support.wait import wait_until

SIG = pygit2.Signature("mdbackup test", "t@example.com")


# -- helpers ----------------------------------------------------------------------------


def rgit(repo: Path, *args: str, check: bool = True) -> bytes:
    """The git CLI on `repo`, bytes out; works on repositories owned by another user."""
    result = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(repo), *args],
        capture_output=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {args} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def tree_files(repo: Path, ref: str = "HEAD") -> dict[bytes, tuple[str, bytes]]:
    """Raw path -> (mode, content) of every blob and link in `ref`'s tree."""
    if not rgit(repo, "rev-parse", "--verify", "-q", ref, check=False).strip():
        return {}
    files: dict[bytes, tuple[str, bytes]] = {}
    for record in rgit(repo, "ls-tree", "-r", "-z", ref).split(b"\0"):
        if not record:
            continue
        meta, name = record.split(b"\t", 1)
        mode, _kind, oid = meta.split()
        files[name] = (mode.decode(), rgit(repo, "cat-file", "blob", oid.decode()))
    return files


def head_content(repo: Path, path: bytes) -> bytes | None:
    entry = tree_files(repo).get(path)
    return None if entry is None else entry[1]


def all_objects(repo: Path) -> bytes:
    return rgit(repo, "cat-file", "--batch-all-objects", "--batch")


def porcelain(repo: Path, *paths: str) -> bytes:
    return rgit(repo, "status", "--porcelain", "-z", "--", *paths)


def run_cli(*args: str, user: list[str] | None = None, **kw) -> Result:
    """`mdbackup ARGS` (see `tests.support.cli.mdbackup`), as `user` (a setpriv prefix) when
    given; output that is not UTF-8 is decoded with backslash escapes."""
    return mdbackup(*args, prefix=user or (), errors="backslashreplace", **kw)


def once(repo: Path, home: Path, *extra: str, env=None, user=None, timeout: float = 60.0) -> Result:
    return run_cli(
        "run",
        "--once",
        "--repo",
        str(repo),
        "--store",
        "notes",
        "--log-format",
        "json",
        *extra,
        cwd=repo,
        home=home,
        env=env,
        user=user,
        timeout=timeout,
    )


def status_json(repo: Path, home: Path, cfg: Path, *, user=None) -> tuple[int, dict]:
    result = run_cli(
        "status", "--json", "--all", cwd=repo, home=home, env={"MDBACKUP_CONFIG": str(cfg)}, user=user
    )
    assert "Traceback" not in result.err, result.err
    return result.code, json.loads(result.out)


def commit(repo_path: Path, paths, *, max_file_size: int = 10_000_000, committer=None):
    committer = committer or Committer(open_repository(repo_path))
    return committer.commit_paths(
        list(paths), message=lambda changes: "backup", author=SIG, committer=SIG, max_file_size=max_file_size
    )


# -- odd names ----------------------------------------------------------------------------

DEEP = b"/".join(b"d%02d" % i for i in range(100)) + b"/deep.md"  # 100 folders deep
ODD_NAMES: tuple[bytes, ...] = (
    b"new\nline.md",
    b"back\\slash.md",
    b"quo\"te's.md",
    b"-leading-dash.md",
    b"--help.md",
    b"caf\xe9 latin-1.md",  # not UTF-8
    b"\xff\xfe.md",  # not UTF-8 at all
    b"x" * 252 + b".md",  # 255 bytes, the longest name Linux allows
    "ü".encode() * 126 + b".md",  # 255 bytes of UTF-8
    b" spaces around .md",
    b"tab\there.md",
    DEEP,
)


def write_raw(store: Path, name: bytes, data: bytes) -> bytes:
    full = os.fsencode(store) + b"/" + name
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    return full


def test_odd_names_committed_modified_deleted_and_listed_by_status(
    repo: Path, home: Path, store: Path
) -> None:
    for name in ODD_NAMES:
        write_raw(store, name, b"content of " + name + b"\n")
    result = once(repo, home)
    assert result.code == 0, result.err
    files = tree_files(repo)
    for name in ODD_NAMES:
        assert files.get(b"notes/" + name) == ("100644", b"content of " + name + b"\n"), name
    assert porcelain(repo, "notes") == b""
    # the subject names the files, undecodable bytes written as \xNN (a valid UTF-8 message)
    subject = rgit(repo, "log", "-1", "--format=%s").decode("utf-8")
    assert subject.startswith("backup: 12 files:")

    # nothing differs any more: the scan must not see the odd names as changed again
    count = commit_count(repo)
    assert once(repo, home).code == 0
    assert commit_count(repo) == count

    # status --json lists them (escaped in JSON; Python gets the fsdecoded names back)
    cfg = config_file(home, repo)
    code, doc = status_json(repo, home, cfg)
    assert code == 0 and doc["counts"]["success"] == len(ODD_NAMES)
    assert {row["path"] for row in doc["paths"]} == {os.fsdecode(b"notes/" + name) for name in ODD_NAMES}

    # modification and deletion of names that are not UTF-8, and of the deep one
    write_raw(store, b"caf\xe9 latin-1.md", b"changed\n")
    os.unlink(os.fsencode(store) + b"/\xff\xfe.md")
    os.unlink(os.fsencode(store) + b"/" + DEEP)
    result = once(repo, home)
    assert result.code == 0, result.err
    files = tree_files(repo)
    assert files[b"notes/caf\xe9 latin-1.md"][1] == b"changed\n"
    assert b"notes/\xff\xfe.md" not in files and b"notes/" + DEEP not in files
    code, doc = status_json(repo, home, cfg)  # deleted paths stay listed as backed up
    assert code == 0 and doc["counts"] == {
        "pending": 0,
        "queued": 0,
        "success": len(ODD_NAMES),
        "failed": 0,
        "disabled": 0,
    }


def test_failed_path_with_undecodable_name_round_trips_through_the_database(
    repo: Path, home: Path, store: Path
) -> None:
    cfg = config_file(home, repo, "max_file_size = 10\n")
    write_raw(store, b"big \xe9.md", b"x" * 100)
    result = run_cli("--once", cwd=repo, home=home, env={"MDBACKUP_CONFIG": str(cfg)})
    assert result.code == 1
    code, doc = status_json(repo, home, cfg)
    assert code == 1
    (row,) = doc["paths"]
    assert row["path"] == os.fsdecode(b"notes/big \xe9.md") and row["status"] == "failed"
    assert "max_file_size" in row["last_error"]
    # retry makes it pending again, and the next pass commits it once it fits
    assert run_cli("retry", cwd=repo, home=home, env={"MDBACKUP_CONFIG": str(cfg)}).code == 0
    write_raw(store, b"big \xe9.md", b"small\n")
    assert run_cli("--once", cwd=repo, home=home, env={"MDBACKUP_CONFIG": str(cfg)}).code == 0
    assert head_content(repo, b"notes/big \xe9.md") == b"small\n"
    assert status_json(repo, home, cfg)[1]["counts"]["failed"] == 0


def test_status_text_with_an_undecodable_name_on_a_strict_stdout(repo: Path, home: Path, store: Path) -> None:
    write_raw(store, b"caf\xe9.md", b"x\n")
    assert once(repo, home).code == 0
    cfg = config_file(home, repo)
    result = run_cli(
        "status", "--all", cwd=repo, home=home, env={"MDBACKUP_CONFIG": str(cfg), "PYTHONIOENCODING": "utf-8"}
    )
    assert result.code == 0, result.err
    assert "caf" in result.out


def test_odd_names_with_the_running_daemon(daemon, repo: Path, home: Path, store: Path) -> None:
    d = daemon().start()
    for name in ODD_NAMES:
        write_raw(store, name, b"live " + name + b"\n")

    def all_committed() -> bool:
        files = tree_files(repo)
        return all(files.get(b"notes/" + n, ("", b""))[1] == b"live " + n + b"\n" for n in ODD_NAMES)

    wait_until(all_committed, timeout=20, message="every odd name committed by the daemon")

    def settled() -> dict | None:  # late events may make a path pending again for a moment
        code, doc = status_json(repo, home, d.config_path)
        assert code == 0 and doc["daemon"]["running"] is True and doc["counts"]["failed"] == 0
        return doc if doc["counts"]["pending"] == doc["counts"]["queued"] == 0 else None

    doc = wait_until(settled, timeout=15, interval=0.2, message="nothing pending")
    assert {row["path"] for row in doc["paths"]} == {os.fsdecode(b"notes/" + name) for name in ODD_NAMES}
    os.unlink(os.fsencode(store) + b"/caf\xe9 latin-1.md")
    wait_until(
        lambda: b"notes/caf\xe9 latin-1.md" not in tree_files(repo),
        timeout=20,
        message="deletion of the latin-1 name",
    )
    assert d.stop() == 0
    assert "Traceback" not in d.log()


# -- files that change under the read -----------------------------------------------------


def test_file_deleted_between_event_and_commit(
    repo: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (store / "tracked.md").write_text("tracked\n")
    (store / "keep.md").write_text("keep\n")
    commit(repo, ["notes/tracked.md", "notes/keep.md"])
    (store / "tracked.md").write_text("edited, then deleted before the read\n")
    (store / "new.md").write_text("created, then deleted before the read\n")
    real = snapshot_module._read_regular

    def deleted_first(full: str, limit: int, **kw):
        os.unlink(full)  # gone after the lstat, before the read
        return real(full, limit, **kw)

    monkeypatch.setattr(snapshot_module, "_read_regular", deleted_first)
    result = commit(repo, ["notes/tracked.md", "notes/new.md"])
    assert {(c.path, c.kind) for c in result.changes} == {("notes/tracked.md", "deleted")}
    assert result.unchanged == ("notes/new.md",) and not result.failed
    files = tree_files(repo)
    assert b"notes/tracked.md" not in files and b"notes/new.md" not in files
    assert files[b"notes/keep.md"][1] == b"keep\n"
    assert porcelain(repo, "notes") == b""


def test_file_deleted_after_its_event_with_the_daemon(daemon, repo: Path, store: Path) -> None:
    d = daemon("[watch]\ndebounce = 1.0\nmax_delay = 5.0\n").start()
    (store / "old.md").write_text("old\n")
    wait_until(lambda: head_content(repo, b"notes/old.md") == b"old\n", timeout=15)
    head = rgit(repo, "rev-parse", "HEAD")
    (store / "flash.md").write_text("here for a moment\n")  # an event, then gone
    (store / "flash.md").unlink()
    (store / "old.md").unlink()
    wait_until(
        lambda: head_content(repo, b"notes/old.md") is None, timeout=15, message="the deletion committed"
    )
    assert b"notes/flash.md" not in tree_files(repo)
    assert rgit(repo, "rev-list", "--count", f"{head.decode().strip()}..HEAD").strip() == b"1"

    def settled() -> bool:
        code, doc = status_json(repo, d.home, d.config_path)
        assert code == 0 and doc["counts"]["failed"] == 0
        return doc["counts"]["pending"] == doc["counts"]["queued"] == 0

    wait_until(settled, timeout=15, interval=0.2, message="nothing pending")
    assert d.stop() == 0


def test_file_growing_while_read_commits_a_snapshot_then_the_rest(
    repo: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = store / "grow.md"
    path.write_bytes(b"start\n")
    real = snapshot_module._read_regular

    def grows_after_read(full: str, limit: int, **kw):
        data = real(full, limit, **kw)
        with open(full, "ab") as f:
            f.write(b"appended while hashing\n")
        return data

    monkeypatch.setattr(snapshot_module, "_read_regular", grows_after_read)
    committer = Committer(open_repository(repo))
    commit(repo, ["notes/grow.md"], committer=committer)
    monkeypatch.undo()
    committed = head_content(repo, b"notes/grow.md") or b""
    final = path.read_bytes()
    # A file that keeps changing under the read is read again, and at the last attempt
    # committed as read: a snapshot, a prefix of what is there now.
    assert committed.startswith(b"start\n") and final.startswith(committed) and final != committed
    # the index holds what was committed, so git and the scan both see the rest as a change
    assert porcelain(repo, "notes/grow.md").startswith(b" M")
    found = changed_paths(
        committer.repo, store_prefix="notes", wants=lambda p: True, wants_dir=lambda p: True
    )
    assert found.changed == ("notes/grow.md",)
    commit(repo, ["notes/grow.md"], committer=committer)
    assert head_content(repo, b"notes/grow.md") == final
    assert porcelain(repo, "notes") == b""


def test_file_appended_concurrently_every_commit_is_a_prefix_nothing_lost(repo: Path, store: Path) -> None:
    path = store / "log.md"
    path.write_bytes(b"")
    stop = threading.Event()

    def writer() -> None:
        n = 0
        with open(path, "ab", buffering=0) as f:
            while not stop.is_set() and n < 20_000:
                f.write(b"line %06d ........................................\n" % n)
                n += 1
                if n % 50 == 0:
                    time.sleep(0.001)

    thread = threading.Thread(target=writer)
    committer = Committer(open_repository(repo))
    snapshots: list[bytes] = []
    thread.start()
    try:
        for _ in range(15):
            result = commit(repo, ["notes/log.md"], committer=committer, max_file_size=10**9)
            assert not result.failed, result.failed
            if result.commit_id:
                snapshots.append(head_content(repo, b"notes/log.md") or b"")
    finally:
        stop.set()
        thread.join()
    final = path.read_bytes()
    assert snapshots, "no commit was made while the file grew"
    for snap in snapshots:
        assert final.startswith(snap)
    # once it stops growing, the next pass commits the rest
    commit(repo, ["notes/log.md"], committer=committer, max_file_size=10**9)
    assert head_content(repo, b"notes/log.md") == final
    assert porcelain(repo, "notes") == b""


def test_file_growing_during_once_is_complete_after_the_next_once(
    repo: Path, home: Path, store: Path
) -> None:
    path = store / "journal.md"
    path.write_bytes(b"")
    stop = threading.Event()

    def writer() -> None:
        with open(path, "ab", buffering=0) as f:
            for n in range(100_000):
                if stop.is_set():
                    return
                f.write(b"entry %06d\n" % n)
                time.sleep(0.0005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = once(repo, home)
    finally:
        stop.set()
        thread.join()
    assert result.code == 0, result.err
    final = path.read_bytes()
    assert final.startswith(head_content(repo, b"notes/journal.md") or b"")
    assert once(repo, home).code == 0
    assert head_content(repo, b"notes/journal.md") == final


def test_file_replaced_by_a_link_under_the_read_is_committed_as_the_link(
    repo: Path, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SWAPPED-IN-SECRET\n")
    (store / "a.md").write_text("plain\n")
    real = snapshot_module._read_regular
    swapped = []

    def swap_first(full: str, limit: int, **kw):
        if not swapped:
            swapped.append(full)
            os.unlink(full)
            os.symlink(secret, full)
        return real(full, limit, **kw)

    monkeypatch.setattr(snapshot_module, "_read_regular", swap_first)
    result = commit(repo, ["notes/a.md"])
    assert swapped and not result.failed
    assert tree_files(repo)[b"notes/a.md"] == ("120000", os.fsencode(secret))
    assert b"SWAPPED-IN-SECRET" not in all_objects(repo)


def test_file_replaced_by_a_folder_under_the_read(
    repo: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (store / "x").write_text("a file first\n")
    real = snapshot_module._read_regular

    def becomes_folder(full: str, limit: int, **kw):
        data = real(full, limit, **kw)
        if full.endswith("/notes/x"):
            os.unlink(full)
            os.mkdir(full)
            with open(os.path.join(full, "a.md"), "w") as f:
                f.write("inside\n")
        return data

    monkeypatch.setattr(snapshot_module, "_read_regular", becomes_folder)
    result = commit(repo, ["notes/x", "notes/x/a.md"])
    # The commit sees that x changed since it was read and reads it again (a folder now),
    # or, if it kept changing, leaves it failed for the retry: never a file and a folder.
    assert "notes/x" in result.unchanged or "will retry" in result.failed.get("notes/x", "")
    files = tree_files(repo)
    assert files[b"notes/x/a.md"][1] == b"inside\n" and b"notes/x" not in files
    monkeypatch.undo()
    assert commit(repo, ["notes/x"]).unchanged == ("notes/x",)  # the retry: a folder now


def test_git_filters_still_apply_to_files_we_read_ourselves(repo: Path, store: Path) -> None:
    """Files are read by mdbackup unless a filter applies; then libgit2 filters them."""
    (store / "plain.md").write_bytes(b"crlf\r\nkept\r\n")
    commit(repo, ["notes/plain.md"])
    assert head_content(repo, b"notes/plain.md") == b"crlf\r\nkept\r\n"
    rgit(repo, "config", "core.autocrlf", "input")
    (store / "filtered.md").write_bytes(b"crlf\r\nnormalized\r\n")
    (store / ".gitattributes").write_bytes(b"*.txt.md -text\n")
    (store / "binary.txt.md").write_bytes(b"left\r\nalone\r\n")
    result = commit(repo, ["notes/filtered.md", "notes/binary.txt.md"])
    assert not result.failed
    assert head_content(repo, b"notes/filtered.md") == b"crlf\nnormalized\n"
    assert head_content(repo, b"notes/binary.txt.md") == b"left\r\nalone\r\n"
    assert porcelain(repo, "notes/filtered.md", "notes/binary.txt.md") == b""


# -- links, FIFOs, sockets, empty and oversized files ----------------------------------------


def test_links_are_committed_as_links_and_never_followed(repo: Path, home: Path, store: Path) -> None:
    passwd = Path("/etc/passwd").read_bytes().splitlines()[0]
    os.symlink("/etc/passwd", store / "passwd.md")
    os.symlink("loop.md", store / "loop.md")  # points at itself
    os.symlink("pong.md", store / "ping.md")
    os.symlink("ping.md", store / "pong.md")
    os.symlink("/etc", store / "folder.md")
    os.symlink("nowhere.md", store / "dangling.md")
    (store / "real.md").write_text("real\n")
    result = once(repo, home, timeout=30)
    assert result.code == 0, result.err
    files = tree_files(repo)
    assert files[b"notes/passwd.md"] == ("120000", b"/etc/passwd")
    assert files[b"notes/loop.md"] == ("120000", b"loop.md")
    assert files[b"notes/ping.md"] == ("120000", b"pong.md")
    assert files[b"notes/pong.md"] == ("120000", b"ping.md")
    assert files[b"notes/folder.md"] == ("120000", b"/etc")
    assert files[b"notes/dangling.md"] == ("120000", b"nowhere.md")
    assert files[b"notes/real.md"] == ("100644", b"real\n")
    assert passwd not in all_objects(repo)
    # a link retargeted is a modification; no second commit when nothing changed
    os.unlink(store / "loop.md")
    os.symlink("elsewhere.md", store / "loop.md")
    assert once(repo, home).code == 0
    assert tree_files(repo)[b"notes/loop.md"] == ("120000", b"elsewhere.md")
    count = commit_count(repo)
    assert once(repo, home).code == 0 and commit_count(repo) == count


@pytest.fixture
def unix_socket(store: Path) -> Iterator[Path]:
    path = store / "socket.md"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)
    yield path
    sock.close()


def test_fifo_and_socket_are_skipped_and_never_block(
    repo: Path, home: Path, store: Path, unix_socket: Path
) -> None:
    os.mkfifo(store / "pipe.md")
    (store / "real.md").write_text("real\n")
    started = time.monotonic()
    result = once(repo, home, timeout=30)
    assert result.code == 0, result.err
    assert time.monotonic() - started < 20
    files = tree_files(repo)
    assert set(files) == {b"README.txt", b"notes/real.md"}
    cfg = config_file(home, repo)
    code, doc = status_json(repo, home, cfg)
    assert code == 0 and doc["counts"]["failed"] == 0 and doc["counts"]["pending"] == 0


def test_paths_that_are_fifos_or_sockets_given_to_the_committer(
    repo: Path, store: Path, unix_socket: Path
) -> None:
    (store / "was-a-file.md").write_text("committed\n")
    commit(repo, ["notes/was-a-file.md"])
    (store / "was-a-file.md").unlink()
    os.mkfifo(store / "was-a-file.md")
    os.mkfifo(store / "pipe.md")
    result = commit(repo, ["notes/pipe.md", "notes/socket.md", "notes/was-a-file.md"])
    assert set(result.skipped) == {"notes/pipe.md", "notes/socket.md"}
    assert "not a regular file" in result.failed["notes/was-a-file.md"]
    assert tree_files(repo)[b"notes/was-a-file.md"][1] == b"committed\n"


def test_fifo_swapped_in_under_the_read_does_not_block(
    repo: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (store / "a.md").write_text("plain\n")
    real = snapshot_module._read_regular

    def swap(full: str, limit: int, **kw):
        if os.path.isfile(full):
            os.unlink(full)
            os.mkfifo(full)
        return real(full, limit, **kw)

    monkeypatch.setattr(snapshot_module, "_read_regular", swap)
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(commit(repo, ["notes/a.md"])), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the commit blocked on a FIFO"
    assert outcome[0].skipped == ("notes/a.md",)


def test_fifo_and_socket_with_the_running_daemon(daemon, repo: Path, store: Path, unix_socket: Path) -> None:
    d = daemon().start()
    os.mkfifo(store / "pipe.md")
    (store / "a.md").write_text("after the fifo\n")
    wait_until(
        lambda: head_content(repo, b"notes/a.md") == b"after the fifo\n",
        timeout=15,
        message="a file written after a FIFO appeared",
    )
    assert set(tree_files(repo)) == {b"README.txt", b"notes/a.md"}
    assert d.stop(timeout=25) == 0


def test_empty_file_committed_and_oversized_file_failed(repo: Path, home: Path, store: Path) -> None:
    cfg = config_file(home, repo, "max_file_size = 1000\n")
    env = {"MDBACKUP_CONFIG": str(cfg)}
    (store / "empty.md").write_bytes(b"")
    (store / "exactly.md").write_bytes(b"x" * 1000)
    (store / "big.md").write_bytes(b"x" * 1001)
    result = run_cli("--once", cwd=repo, home=home, env=env)
    assert result.code == 1
    files = tree_files(repo)
    assert files[b"notes/empty.md"] == ("100644", b"")
    assert files[b"notes/exactly.md"][1] == b"x" * 1000
    assert b"notes/big.md" not in files
    code, doc = status_json(repo, home, cfg)
    assert code == 1  # a failed path
    (row,) = [r for r in doc["paths"] if r["status"] != "success"]
    assert row["path"] == "notes/big.md" and "1001 bytes" in row["last_error"]
    assert "max_file_size (1000)" in row["last_error"]


# -- the store folder deleted and recreated ------------------------------------------------


def test_store_folder_deleted_and_recreated_with_once(repo: Path, home: Path, store: Path) -> None:
    (store / "a.md").write_text("a\n")
    (store / "sub").mkdir()
    (store / "sub/b.md").write_text("b\n")
    assert once(repo, home).code == 0
    shutil.rmtree(store)
    # while it is gone, its files are deleted: that is what gets committed
    result = once(repo, home)
    assert result.code == 0, result.err
    assert not any(name.startswith(b"notes/") for name in tree_files(repo))
    store.mkdir()
    (store / "a.md").write_text("a again\n")
    (store / "c.md").write_text("c\n")
    assert once(repo, home).code == 0
    files = tree_files(repo)
    assert files[b"notes/a.md"][1] == b"a again\n" and files[b"notes/c.md"][1] == b"c\n"
    assert b"notes/sub/b.md" not in files


def test_store_folder_moved_away_and_a_new_one_made_with_the_daemon(daemon, repo: Path, store: Path) -> None:
    d = daemon().start()
    (store / "a.md").write_text("a\n")
    wait_until(lambda: head_content(repo, b"notes/a.md") == b"a\n", timeout=15)
    store.rename(repo / "notes.old")
    wait_until(
        lambda: head_content(repo, b"notes/a.md") is None,
        timeout=15,
        message="the move away committed as a deletion",
    )
    store.mkdir()
    (store / "deep").mkdir()
    (store / "deep/b.md").write_text("b\n")
    wait_until(
        lambda: head_content(repo, b"notes/deep/b.md") == b"b\n",
        timeout=15,
        message="a file in the recreated store folder",
    )
    (store / "deep/c.md").write_text("c\n")  # only seen if the new folder is watched
    wait_until(
        lambda: head_content(repo, b"notes/deep/c.md") == b"c\n",
        timeout=15,
        message="the recreated folder watched",
    )
    assert d.stop() == 0


# -- a damaged state database --------------------------------------------------------------


def _damage(db: Path, how: str) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    size = db.stat().st_size
    if how == "deleted":
        db.unlink()
    elif how == "empty":
        db.write_bytes(b"")
    elif how == "garbage":
        db.write_bytes(os.urandom(size))
    elif how == "half":
        os.truncate(db, size // 2)
    elif how == "page-garbage":
        with open(db, "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(4096))


@pytest.mark.parametrize("how", ["deleted", "empty", "garbage", "half", "page-garbage"])
def test_damaged_state_database_is_moved_aside_and_rebuilt(
    repo: Path, home: Path, store: Path, how: str
) -> None:
    for i in range(40):  # a few pages of rows
        (store / f"n{i:02d}.md").write_text(f"{i}\n" * 20)
    assert once(repo, home).code == 0
    db = repo / ".git/mdbackup/state.db"
    assert db.stat().st_size > 8192
    _damage(db, how)
    (store / "n00.md").write_text("changed while the database was damaged\n")
    (store / "new.md").write_text("new\n")
    (store / "n01.md").unlink()
    result = once(repo, home)
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    files = tree_files(repo)
    assert files[b"notes/n00.md"][1] == b"changed while the database was damaged\n"
    assert files[b"notes/new.md"][1] == b"new\n" and b"notes/n01.md" not in files
    aside = sorted(db.parent.glob("state.db.corrupt-*"))
    if how in ("garbage", "half", "page-garbage"):
        events = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
        (report,) = [e for e in events if e["event"] == "state_db_corrupt"]
        assert report["level"] == "error" and report["moved_to"] == str(aside[0])
        assert len(aside) == 1
    else:
        assert aside == [] and "state_db_corrupt" not in result.err
    # no crash loop: the next runs are ordinary
    again = once(repo, home)
    assert again.code == 0 and "state_db_corrupt" not in again.err
    code, doc = status_json(repo, home, config_file(home, repo))
    assert code == 0 and doc["counts"]["failed"] == 0


def test_daemon_starts_on_a_garbage_state_database(daemon, repo: Path, store: Path) -> None:
    d = daemon()
    (store / "a.md").write_text("a\n")
    d.start()
    wait_until(lambda: head_content(repo, b"notes/a.md") == b"a\n", timeout=15)
    assert d.stop() == 0
    db = repo / ".git/mdbackup/state.db"
    _damage(db, "garbage")
    (store / "a.md").write_text("changed while stopped\n")
    d2 = daemon().start()
    wait_until(
        lambda: head_content(repo, b"notes/a.md") == b"changed while stopped\n",
        timeout=15,
        message="the change made while stopped",
    )
    (store / "b.md").write_text("b\n")
    wait_until(lambda: head_content(repo, b"notes/b.md") == b"b\n", timeout=15)
    assert d2.stop() == 0
    assert '"state_db_corrupt"' in d2.log()
    assert len(list(db.parent.glob("state.db.corrupt-*"))) == 1


# -- another user: unreadable files, a read-only repository ------------------------------------


@pytest.fixture(scope="module")
def as_nobody() -> list[str]:
    """A command prefix running a program as `nobody` (we are root here: root ignores modes)."""
    if os.geteuid() != 0:
        return []  # already an ordinary user: file modes apply as they are
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop to an ordinary user")
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import os, pygit2, peewee, mdbackup.cli;print(os.getuid())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )
    if probe.returncode != 0 or probe.stdout.strip() == "0":
        pytest.skip(f"cannot run the CLI as nobody through setpriv: {probe.stderr.strip()[-300:]}")
    return prefix


@pytest.fixture
def nobody_world(as_nobody: list[str]) -> Iterator[tuple[Path, Path]]:
    """A repository with a store and a HOME, both owned by the user the CLI runs as."""
    base = Path(tempfile.mkdtemp(prefix="mdbackup-hostile-", dir="/tmp"))
    try:
        repo = init_repo(base / "repo")
        (repo / "notes").mkdir()
        home = base / "home"
        home.mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            for path in [base, *base.rglob("*")]:
                os.lchown(path, user.pw_uid, user.pw_gid)
        yield repo, home
    finally:
        for path in [base, *base.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o700 if path.is_dir() else 0o600)
        shutil.rmtree(base)


def _chown_like_parent(path: Path) -> None:
    parent = path.parent.stat()
    os.lchown(path, parent.st_uid, parent.st_gid)


def test_unreadable_file_fails_with_reason_others_committed(as_nobody, nobody_world) -> None:
    repo, home = nobody_world
    store = repo / "notes"
    for name, text in (("secret.md", "no access\n"), ("a.md", "a\n"), ("b.md", "b\n")):
        (store / name).write_text(text)
        _chown_like_parent(store / name)
    (store / "secret.md").chmod(0)
    result = once(repo, home, user=as_nobody)
    assert result.code == 1, result.err
    files = tree_files(repo)
    assert files[b"notes/a.md"][1] == b"a\n" and files[b"notes/b.md"][1] == b"b\n"
    assert b"notes/secret.md" not in files
    cfg = config_file(home, repo)
    _chown_like_parent(cfg)
    code, doc = status_json(repo, home, cfg, user=as_nobody)
    assert code == 1
    (row,) = [r for r in doc["paths"] if r["status"] == "failed"]
    assert row["path"] == "notes/secret.md"
    assert row["last_error"] == "cannot read: Permission denied"
    (store / "secret.md").chmod(0o644)
    result = once(repo, home, user=as_nobody)
    assert result.code == 0, result.err
    assert head_content(repo, b"notes/secret.md") == b"no access\n"


def _read_only(root: Path, *, keep: tuple[Path, ...] = ()) -> None:
    for path in [root, *root.rglob("*")]:
        if any(path == k or k in path.parents for k in keep) or path.is_symlink():
            continue
        path.chmod(path.stat().st_mode & ~0o222)


def _writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


@pytest.mark.parametrize("what", ["everything", "index", "branch"])
def test_read_only_repository_fails_clearly_and_commits_after(as_nobody, nobody_world, what: str) -> None:
    repo, home = nobody_world
    store = repo / "notes"
    (store / "old.md").write_text("old\n")
    _chown_like_parent(store / "old.md")
    assert once(repo, home, user=as_nobody).code == 0  # makes .git/mdbackup too
    head = rgit(repo, "rev-parse", "HEAD")
    (store / "old.md").write_text("edited\n")
    (store / "new.md").write_text("new\n")
    _chown_like_parent(store / "new.md")
    git_dir = repo / ".git"
    state = git_dir / "mdbackup"
    if what == "everything":  # objects, refs, index: all but mdbackup's own state
        _read_only(git_dir, keep=(state,))
        expected = "cannot write to the repository"
    elif what == "index":  # objects can be written, index.lock cannot be created
        git_dir.chmod(0o555)
        expected = "lock the index"
    else:  # the branch's lock cannot be created
        (git_dir / "refs/heads").chmod(0o555)
        expected = "move the branch"
    try:
        result = once(repo, home, user=as_nobody)
        assert result.code == 1, (result.code, result.err)  # a failure, not "busy" (75)
        assert "Traceback" not in result.err
        assert rgit(repo, "rev-parse", "HEAD") == head
        cfg = config_file(home, repo)
        code, doc = status_json(repo, home, cfg, user=as_nobody)
        assert code == 1  # failed paths
        failed = {r["path"]: r["last_error"] for r in doc["paths"] if r["status"] == "failed"}
        assert set(failed) == {"notes/old.md", "notes/new.md"}, doc["paths"]
        for error in failed.values():
            assert expected in error and "Permission denied" in error, error
            assert "cannot read" not in error
        assert not (git_dir / "index.lock").exists()
    finally:
        _writable(git_dir)
    result = once(repo, home, user=as_nobody)
    assert result.code == 0, result.err
    files = tree_files(repo)
    assert files[b"notes/old.md"][1] == b"edited\n" and files[b"notes/new.md"][1] == b"new\n"
    assert porcelain(repo, "notes") == b""
    rgit(repo, "fsck", "--no-dangling")


def test_read_only_repository_with_the_daemon_retries_by_itself(as_nobody, nobody_world) -> None:
    repo, home = nobody_world
    store = repo / "notes"
    d = Daemon(
        prefix=as_nobody, repo=repo, home=home, config=FAST + "[push]\nretry_min = 0.5\nretry_max = 1\n"
    )
    _chown_like_parent(d.config_path)
    try:
        d.start()
        git_dir = repo / ".git"
        _read_only(git_dir, keep=(git_dir / "mdbackup",))
        try:
            (store / "a.md").write_text("written while read-only\n")
            _chown_like_parent(store / "a.md")
            wait_until(
                lambda: "cannot write to the repository" in d.log(), timeout=15, message="the failure logged"
            )
            assert head_content(repo, b"notes/a.md") is None
        finally:
            _writable(git_dir)
        wait_until(
            lambda: head_content(repo, b"notes/a.md") == b"written while read-only\n",
            timeout=20,
            message="committed by a retry once writable",
        )
        assert d.stop() == 0
    finally:
        d.close()


# -- a full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted for the test."""
    mount = Path(tempfile.mkdtemp(prefix="mdbackup-full-", dir="/tmp"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a small tmpfs to fill: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_full_disk_fails_clearly_and_commits_everything_once_freed(
    small_disk: Path, tmp_path: Path, home: Path
) -> None:
    repo = init_repo(small_disk / "repo")
    store = repo / "notes"
    store.mkdir()
    # the state database on another disk (`state.db`): this is about git's objects and
    # index (mdbackup's working copy of the index stays beside it, on the full disk)
    outside = tmp_path / "state"
    outside.mkdir()
    cfg = config_file(home, repo, f'[state]\ndb = "{outside / "state.db"}"\n')
    env = {"MDBACKUP_CONFIG": str(cfg)}
    (store / "a.md").write_text("a\n")
    assert once(repo, home, env=env).code == 0
    head = rgit(repo, "rev-parse", "HEAD")
    (store / "a.md").write_text("a, edited\n")
    (store / "b.md").write_text("b " * 200 + "\n")
    filler = _fill(small_disk)
    result = once(repo, home, env=env)
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert rgit(repo, "rev-parse", "HEAD") == head
    code, doc = status_json(repo, home, cfg)
    failed = {r["path"]: r["last_error"] for r in doc["paths"] if r["status"] == "failed"}
    if "cannot take the lock" in result.err:  # the lock file itself could not be written
        assert "No space left" in result.err and code == 0
    else:
        assert code == 1 and set(failed) == {"notes/a.md", "notes/b.md"}, doc
        for error in failed.values():
            assert "cannot write to the repository" in error and "No space left" in error, error
    filler.unlink()
    result = once(repo, home, env=env)
    assert result.code == 0, result.err
    files = tree_files(repo)
    assert files[b"notes/a.md"][1] == b"a, edited\n" and files[b"notes/b.md"][1] == b"b " * 200 + b"\n"
    assert porcelain(repo, "notes") == b""
    rgit(repo, "fsck", "--no-dangling")


def test_full_disk_with_the_state_on_it_never_moves_the_database_aside(small_disk: Path, home: Path) -> None:
    repo = init_repo(small_disk / "repo")
    store = repo / "notes"
    store.mkdir()
    (store / "a.md").write_text("a\n")
    assert once(repo, home).code == 0
    (store / "a.md").write_text("a, edited\n")
    filler = _fill(small_disk)
    result = once(repo, home)
    assert result.code != 0
    assert not list((repo / ".git/mdbackup").glob("state.db.corrupt-*")), result.err
    filler.unlink()
    result = once(repo, home)
    assert result.code == 0, result.err
    assert head_content(repo, b"notes/a.md") == b"a, edited\n"
    assert "state_db_corrupt" not in result.err


def test_full_disk_with_the_state_on_it_fails_with_a_clear_message(small_disk: Path, home: Path) -> None:
    repo = init_repo(small_disk / "repo")
    (repo / "notes").mkdir()
    (repo / "notes/a.md").write_text("a\n")
    assert once(repo, home).code == 0
    (repo / "notes/a.md").write_text("a, edited\n")
    _fill(small_disk)
    result = once(repo, home)
    assert result.code == 1
    assert "Traceback" not in result.err and "No space left" in result.err
