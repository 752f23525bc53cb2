"""mdbackup.git.remote_errors: URL display without secrets, error kinds, one-line messages."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from mdbackup.git.remote_errors import (
    KIND_AUTH,
    KIND_DIVERGED,
    KIND_ERROR,
    KIND_HOST_KEY,
    KIND_UNREACHABLE,
    MAX_ERROR_LEN,
    AuthFailed,
    Diverged,
    TimedOut,
    classify,
    error_line,
    parse_url,
    url_secrets,
)

# ----------------------------------------------------------------------------- parse_url


@pytest.mark.parametrize(
    ("url", "display"),
    [
        ("https://alice:tok3n@example.org/r.git", "https://example.org/r.git"),
        ("http://alice@example.org:8080/r.git", "http://example.org:8080/r.git"),
        ("ssh://git:pw@example.org:2222/r.git", "ssh://git@example.org:2222/r.git"),
        ("git+ssh://git@example.org/r.git", "git+ssh://git@example.org/r.git"),
        ("ssh://git:pw@[::1]:22/r.git", "ssh://git@[::1]:22/r.git"),
        ("git@example.org:me/r.git", "git@example.org:me/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_display_never_shows_a_password(url: str, display: str) -> None:
    parsed = parse_url(url)
    assert parsed.display == display
    assert "tok3n" not in parsed.display and ":pw@" not in parsed.display


def test_parts_of_each_form() -> None:
    ssh = parse_url("ssh://git@example.org:2222/r.git")
    assert (ssh.scheme, ssh.host, ssh.port, ssh.user, ssh.path) == (
        "ssh",
        "example.org",
        2222,
        "git",
        "/r.git",
    )
    scp = parse_url("me@[::1]:r.git")
    assert (scp.scheme, scp.host, scp.port, scp.user, scp.path) == ("ssh", "::1", None, "me", "r.git")
    assert parse_url("git+ssh://h/r").scheme == "ssh"
    local = parse_url("/srv/a:b/r.git")
    assert (local.scheme, local.local_path) == ("local", "/srv/a:b/r.git")
    file = parse_url("file:///srv/with%20space/r.git")
    assert (file.scheme, file.local_path) == ("file", "/srv/with space/r.git")
    assert parse_url("https://h:notaport/r").port is None
    assert parse_url("https://h/r").local_path is None


# ----------------------------------------------------------------------------- classify

SSH = parse_url("ssh://git@example.org:2222/r.git")
HTTPS = parse_url("https://alice:tok3n@example.org/r.git")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (pygit2.AuthError("remote authentication required"), KIND_AUTH),
        (pygit2.GitError("failed to authenticate SSH session: Unable to send userauth"), KIND_AUTH),
        (pygit2.GitError("too many redirects or authentication replays"), KIND_AUTH),
        (pygit2.GitError("unexpected http status code: 403"), KIND_AUTH),
        (
            pygit2.GitError(
                "cannot push because a reference ... contains commits that are not present locally"
            ),
            KIND_DIVERGED,
        ),
        (pygit2.GitError("failed to connect to example.org: Connection refused"), KIND_UNREACHABLE),
        (pygit2.GitError("unexpected http status code: 404"), KIND_UNREACHABLE),
        (pygit2.GitError("failed to resolve address for nowhere.invalid"), KIND_UNREACHABLE),
        (pygit2.GitError("something else entirely"), KIND_ERROR),
        (ValueError("odd"), KIND_ERROR),
    ],
)
def test_kinds_from_libgit2_errors(tmp_path: Path, exc: Exception, kind: str) -> None:
    got, message = classify(exc, HTTPS, known_hosts=tmp_path / "known_hosts")
    assert got == kind, message
    assert "tok3n" not in message and "alice" not in message


def test_messages_name_the_displayed_url(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    assert classify(pygit2.GitError("boom"), HTTPS, known_hosts=kh) == (
        KIND_ERROR,
        "https://example.org/r.git: boom",
    )
    assert classify(pygit2.GitError("failed to connect"), SSH, known_hosts=kh) == (
        KIND_UNREACHABLE,
        "cannot reach ssh://git@example.org:2222/r.git: failed to connect",
    )


def test_callback_aborts_keep_their_kind_and_message(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    assert classify(AuthFailed("no key"), SSH, known_hosts=kh) == (KIND_AUTH, "no key")
    assert classify(Diverged("moved", 2), SSH, known_hosts=kh) == (KIND_DIVERGED, "moved")
    assert classify(TimedOut("timed out"), SSH, known_hosts=kh) == (
        KIND_UNREACHABLE,
        "cannot reach ssh://git@example.org:2222/r.git: timed out",
    )


def test_host_key_errors_read_known_hosts_for_ssh(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kind, message = classify(pygit2.CertificateError("invalid hostkey"), SSH, known_hosts=kh)
    assert kind == KIND_HOST_KEY and "[example.org]:2222 is unknown" in message and str(kh) in message
    kh.write_text(
        "[example.org]:2222 ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
    )
    kind, message = classify(pygit2.GitError("hostkey mismatch"), SSH, known_hosts=kh)
    assert kind == KIND_HOST_KEY and "has CHANGED" in message
    kind, message = classify(pygit2.CertificateError("the SSL certificate is invalid"), HTTPS, known_hosts=kh)
    assert (kind, message) == (
        KIND_HOST_KEY,
        "certificate of example.org is not trusted: the SSL certificate is invalid",
    )


def test_a_vanished_local_remote_is_unreachable(tmp_path: Path) -> None:
    gone = parse_url(str(tmp_path / "moved.git"))
    kind, message = classify(pygit2.GitError("could not open"), gone, known_hosts=tmp_path / "kh")
    assert kind == KIND_UNREACHABLE and f"no repository at {tmp_path / 'moved.git'}" in message
    there = parse_url(str(tmp_path))
    assert classify(pygit2.GitError("could not open"), there, known_hosts=tmp_path / "kh")[0] == KIND_ERROR


# ----------------------------------------------------------------------------- error_line


def test_error_line_is_one_bounded_line_without_secrets() -> None:
    text = "auth failed\n  for https://bob:hunter2@h/r.git\twith token abc123 (passphrase abc)"
    assert error_line(text, ["abc", "abc123", ""]) == (
        "auth failed for https://bob:***@h/r.git with token *** (passphrase ***)"
    )
    long = error_line("x" * (MAX_ERROR_LEN * 2), [])
    assert len(long) == MAX_ERROR_LEN and long.endswith("...")
    assert error_line("fine", ()) == "fine"


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("https://ghp_abcdefghijkl@host/x.git", ("ghp_abcdefghijkl",)),
        ("https://git@host/x.git", ()),
        ("https://oauth2:p%40ss@host/x.git", ("p%40ss", "p@ss")),
        ("https://ghp_abcdefghijkl:x-oauth-basic@host/x.git", ("x-oauth-basic", "ghp_abcdefghijkl")),
        ("/srv/x.git", ()),
        ("git@host:x.git", ()),
    ],
)
def test_url_secrets(url: str, found: tuple[str, ...]) -> None:
    assert url_secrets(url) == found
