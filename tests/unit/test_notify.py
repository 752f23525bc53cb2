"""systemd notify protocol against real datagram sockets (filesystem path and abstract name)."""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdbackup.notify import Notifier, watchdog_interval


def _receive(sock: socket.socket) -> str:
    """One datagram, or a timeout failure (the socket has a timeout set)."""
    return sock.recv(65536).decode()


def _assert_nothing_more(sock: socket.socket) -> None:
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(65536)


@pytest.fixture
def path_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to a short filesystem path (sun_path is limited to 108 bytes)."""
    folder = tempfile.mkdtemp(prefix="mdb-notify-", dir="/tmp")
    address = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(10)
    try:
        yield sock, address
    finally:
        sock.close()
        os.unlink(address)
        os.rmdir(folder)


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to an abstract name; `NOTIFY_SOCKET` spells it with `@`."""
    name = f"mdbackup-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(10)
    try:
        yield sock, "@" + name
    finally:
        sock.close()


@pytest.fixture(params=["path", "abstract"])
def bound(request: pytest.FixtureRequest) -> tuple[socket.socket, str]:
    return request.getfixturevalue(f"{request.param}_socket")


def test_every_helper_sends_exactly_its_message(bound: tuple[socket.socket, str]) -> None:
    sock, env_value = bound
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": env_value})
    assert notifier.enabled
    assert notifier.ready()
    assert _receive(sock) == "READY=1"
    assert notifier.status("2 pending, 0 failed, last backup 10:02")
    assert _receive(sock) == "STATUS=2 pending, 0 failed, last backup 10:02"
    assert notifier.watchdog()
    assert _receive(sock) == "WATCHDOG=1"
    assert notifier.stopping()
    assert _receive(sock) == "STOPPING=1"
    assert notifier.send("A=1", "B=2")
    assert _receive(sock) == "A=1\nB=2"
    _assert_nothing_more(sock)


def test_reloading_carries_the_monotonic_clock(bound: tuple[socket.socket, str]) -> None:
    sock, env_value = bound
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert Notifier.from_environ({"NOTIFY_SOCKET": env_value}).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = _receive(sock).split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_status_is_one_line(path_socket: tuple[socket.socket, str]) -> None:
    sock, address = path_socket
    Notifier.from_environ({"NOTIFY_SOCKET": address}).status("a\nb")
    assert _receive(sock) == "STATUS=a b"


@pytest.mark.parametrize("value", [None, "", "relative/path", "@"])
def test_without_a_usable_socket_everything_is_a_no_op(value: str | None) -> None:
    environ = {} if value is None else {"NOTIFY_SOCKET": value}
    notifier = Notifier.from_environ(environ)
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.status("x")
    assert not notifier.watchdog()
    assert not notifier.stopping()
    assert not notifier.reloading()


def test_from_environ_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "@some-name")
    assert Notifier.from_environ().address == b"\0some-name"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert Notifier.from_environ().address is None


def test_a_vanished_socket_never_raises(tmp_path: Path) -> None:
    assert not Notifier(str(tmp_path / "gone")).ready()
    assert not Notifier(b"\0mdbackup-test-nobody-" + uuid.uuid4().hex.encode()).ready()


def test_a_socket_that_is_not_a_datagram_socket_never_raises() -> None:
    folder = tempfile.mkdtemp(prefix="mdb-notify-", dir="/tmp")
    address = os.path.join(folder, "stream")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stream:
        stream.bind(address)
        stream.listen()
        try:
            assert not Notifier(address).ready()
        finally:
            os.unlink(address)
            os.rmdir(folder)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "1000"}, 0.0005),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "<ours>"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "junk"}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": ""}, 30.0),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    environ = {k: str(os.getpid()) if v == "<ours>" else v for k, v in environ.items()}
    assert watchdog_interval(environ) == expected


def test_watchdog_interval_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 2.0


def test_a_reader_that_never_reads_does_not_block_the_sender(path_socket: tuple[socket.socket, str]) -> None:
    """The receiving queue holds about ten datagrams; later sends are dropped, not blocked."""
    _sock, address = path_socket
    notifier = Notifier(address)
    results = [notifier.status(f"message {i}") for i in range(100)]
    assert results[0] is True
    assert results[-1] is False  # dropped: the queue is full and nobody reads it
