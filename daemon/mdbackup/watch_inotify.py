"""The store's recursive watch: one thread reads inotify and hands each path to the handler.

watchdog's inotify observer passes every event through three threads (its reader, the
emitter, the dispatcher), each woken per event and each taking the GIL: about 30 us of CPU
per event, three events per save, more than the rest of a save's intake. This watch reads
the kernel's queue with watchdog's inotify bindings (`watchdog.observers.inotify_c`) on
one thread, everything queued at once, and calls the `StoreEventHandler` directly.

What it guarantees, as watchdog did: a folder created or moved in is watched before the
handler hears of it (so the scan the handler asks for finds whatever the watch missed);
a folder moved out or deleted stops being watched; a queue overflow re-adds every watch
and asks for a rescan; the store folder itself deleted or moved asks for a rescan and a
new watch. Folders `unwatched` refuses (`.git`, excluded folders) are never watched: a
commit's writes under `.git` cost nothing. Idle, the thread sleeps in poll(2): no wakeups.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol

from watchdog.observers.inotify_c import (
    InotifyConstants,
    WatchDescriptor,
    inotify_add_watch,
    inotify_init,
    inotify_rm_watch,
)

from mdbackup import logs

C = InotifyConstants
MASK = (
    C.IN_CREATE
    | C.IN_MODIFY
    | C.IN_CLOSE_WRITE
    | C.IN_ATTRIB  # a chmod: the executable bit is committed
    | C.IN_DELETE
    | C.IN_MOVED_FROM
    | C.IN_MOVED_TO
    | C.IN_DELETE_SELF
    | C.IN_MOVE_SELF
    | C.IN_DONT_FOLLOW
    | C.IN_ONLYDIR
)
_FOLDER_CHANGES = C.IN_CREATE | C.IN_DELETE | C.IN_MOVED_FROM | C.IN_MOVED_TO
_SELF_GONE = C.IN_DELETE_SELF | C.IN_MOVE_SELF
READ_SIZE = 256 * 1024
"""Bytes read at once: thousands of events per wake-up during a burst."""
_HEADER = struct.Struct("iIII")
RESCANNED = "the store is rescanned instead"
OVERFLOWED = "events were lost: every folder is watched again and the store rescanned"


class PathSink(Protocol):
    """Where the watch hands what it read (the `StoreEventHandler`; its calls never raise)."""

    def path_changed(self, raw: bytes, *, is_directory: bool, deleted: bool) -> None: ...

    def store_gone(self, reason: str) -> None: ...

    def overflowed(self, detail: str) -> None: ...


class WatchLimit(Protocol):
    def __call__(self, exc: OSError) -> None: ...


class StoreWatch:
    """A recursive inotify watch of `root` (bytes, absolute) on a thread of its own."""

    def __init__(
        self,
        *,
        root: bytes,
        sink: PathSink,
        unwatched: Callable[[bytes], bool],
        on_limit: WatchLimit,
    ) -> None:
        """`unwatched(folder)`: True for a folder below `root` not to watch, nor anything in
        it; `on_limit(exc)`: a folder could not be watched (ENOSPC: the watch limit), the
        watch goes on without it."""
        self._root = root.rstrip(b"/") or b"/"
        self._sink = sink
        self._unwatched = unwatched
        self._on_limit = on_limit
        self._fd = -1
        self._wake_r = self._wake_w = -1
        self._paths: dict[int, bytes] = {}
        self._wds: dict[bytes, int] = {}
        self._root_wd = -1
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False
        self.partial = False
        """Some folder could not be watched (the watch limit): rescans cover it."""
        self.log = logs.get()

    # -- life -----------------------------------------------------------------------------

    def start(self) -> None:
        """Watch `root` and every folder below it, then start reading. Raises OSError when
        no inotify instance can be had or `root` itself cannot be watched."""
        fd = inotify_init()
        if fd < 0:
            raise _os_error(f"inotify_init: {os.fsdecode(self._root)}")
        os.set_inheritable(fd, False)  # not handed to a filter program we run
        self._fd = fd
        try:
            self._add_tree(self._root)
            if self._root not in self._wds:
                raise _os_error(os.fsdecode(self._root))
            self._root_wd = self._wds[self._root]
            self._wake_r, self._wake_w = os.pipe()
        except BaseException:
            self._close()
            raise
        self._thread = threading.Thread(target=self._run, name="mdbackup-inotify", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, *, drain: bool, settle_within: float, quiet: float, timeout: float) -> None:
        """Stop reading. With `drain`, first let what the kernel holds be read (up to
        `settle_within` s, until nothing was pending for `quiet` s)."""
        thread = self._thread
        if thread is None:
            self._close()
            return
        if drain and thread.is_alive():
            self._settle(within=settle_within, quiet=quiet)
        self._stopping.set()
        os.write(self._wake_w, b"!")
        thread.join(timeout)
        if not thread.is_alive():
            self._close()
            self._thread = None

    def _settle(self, *, within: float, quiet: float) -> None:
        deadline = time.monotonic() + within
        quiet_since: float | None = None
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while (now := time.monotonic()) < deadline:
            if self._busy or poller.poll(0):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= quiet:
                return
            time.sleep(0.01)

    def _close(self) -> None:
        for fd in (self._fd, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._fd = self._wake_r = self._wake_w = -1
        self._paths.clear()
        self._wds.clear()

    # -- watches --------------------------------------------------------------------------

    def _add_tree(self, top: bytes) -> None:
        """Watch `top` and every folder below it that is not `unwatched` (links not followed)."""
        if top != self._root and self._unwatched(top):
            return
        if not self._add(top):
            return
        for folder, names, _ in os.walk(top):
            kept = []
            for name in names:
                path = os.path.join(folder, name)
                if self._unwatched(path) or os.path.islink(path):
                    continue
                if self._add(path):
                    kept.append(name)
            names[:] = kept

    def _add(self, path: bytes) -> bool:
        wd = inotify_add_watch(self._fd, path, MASK)
        if wd < 0:
            code = _errno()
            if code == errno.ENOSPC:
                self.partial = True
                self._on_limit(OSError(code, os.strerror(code), os.fsdecode(path)))
            elif code not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP):
                self.log.warning(
                    "watch_folder_failed", path=os.fsdecode(path)[-300:], error=os.strerror(code)
                )
            return False
        old = self._paths.get(wd)
        if old is not None and old != path:
            self._wds.pop(old, None)  # the same folder, reached by a new path
        self._paths[wd] = path
        self._wds[path] = wd
        return True

    def _forget_tree(self, top: bytes) -> None:
        """Stop watching `top` and every folder below it (it moved away)."""
        prefix = top + b"/"
        for path in [p for p in self._wds if p == top or p.startswith(prefix)]:
            wd = self._wds.pop(path)
            self._paths.pop(wd, None)
            inotify_rm_watch(self._fd, WatchDescriptor(wd))  # an error only means it is gone already

    # -- reading --------------------------------------------------------------------------

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stopping.is_set():
            try:
                ready = {fd for fd, _ in poller.poll()}
                if self._fd not in ready:
                    continue
                self._busy = True
                data = os.read(self._fd, READ_SIZE)
            except InterruptedError:
                continue
            except OSError as exc:  # the descriptor is unusable: rescans take over
                self.log.error("watch_read_failed", error=str(exc))
                self._sink.store_gone(f"inotify read failed: {exc.strerror}")
                return
            try:
                self._dispatch(data)
            finally:
                self._busy = False

    def _dispatch(self, data: bytes) -> None:
        offset, size = 0, len(data)
        while offset + 16 <= size:
            wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            name = data[offset + 16 : offset + 16 + length].rstrip(b"\0")
            offset += 16 + length
            try:
                self._event(wd, mask, name)
            except Exception as exc:  # a bug: the reader must live on; the store is rescanned
                self.log.error(
                    "watch_event_failed", error=repr(exc)[:300], detail="the store is rescanned instead"
                )
                self._sink.overflowed(f"event not handled: {type(exc).__name__}")

    def _event(self, wd: int, mask: int, name: bytes) -> None:
        if mask & C.IN_Q_OVERFLOW:
            self.log.warning(
                "inotify_queue_overflow",
                detail="events were lost: every folder is watched again and the store rescanned",
            )
            self._add_tree(self._root)
            self._sink.overflowed("inotify queue overflow")
            return
        folder = self._paths.get(wd)
        if folder is None:
            return  # a watch already forgotten
        if mask & C.IN_IGNORED:
            self._paths.pop(wd, None)
            if self._wds.get(folder) == wd:
                del self._wds[folder]
            if wd == self._root_wd:
                self._sink.store_gone("store folder deleted")
            return
        if mask & _SELF_GONE:
            if wd == self._root_wd:
                self._sink.store_gone("store folder moved or deleted")
            return  # any other folder: its parent's event says it
        path = folder + b"/" + name if name else folder
        gone = bool(mask & (C.IN_DELETE | C.IN_MOVED_FROM))
        if mask & C.IN_ISDIR:
            if not mask & _FOLDER_CHANGES:
                return
            if mask & C.IN_MOVED_FROM:
                self._forget_tree(path)
            elif mask & (C.IN_CREATE | C.IN_MOVED_TO):
                self._add_tree(path)  # before the handler asks for its scan
            self._sink.path_changed(path, is_directory=True, deleted=gone)
            return
        self._sink.path_changed(path, is_directory=False, deleted=gone)


def _errno() -> int:
    return ctypes.get_errno()


def _os_error(what: str) -> OSError:
    code = _errno()
    return OSError(code, os.strerror(code), what)
