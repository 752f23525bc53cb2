"""mdbackup.git.workfiles on a real file system: a new version goes in only over the file
that was checked; a save landing in between stays (the race is made to happen)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mdbackup.git import workfiles
from mdbackup.git.workfiles import StatKey, clear_temp, place, remove, stat_key, temp_folder


def put(
    target: Path, data: bytes, tmp_path: Path, *, expected: StatKey | None, executable: bool = False
) -> bool:
    """`place` a regular file's content, temp files in `tmp_path/t`."""
    return place(
        str(target), data, link=False, executable=executable, temp_dir=tmp_path / "t", expected=expected
    )


def test_place_replaces_the_checked_file(tmp_path: Path) -> None:
    target = tmp_path / "w" / "a.md"
    target.parent.mkdir()
    target.write_text("old\n")
    ok = place(
        str(target),
        b"new\n",
        link=False,
        executable=False,
        temp_dir=tmp_path / "t",
        expected=stat_key(target),
    )
    assert ok and target.read_text() == "new\n"
    assert not list((tmp_path / "t").iterdir())


def test_place_creates_folders_links_and_executables(tmp_path: Path) -> None:
    link = tmp_path / "w" / "sub" / "l"
    assert place(str(link), b"target", link=True, executable=False, temp_dir=tmp_path / "t", expected=None)
    assert os.readlink(link) == "target"
    script = tmp_path / "w" / "run.sh"
    assert place(
        str(script), b"#!/bin/sh\n", link=False, executable=True, temp_dir=tmp_path / "t", expected=None
    )
    assert os.access(script, os.X_OK)


def test_a_file_created_meanwhile_wins(tmp_path: Path) -> None:
    target = tmp_path / "a.md"
    target.write_text("the user's\n")
    assert not place(
        str(target), b"ours\n", link=False, executable=False, temp_dir=tmp_path / "t", expected=None
    )
    assert target.read_text() == "the user's\n"
    assert not list((tmp_path / "t").iterdir())


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "plain-rename"])
def test_a_save_landing_between_check_and_swap_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    """An editor's atomic save lands right after the check, right before our swap."""
    target = tmp_path / "a.md"
    target.write_text("old\n")
    checked = stat_key(target)
    real = workfiles._renameat2
    saved = False

    def save_then_rename(src: str, dst: str, flags: int) -> bool:
        nonlocal saved
        if not saved:
            saved = True
            (tmp_path / "editor.tmp").write_text("saved by the editor\n")
            os.replace(tmp_path / "editor.tmp", target)
        return real(src, dst, flags) if exchange else False

    monkeypatch.setattr(workfiles, "_renameat2", save_then_rename)
    ok = place(
        str(target), b"ours\n", link=False, executable=False, temp_dir=tmp_path / "t", expected=checked
    )
    assert not ok
    assert target.read_text() == "saved by the editor\n"
    assert not list((tmp_path / "t").iterdir())


def test_a_save_landing_on_our_version_is_put_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two saves: one before the swap, one right after it (over our version): the newest stays."""
    target = tmp_path / "a.md"
    target.write_text("old\n")
    checked = stat_key(target)
    real = workfiles._renameat2
    calls = 0

    def saves_around(src: str, dst: str, flags: int) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            (tmp_path / "e1").write_text("first save\n")
            os.replace(tmp_path / "e1", target)
        done = real(src, dst, flags)
        if calls == 1:
            (tmp_path / "e2").write_text("second save\n")
            os.replace(tmp_path / "e2", target)
        return done

    monkeypatch.setattr(workfiles, "_renameat2", saves_around)
    assert not place(
        str(target), b"ours\n", link=False, executable=False, temp_dir=tmp_path / "t", expected=checked
    )
    assert target.read_text() == "second save\n"


def test_remove_only_the_checked_file(tmp_path: Path) -> None:
    target = tmp_path / "a.md"
    target.write_text("old\n")
    checked = stat_key(target)
    target.write_text("changed size\n")
    assert not remove(str(target), expected=checked) and target.exists()
    assert remove(str(target), expected=stat_key(target)) and not target.exists()


def test_clear_temp_removes_what_a_kill_left(tmp_path: Path) -> None:
    folder = temp_folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "0123.mdbackup-sync.tmp").write_text("half")
    assert clear_temp(tmp_path) == 1
    assert not list(folder.iterdir())
