"""mdbackup.git.known_hosts against OpenSSH itself, on generated known_hosts files.

Two oracles:
- lookup: `ssh-keygen -F NAME -f FILE` lists the lines that name a host; our parser must
  name exactly the same lines (markers included), for the bracketed and the bare name.
- verdict: `ssh -o StrictHostKeyChecking=yes` against the real test sshd accepts or refuses
  (unknown / CHANGED / REVOKED, read from its stderr); `known_hosts.verify` with the
  server's key must say the same. Real connections are few (max_examples 30).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdbackup.git.known_hosts import ServerKey, Status, verify
from mdbackup.git.known_hosts_file import names_host, read_entries

pytestmark = pytest.mark.skipif(
    shutil.which("ssh") is None or shutil.which("ssh-keygen") is None, reason="OpenSSH client not installed"
)

SSH_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("oracle-keys")
    out = {}
    for name, kind in (("other", "ed25519"), ("ecdsa", "ecdsa")):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", str(tmp / name)],
            check=True,
            capture_output=True,
        )
        out[name] = " ".join((tmp / f"{name}.pub").read_text().split()[:2])
    return out


def _hashed(name: str, salt: bytes) -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def _patterns(port: int) -> list[str]:
    return [
        "127.0.0.1",
        f"[127.0.0.1]:{port}",
        f"[127.0.0.1]:{port + 1}",
        "other.test",
        "*",
        "127.0.0.*",
        "[127.0.0.1]:*",
        f"[127.0.0.?]:{port}",
        "*.test",
        "!127.0.0.1",
        f"![127.0.0.1]:{port}",
        "!*",
    ]


@st.composite
def known_hosts_files(draw: st.DrawFn, port: int) -> list[tuple[str, str, str, str]]:
    """Lines as (kind, marker, hosts, key-name); kind is "entry", "comment" or "bare"."""
    pool = _patterns(port)
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["entry"] * 6 + ["comment", "bare"]))
        if kind != "entry":
            lines.append((kind, "", "", ""))
            continue
        if draw(st.integers(0, 4)) == 0:
            positives = [p for p in pool if not p.startswith("!") and "*" not in p and "?" not in p]
            hosts = _hashed(draw(st.sampled_from(positives)), draw(st.binary(min_size=20, max_size=20)))
        else:
            hosts = ",".join(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3)))
        marker = draw(st.sampled_from(["", "", "", "@revoked", "@cert-authority"]))
        key = draw(st.sampled_from(["server", "server", "other", "ecdsa"]))
        lines.append((kind, marker, hosts, key))
    return lines


def _render(lines: list[tuple[str, str, str, str]], keys: dict[str, str], crlf: bool) -> str:
    end = "\r\n" if crlf else "\n"
    out = []
    for kind, marker, hosts, key in lines:
        if kind == "comment":
            out.append("# a comment")
        elif kind == "bare":
            out.append("just-a-hostname")
        else:
            out.append(" ".join(filter(None, [marker, hosts, keys[key]])))
    return end.join(out) + end


def _ssh_keygen_lines(name: str, path: Path) -> set[int]:
    proc = subprocess.run(["ssh-keygen", "-F", name, "-f", str(path)], capture_output=True, text=True)
    return {int(n) for n in re.findall(r"found: line (\d+)", proc.stdout)}


def _our_lines(name: str, path: Path) -> set[int]:
    return {e.line for e in read_entries(path)[0] if names_host(e, name)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), crlf=st.booleans())
def test_lookup_matches_ssh_keygen(
    tmp_path: Path, other_keys: dict[str, str], data: st.DataObject, crlf: bool
):
    port = 2222
    keys = {"server": other_keys["other"], **other_keys}
    lines = data.draw(known_hosts_files(port))
    path = tmp_path / "known_hosts"
    path.write_bytes(_render(lines, keys, crlf).encode())
    for name in ("127.0.0.1", f"[127.0.0.1]:{port}", "other.test"):
        assert _our_lines(name, path) == _ssh_keygen_lines(name, path), (name, path.read_text())


def _openssh_verdict(server, known_hosts: Path) -> Status:
    proc = subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "CheckHostIP=no",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"IdentityFile={server.client_key}",
            "-o",
            "ConnectTimeout=10",
            "-p",
            str(server.port),
            f"{server.user}@127.0.0.1",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=SSH_TIMEOUT,
        env={**os.environ, "SSH_AUTH_SOCK": ""},
    )
    if proc.returncode == 0:
        return Status.OK
    err = proc.stderr
    if "REVOKED HOST KEY" in err or "was revoked" in err:
        return Status.REVOKED
    if "HAS CHANGED" in err:
        return Status.CHANGED
    if "host key is known for" in err:
        return Status.NEW
    raise AssertionError(f"ssh failed for another reason: {err}")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), crlf=st.booleans())
def test_verdict_matches_openssh_against_the_real_sshd(
    ssh_server, tmp_path: Path, other_keys: dict[str, str], data: st.DataObject, crlf: bool
):
    server_line = ssh_server.known_hosts_line.split(None, 1)[1]
    keys = {"server": server_line, **other_keys}
    lines = data.draw(known_hosts_files(ssh_server.port))
    path = tmp_path / "known_hosts"
    path.write_bytes(_render(lines, keys, crlf).encode())
    blob = base64.b64decode(server_line.split()[1])
    ours = verify(host="127.0.0.1", port=ssh_server.port, key=ServerKey(blob=blob), files=[path])
    assert ours.status is _openssh_verdict(ssh_server, path), path.read_text()
