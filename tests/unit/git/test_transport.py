"""mdbackup.git.transport: libgit2's process-wide network timeouts are set, then restored."""

from __future__ import annotations

import time

import pygit2

from mdbackup.git import transport


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
