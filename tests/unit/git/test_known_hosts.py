"""mdbackup.git.known_hosts: OpenSSH's known_hosts rules, verdicts and wording.

Real keys from ssh-keygen. The same rules are checked against OpenSSH itself (as the
oracle, with the real sshd) in tests/e2e/test_known_hosts_oracle.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import subprocess
from pathlib import Path

import pytest

from mdbackup.git.known_hosts import ServerKey, Status, host_key_message, verify

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")


def _keygen(tmp: Path, name: str, kind: str = "ed25519") -> tuple[str, bytes]:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", str(tmp / name)],
        check=True,
        capture_output=True,
    )
    key_type, b64 = (tmp / f"{name}.pub").read_text().split()[:2]
    return f"{key_type} {b64}", base64.b64decode(b64)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, bytes]]:
    tmp = tmp_path_factory.mktemp("keys")
    return {
        "server": _keygen(tmp, "server"),
        "other": _keygen(tmp, "other"),
        "ecdsa": _keygen(tmp, "ecdsa", "ecdsa"),
    }


def _hashed(name: str, salt: bytes = b"s" * 20) -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def check(
    tmp_path: Path,
    text: str,
    *,
    host: str = "127.0.0.1",
    port: int | None = 2222,
    key: bytes,
    global_text: str | None = None,
) -> Status:
    user = tmp_path / "known_hosts"
    user.write_bytes(text.encode())
    files = [user]
    if global_text is not None:
        glob = tmp_path / "ssh_known_hosts"
        glob.write_text(global_text)
        files.append(glob)
    return verify(host=host, port=port, key=ServerKey(blob=key), files=files).status


def test_plain_hashed_and_lists(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    assert check(tmp_path, f"[127.0.0.1]:2222 {line}\n", key=blob) is Status.OK
    assert check(tmp_path, f"a.test,[127.0.0.1]:2222,b.test {line}\n", key=blob) is Status.OK
    assert check(tmp_path, f"{_hashed('[127.0.0.1]:2222')} {line}\n", key=blob) is Status.OK
    assert check(tmp_path, f"{_hashed('[127.0.0.1]:2223')} {line}\n", key=blob) is Status.NEW
    assert check(tmp_path, f"EXAMPLE.org {line}\n", host="example.ORG", port=22, key=blob) is Status.OK
    assert check(tmp_path, f"other.test {line}\n", key=blob) is Status.NEW
    assert check(tmp_path, "", key=blob) is Status.NEW


def test_changed_and_other_type_is_changed(tmp_path: Path, keys) -> None:
    _, blob = keys["server"]
    other, _ = keys["other"]
    ecdsa, _ = keys["ecdsa"]
    assert check(tmp_path, f"[127.0.0.1]:2222 {other}\n", key=blob) is Status.CHANGED
    # OpenSSH: any other key for the name is CHANGED (sshkey_equal compares types too)
    assert check(tmp_path, f"[127.0.0.1]:2222 {ecdsa}\n", key=blob) is Status.CHANGED
    # a matching line anywhere wins over a non-matching one
    assert (
        check(tmp_path, f"[127.0.0.1]:2222 {other}\n[127.0.0.1]:2222 {keys['server'][0]}\n", key=blob)
        is Status.OK
    )


@pytest.mark.parametrize("order", ["revoked-first", "revoked-last", "revoked-star"])
def test_revoked_key_is_refused_whatever_else_matches(tmp_path: Path, keys, order: str) -> None:
    line, blob = keys["server"]
    good = f"[127.0.0.1]:2222 {line}\n"
    revoked = f"@revoked {'*' if order == 'revoked-star' else '[127.0.0.1]:2222'} {line}\n"
    text = revoked + good if order == "revoked-first" else good + revoked
    user = tmp_path / "known_hosts"
    user.write_text(text)
    verdict = verify(host="127.0.0.1", port=2222, key=ServerKey(blob=blob), files=[user])
    assert verdict.status is Status.REVOKED
    assert "REVOKED HOST KEY DETECTED" in verdict.message
    assert "The ED25519 host key for [127.0.0.1]:2222 is marked as revoked" in verdict.message


def test_revoked_other_key_does_not_refuse(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    other, _ = keys["other"]
    assert check(tmp_path, f"@revoked * {other}\n[127.0.0.1]:2222 {line}\n", key=blob) is Status.OK


def test_bracketed_entry_with_another_key_is_not_overridden_by_a_portless_one(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    other, _ = keys["other"]
    text = f"[127.0.0.1]:2222 {other}\n127.0.0.1 {line}\n"
    assert check(tmp_path, text, key=blob) is Status.CHANGED


def test_portless_entry_vouches_only_where_openssh_lets_it(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    other, _ = keys["other"]
    # no [host]:port entry at all: OpenSSH retries without the port and trusts an exact match
    assert check(tmp_path, f"127.0.0.1 {line}\n", key=blob) is Status.OK
    # ... but a port-less entry with another key leaves the host unknown (not CHANGED)
    assert check(tmp_path, f"127.0.0.1 {other}\n", key=blob) is Status.NEW


def test_wildcards_and_negation(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    assert check(tmp_path, f"* {line}\n", key=blob) is Status.OK
    assert check(tmp_path, f"[127.0.0.?]:2222 {line}\n", key=blob) is Status.OK
    # the port-less retry still matches `*` when only the bracketed name is negated
    assert check(tmp_path, f"*,![127.0.0.1]:2222 {line}\n", key=blob) is Status.OK
    assert check(tmp_path, f"*,!*127.0.0.1* {line}\n", key=blob) is Status.NEW
    assert check(tmp_path, f"*.test {line}\n", key=blob) is Status.NEW


def test_wildcard_entry_for_other_hosts_gives_no_false_changed(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    other, _ = keys["other"]
    text = f"*.example.org {other}\n[127.0.0.1]:2222 {line}\n"
    assert check(tmp_path, text, key=blob) is Status.OK


def test_crlf_file_gives_no_false_changed(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    text = f"# comment\r\n\r\n[127.0.0.1]:2222 {line}\r\n{_hashed('x.test')} {line} comment\r\n"
    assert check(tmp_path, text, key=blob) is Status.OK


def test_malformed_lines_are_skipped_with_one_warning_each(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    long_line = f"{','.join(f'h{i}.test' for i in range(800))} {line}"
    assert len(long_line) > 4096
    text = (
        "bare-hostname\n"
        f"{long_line}\n"
        "@bogus-marker host ssh-ed25519 AAAA\n"
        "host ssh-ed25519 not*base64\n"
        f"|1|bad|hash {line}\n"
        f"[127.0.0.1]:2222 {line}\n"
    )
    user = tmp_path / "known_hosts"
    user.write_text(text)
    verdict = verify(host="127.0.0.1", port=2222, key=ServerKey(blob=blob), files=[user])
    assert verdict.ok
    assert [w.split(": ", 1)[0] for w in verdict.warnings] == [f"{user}:{n}" for n in (1, 3, 4, 5)]
    assert check(tmp_path, f"{long_line}\n", host="h799.test", port=22, key=blob) is Status.OK


def test_global_file_is_read(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    other, _ = keys["other"]
    assert check(tmp_path, "", key=blob, global_text=f"[127.0.0.1]:2222 {line}\n") is Status.OK
    assert check(tmp_path, "", key=blob, global_text=f"[127.0.0.1]:2222 {other}\n") is Status.CHANGED
    assert check(tmp_path, f"[127.0.0.1]:2222 {line}\n", key=blob, global_text=f"@revoked * {line}\n") is (
        Status.REVOKED
    )


def test_cert_authority_is_never_trusted_for_a_plain_key(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    user = tmp_path / "known_hosts"
    user.write_text(f"@cert-authority * {line}\n")
    verdict = verify(host="127.0.0.1", port=2222, key=ServerKey(blob=blob), files=[user])
    assert verdict.status is Status.NEW
    assert "@cert-authority" in verdict.message and "cannot verify host certificates" in verdict.message


def test_a_host_certificate_is_refused(tmp_path: Path) -> None:
    name = b"ssh-ed25519-cert-v01@openssh.com"
    blob = len(name).to_bytes(4, "big") + name + b"\x00" * 40
    verdict = verify(host="h.test", port=22, key=ServerKey(blob=blob), files=[tmp_path / "none"])
    assert verdict.status is Status.CERTIFICATE and "cannot verify host certificates" in verdict.message


def test_digest_only_key_matches_by_hashing_the_blobs(tmp_path: Path, keys) -> None:
    line, blob = keys["server"]
    user = tmp_path / "known_hosts"
    user.write_text(f"[127.0.0.1]:2222 {line}\n")
    for key in (
        ServerKey(sha256=hashlib.sha256(blob).digest()),
        ServerKey(sha1=hashlib.sha1(blob).digest()),
        ServerKey(md5=hashlib.md5(blob).digest()),
    ):
        assert verify(host="127.0.0.1", port=2222, key=key, files=[user]).ok
    wrong = ServerKey(sha256=hashlib.sha256(blob + b"x").digest())
    assert verify(host="127.0.0.1", port=2222, key=wrong, files=[user]).status is Status.CHANGED


def test_messages_say_what_openssh_says_and_the_fix(tmp_path: Path, keys) -> None:
    _, blob = keys["server"]
    other, _ = keys["other"]
    user = tmp_path / "known_hosts"
    user.write_text(f"# c\n[127.0.0.1]:2222 {other}\n")
    changed = verify(host="127.0.0.1", port=2222, key=ServerKey(blob=blob), files=[user]).message
    assert "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!" in changed
    assert f"Offending ED25519 key in {user}:2" in changed
    assert f"`ssh-keygen -R '[127.0.0.1]:2222' -f {user}`" in changed
    assert f"`ssh-keyscan -p 2222 127.0.0.1 >> {user}`" in changed
    unknown = verify(host="127.0.0.1", port=2200, key=ServerKey(blob=blob), files=[user]).message
    assert unknown.startswith(
        "No ED25519 host key is known for [127.0.0.1]:2200 and you have requested strict checking."
    )
    assert "unknown" in unknown and f"`ssh-keyscan -p 2200 127.0.0.1 >> {user}`" in unknown
    assert "\n" not in changed + unknown


def test_host_key_message_without_the_key(tmp_path: Path, keys) -> None:
    line, _ = keys["server"]
    user = tmp_path / "known_hosts"
    user.write_text(f"example.org {line}\n")
    assert "CHANGED" in host_key_message(user, host="example.org", port=None)
    assert "is unknown" in host_key_message(user, host="example.com", port=None)
    assert "is unknown" in host_key_message(tmp_path / "missing", host="example.org", port=None)
