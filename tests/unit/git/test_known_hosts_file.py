"""mdbackup.git.known_hosts_file: parsing lines as OpenSSH does, and the narrow libssh2 file."""

from __future__ import annotations

import base64
from pathlib import Path

from mdbackup.git.known_hosts_file import Marker, host_name, libssh2_text, names_host, read_entries

BLOB = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))
KEY = "ssh-ed25519 " + base64.b64encode(BLOB).decode()
SK_BLOB = b"\x00\x00\x00\x1ask-ssh-ed25519@openssh.com" + bytes(40)
SK_KEY = "sk-ssh-ed25519@openssh.com " + base64.b64encode(SK_BLOB).decode()


def test_host_name() -> None:
    assert host_name("Example.ORG", None) == host_name("example.org", 22) == "example.org"
    assert host_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"


def test_entries_markers_and_warnings(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(
        f"  # comment\n\n@revoked a.test {KEY}\r\n@cert-authority *.test {KEY}\nbare\n"
        f"a.test ssh-rsa {base64.b64encode(BLOB).decode()}\n"
    )
    entries, warnings = read_entries(path)
    assert [(e.line, e.marker) for e in entries] == [(3, Marker.REVOKED), (4, Marker.CERT_AUTHORITY)]
    assert entries[0].blob == BLOB and entries[0].where == f"{path}:3"
    assert [w.split(": ")[0] for w in warnings] == [f"{path}:5", f"{path}:6"]  # no key; type mismatch
    assert read_entries(tmp_path / "missing") == ([], [])


def test_patterns(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"*.Test,!bad.test,[h?]:22?2 {KEY}\n")
    (entry,), _ = read_entries(path)
    assert names_host(entry, "a.test") and not names_host(entry, "bad.test")
    assert names_host(entry, "[h1]:2222") and not names_host(entry, "[h12]:2222")
    assert not names_host(entry, "a.test.org")


def test_libssh2_text_names_only_this_host_with_plain_keys(tmp_path: Path) -> None:
    user = tmp_path / "known_hosts"
    user.write_text(
        f"bare-line\n*.test {KEY}\n@revoked * {KEY}\n[h.test]:2222 {SK_KEY}\nother.org {KEY}\n"
        + "x" * 5000
        + "\n"
    )
    assert libssh2_text(host="H.test", port=22, files=[user]) == f"h.test {KEY}\n"
    # an entry names [h.test]:2222, so no port-less fallback; its sk- key type is left out for libssh2
    assert libssh2_text(host="h.test", port=2222, files=[user]) == ""
    assert libssh2_text(host="a.test", port=2222, files=[user]) == f"[a.test]:2222 {KEY}\n"
    assert libssh2_text(host="nowhere.org", port=22, files=[user, tmp_path / "missing"]) == ""
