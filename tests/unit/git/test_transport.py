"""mdbackup.git.transport: libgit2's process-wide network timeouts are set, then restored."""

from __future__ import annotations

import time
from pathlib import Path

import pygit2
import pytest

from mdbackup.git import transport
from tests.support.servers import TLS_KINDS, TlsCA, free_port, serve_git_http


def test_network_timeouts_are_set_for_the_block_and_restored() -> None:
    settings = pygit2.settings
    before = (settings.server_connect_timeout, settings.server_timeout)
    started = time.monotonic()
    with transport.network_timeouts(2.5) as deadline:
        assert (settings.server_connect_timeout, settings.server_timeout) == (2500, 2500)
        assert started + 2.5 <= deadline <= time.monotonic() + 2.5
    assert (settings.server_connect_timeout, settings.server_timeout) == before
    with transport.network_timeouts(0.01):
        assert settings.server_timeout == 1000  # at least one second
    assert (settings.server_connect_timeout, settings.server_timeout) == before


def test_configure_without_locations_changes_nothing() -> None:
    transport.configure(ca_file=None, ca_dir=None)
    transport.configure(ca_file="", ca_dir="")


TLS_WORDS = {
    "good": None,
    "self-signed": "self-signed certificate",
    "expired": "certificate has expired",
    "wrong-host": "IP address mismatch, certificate is not valid for '127.0.0.1'",
}


@pytest.mark.parametrize("kind", TLS_KINDS)
def test_tls_problem_names_what_is_wrong_with_the_certificate(
    kind: str, test_ca: TlsCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CA as `configure` would have been given it (without touching libgit2's settings).
    monkeypatch.setattr(transport, "_ca_locations", (str(test_ca.ca_file), None))
    with serve_git_http(tmp_path / "srv", tls=test_ca.context(kind)) as server:
        assert transport.tls_problem("127.0.0.1", server.port) == TLS_WORDS[kind]
        assert server.authorizations == []  # a handshake only: no request, no credential


def test_tls_problem_of_a_closed_port_is_unknown() -> None:
    assert transport.tls_problem("127.0.0.1", free_port(), timeout=2) is None
