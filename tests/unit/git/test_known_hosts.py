"""mdbackup.git.known_hosts: which hosts a known_hosts file lists, and the refusal message."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdbackup.git.known_hosts import host_key_message

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIBogusBogusBogusBogusBogusBogusBogusBogusBo"
# Written by `ssh-keygen -H` for "example.org" and "[127.0.0.1]:2222".
HASHED_EXAMPLE_ORG = "|1|cOGZahEDKSbCFdynIv1yOYmia3I=|AF89LfQ2+suv+RUoCqH7vI16EjY="
HASHED_LOCAL_2222 = "|1|/UhWi8VkgV4gC0TZcybOZWWSehA=|1KMS2/Ijbjoox2OZ1KT5UOPa7PM="


def listed(known_hosts: Path, host: str, port: int | None = None) -> bool:
    """True when the message says the key CHANGED (the host is listed), False for unknown."""
    message = host_key_message(known_hosts, host=host, port=port)
    assert ("CHANGED" in message) != ("is unknown" in message), message
    return "CHANGED" in message


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(
        "# a comment\n"
        "\n"
        f"example.org,10.0.0.1 ssh-ed25519 {KEY}\n"
        f"[127.0.0.1]:2222 ssh-rsa {KEY}\n"
        f"*.wild.test,!bad.wild.test ecdsa-sha2-nistp256 {KEY}\n"
        f"host?.test ssh-ed25519 {KEY}\n"
        f"@revoked gone.test ssh-ed25519 {KEY}\n"
        f"@cert-authority *.ca.test ssh-ed25519 {KEY}\n"
        "broken-line-without-key\n"
    )
    return path


def test_plain_names_and_lists(plain: Path) -> None:
    assert listed(plain, "example.org")
    assert listed(plain, "EXAMPLE.org", 22)
    assert listed(plain, "10.0.0.1")
    assert not listed(plain, "other.test")
    assert not listed(plain, "broken-line-without-key")


def test_bracketed_host_and_port(plain: Path) -> None:
    assert listed(plain, "127.0.0.1", 2222)
    assert not listed(plain, "127.0.0.1", 22)
    assert not listed(plain, "127.0.0.1", 2223)
    assert not listed(plain, "example.org", 2222)  # listed for port 22 only


def test_patterns_negations_and_markers(plain: Path) -> None:
    assert listed(plain, "a.wild.test")
    assert not listed(plain, "bad.wild.test")
    assert listed(plain, "host1.test")
    assert not listed(plain, "host12.test")
    assert listed(plain, "gone.test")  # a revoked key is listed: its host is not "unknown"
    assert not listed(plain, "x.ca.test")  # CA lines do not list host keys


def test_hashed_names(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(
        f"{HASHED_EXAMPLE_ORG} ssh-ed25519 {KEY}\n"
        f"{HASHED_LOCAL_2222} ssh-rsa {KEY}\n"
        f"|1|not-base64|x ssh-rsa {KEY}\n"
    )
    assert listed(path, "example.org")
    assert listed(path, "127.0.0.1", 2222)
    assert not listed(path, "127.0.0.1")
    assert not listed(path, "example.com")


def test_missing_file_means_unknown(tmp_path: Path) -> None:
    assert not listed(tmp_path / "missing", "example.org")


def test_messages_say_what_to_do(plain: Path) -> None:
    unknown = host_key_message(plain, host="127.0.0.1", port=2200)
    assert unknown == (
        f"host key for [127.0.0.1]:2200 is unknown: [127.0.0.1]:2200 is not in {plain}; add it after "
        f"verifying its fingerprint: `ssh-keyscan -p 2200 127.0.0.1 >> {plain}`"
    )
    changed = host_key_message(plain, host="example.org", port=None)
    assert changed.startswith(f"host key for example.org has CHANGED: it does not match the entry in {plain}")
    assert f"`ssh-keygen -R 'example.org' -f {plain}`" in changed
    assert f"`ssh-keyscan example.org >> {plain}`" in changed
    assert "\n" not in unknown + changed
