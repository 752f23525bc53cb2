"""mdbackup.git.credentials: the Credentials record and the libgit2 callbacks, called as
libgit2 calls them (a full handshake against real servers: tests/e2e/test_push_git.py)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import CredentialType

from mdbackup.git import transport
from mdbackup.git.credentials import AuthCallbacks, Credentials
from mdbackup.git.remote_errors import AuthFailed, HostKeyRefused, TimedOut, parse_url
from tests.support.servers import free_port

HTTPS = parse_url("https://git.example.com/me/notes.git")
SSH = parse_url("ssh://git@git.example.com/me/notes.git")


def callbacks(creds: Credentials, url=HTTPS, *, deadline: float | None = None) -> AuthCallbacks:
    return AuthCallbacks(credentials=creds, url=url, deadline=deadline or time.monotonic() + 60)


def keygen(path: Path, passphrase: str = "") -> Path:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not installed")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def test_secrets_never_show_in_repr_or_str() -> None:
    creds = Credentials(token="tok-secret", ssh_passphrase="pass-secret", username="me")
    for text in (repr(creds), str(creds)):
        assert "tok-secret" not in text and "pass-secret" not in text
        assert "token=***" in text and "ssh_passphrase=***" in text and "username='me'" in text
    assert creds.secrets() == ("tok-secret", "pass-secret")
    assert Credentials(token="").secrets() == ()


def test_known_hosts_file(tmp_path: Path) -> None:
    assert Credentials(known_hosts=tmp_path / "kh").known_hosts_file() == tmp_path / "kh"
    assert Credentials().known_hosts_file() == transport.known_hosts_file()


def test_user_name_and_token_are_offered_once() -> None:
    cb = callbacks(Credentials(username="me", token="s3cr3t"))
    offered = cb.credentials(HTTPS.display, None, CredentialType.USERPASS_PLAINTEXT)
    assert isinstance(offered, pygit2.UserPass) and offered.credential_tuple == ("me", "s3cr3t")
    with pytest.raises(AuthFailed, match="rejected the user name and token") as exc:
        cb.credentials(HTTPS.display, None, CredentialType.USERPASS_PLAINTEXT)
    assert "s3cr3t" not in str(exc.value)
    assert cb.tried == ["user 'me' with a token"]


def test_the_urls_user_name_wins() -> None:
    cb = callbacks(Credentials(username="me", token="tok"))
    assert cb.credentials(HTTPS.display, "from-url", CredentialType.USERPASS_PLAINTEXT).credential_tuple == (
        "from-url",
        "tok",
    )


def test_no_token_for_a_server_that_wants_one() -> None:
    with pytest.raises(AuthFailed, match="requires a token and none is configured"):
        callbacks(Credentials()).credentials(HTTPS.display, None, CredentialType.USERPASS_PLAINTEXT)


def test_the_user_name_alone_is_offered_once() -> None:
    cb = callbacks(Credentials(username="me"), SSH)
    assert cb.credentials(SSH.display, None, CredentialType.USERNAME).credential_tuple == ("me",)
    with pytest.raises(AuthFailed, match="did not accept the user name"):
        cb.credentials(SSH.display, None, CredentialType.USERNAME)


def test_ssh_offers_the_agent_then_the_key_then_gives_up_saying_what_it_tried(tmp_path: Path) -> None:
    key = keygen(tmp_path / "id_test")
    cb = callbacks(Credentials(ssh_key=key, ssh_agent=True), SSH)
    agent = cb.credentials(SSH.display, "git", CredentialType.SSH_KEY)
    assert agent.credential_tuple == ("git", None, None, None)
    from_file = cb.credentials(SSH.display, "git", CredentialType.SSH_KEY)
    assert from_file.credential_tuple == ("git", f"{key}.pub", str(key), "")
    with pytest.raises(AuthFailed) as exc:
        cb.credentials(SSH.display, "git", CredentialType.SSH_KEY)
    assert "the server accepted none of the keys" in str(exc.value)
    assert f"tried ssh-agent, key {key}" in str(exc.value)


def test_keys_that_cannot_be_used_are_skipped_with_the_reason(tmp_path: Path) -> None:
    locked = keygen(tmp_path / "id_locked", passphrase="a passphrase")
    missing = tmp_path / "id_missing"
    cb = callbacks(Credentials(ssh_key=missing, ssh_agent=False, default_keys=(locked,)), SSH)
    with pytest.raises(AuthFailed) as exc:
        cb.credentials(SSH.display, "git", CredentialType.SSH_KEY)
    message = str(exc.value)
    assert "no SSH key to offer" in message
    assert f"key {missing} does not exist" in message
    assert f"key {locked} is passphrase-protected and no passphrase was given" in message


def test_a_passphrase_protected_key_with_its_passphrase_is_offered(tmp_path: Path) -> None:
    locked = keygen(tmp_path / "id_locked", passphrase="a passphrase")
    cb = callbacks(Credentials(ssh_key=locked, ssh_passphrase="a passphrase", ssh_agent=False), SSH)
    assert cb.credentials(SSH.display, "git", CredentialType.SSH_KEY).credential_tuple[3] == "a passphrase"


def test_nothing_is_offered_after_the_deadline() -> None:
    cb = callbacks(Credentials(token="tok"), deadline=time.monotonic() - 1)
    with pytest.raises(TimedOut):
        cb.credentials(HTTPS.display, None, CredentialType.USERPASS_PLAINTEXT)
    with pytest.raises(TimedOut):
        cb.certificate_check(None, True, b"git.example.com")


def test_certificates_libgit2_refused_are_refused() -> None:
    # A closed loopback port: the certificate cannot be fetched again to name the problem.
    url = parse_url(f"https://127.0.0.1:{free_port()}/notes.git")
    assert callbacks(Credentials(), url).certificate_check(None, True, b"127.0.0.1") is True
    with pytest.raises(HostKeyRefused, match=r"TLS certificate of 127\.0\.0\.1:\d+ refused: not trusted"):
        callbacks(Credentials(), url).certificate_check(None, False, b"127.0.0.1")


def test_an_ssh_host_key_refusal_explains_itself(tmp_path: Path) -> None:
    cb = callbacks(Credentials(known_hosts=tmp_path / "known_hosts"), SSH)
    with pytest.raises(HostKeyRefused) as exc:
        cb.certificate_check(None, False, b"git.example.com")
    assert "git.example.com" in str(exc.value)


def test_credentials_go_only_to_the_configured_scheme_host_and_port() -> None:
    creds = Credentials(token="tok-host-bound", username="me")
    for other in (
        "https://evil.example.net/me/notes.git",
        "http://git.example.com/me/notes.git",
        "https://git.example.com:8443/me/notes.git",
    ):
        with pytest.raises(AuthFailed, match="redirected to another host") as caught:
            callbacks(creds).credentials(other, None, CredentialType.USERPASS_PLAINTEXT)
        assert "tok-host-bound" not in str(caught.value)
    # the same endpoint, default port spelled out and host in another case: offered
    same = callbacks(creds).credentials(
        "https://GIT.example.com:443/other/path.git", None, CredentialType.USERPASS_PLAINTEXT
    )
    assert same.credential_tuple == ("me", "tok-host-bound")


@pytest.mark.parametrize(
    ("url", "allow", "offered"),
    [
        ("http://git.example.com/notes.git", False, False),
        ("http://git.example.com/notes.git", True, True),
        ("http://127.0.0.1:8080/notes.git", False, True),
        ("http://localhost/notes.git", False, True),
        ("http://[::1]:81/notes.git", False, True),
    ],
)
def test_a_token_over_plain_http_needs_loopback_or_the_allow_key(
    url: str, allow: bool, offered: bool
) -> None:
    creds = Credentials(token="tok-plain", username="me", allow_plain_http=allow)
    cb = callbacks(creds, parse_url(url))
    if offered:
        assert cb.credentials(url, None, CredentialType.USERPASS_PLAINTEXT).credential_tuple == (
            "me",
            "tok-plain",
        )
    else:
        with pytest.raises(AuthFailed, match=r"plain http://.*auth\.allow_plain_http = true"):
            cb.credentials(url, None, CredentialType.USERPASS_PLAINTEXT)


def test_a_token_as_the_url_user_name_is_never_named_in_what_was_tried() -> None:
    token = "ghp_" + "t0" * 18
    cb = callbacks(Credentials(token="tok-env", url_secrets=(token,)))
    cb.credentials(HTTPS.display, token, CredentialType.USERPASS_PLAINTEXT)
    with pytest.raises(AuthFailed) as caught:
        cb.credentials(HTTPS.display, token, CredentialType.USERPASS_PLAINTEXT)
    assert token not in str(caught.value) and "the URL's user name" in str(caught.value)
    assert token in Credentials(url_secrets=(token,)).secrets()
    assert token not in repr(Credentials(url_secrets=(token,)))
