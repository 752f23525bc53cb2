"""Real git servers on 127.0.0.1 for network tests: OpenSSH `sshd`, smart HTTP, and `ssh-agent`.

`tests/conftest.py` loads this module as a plugin (`pytest_plugins`), so its fixtures
`ssh_server` and `http_server` are there for every test.

Everything binds to 127.0.0.1 on a free port, waits on a condition with a bounded
poll (never a fixed sleep), and is stopped in teardown (no leaked threads or
processes). The git CLI is used here only to create and inspect the server side
(bare repositories, `git http-backend`); the daemon itself never runs git.

`ssh_server` skips when `/usr/sbin/sshd` (Debian: `openssh-server`) or
`ssh-keygen` (`openssh-client`) is missing; `http_server` skips when
`git http-backend` is missing; `ssh_agent()` needs `ssh-agent`/`ssh-add`.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import http.server
import os
import secrets
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import secrets as test_secrets
from tests.support.wait import WaitTimeout, wait_until

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 10.0  # seconds to wait for a server to accept connections


# ----------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _run(*args: str | os.PathLike, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw)


def init_bare(path: Path) -> Path:
    """`git init --bare` with main as the default branch."""
    _run("git", "init", "-q", "--bare", "--initial-branch=main", path)
    return path


def remote_ref(bare: Path, ref: str = "refs/heads/main") -> str | None:
    """The oid of `ref` in `bare`, read with the git CLI (None when it does not exist)."""
    proc = subprocess.run(
        ["git", "--git-dir", str(bare), "rev-parse", "--verify", "--quiet", ref],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() or None


def install_declining_hook(bare: Path, message: str = "push declined by test hook") -> Path:
    """Install a `pre-receive` hook in `bare` that prints `message` and refuses every push."""
    hook = bare / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    hook.chmod(0o755)
    return hook


def keygen(path: Path, *, passphrase: str = "", comment: str = "mdbackup-test") -> tuple[Path, Path]:
    """Generate an ed25519 key pair at `path` (+ `.pub`); returns (private, public)."""
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", path)
    return path, Path(f"{path}.pub")


def _pub_line(pub: Path) -> str:
    """`TYPE BASE64` of a public key file (no comment)."""
    kind, blob = pub.read_text().split()[:2]
    return f"{kind} {blob}"


# ----------------------------------------------------------------------------- ssh


@dataclass
class SSHServer:
    """A running OpenSSH server with one bare repository.

    `url` is `ssh://USER@127.0.0.1:PORT/abs/path/remote.git`. Both `client_key`
    (unencrypted) and `passphrase_key` (protected by `passphrase`) are in the
    server's authorized_keys; `unauthorized_key` is not. `known_hosts_line` is
    the line to put in a client's known_hosts (`[127.0.0.1]:PORT ssh-ed25519 ...`).
    """

    host: str
    port: int
    user: str
    url: str
    bare: Path
    workdir: Path
    client_key: Path
    client_pub: Path
    passphrase_key: Path
    passphrase_pub: Path
    passphrase: str
    unauthorized_key: Path
    unauthorized_pub: Path
    host_pub: Path
    known_hosts_line: str
    process: subprocess.Popen = field(repr=False)

    @property
    def host_pattern(self) -> str:
        """How known_hosts names this server (`[host]:port` for a port other than 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def other_host_key_line(self) -> str:
        """A known_hosts line for this host and port with a DIFFERENT key ("changed host key")."""
        other = self.workdir / f"other_host_key_{secrets.token_hex(4)}"
        _, pub = keygen(other, comment="other-host-key")
        return f"{self.host_pattern} {_pub_line(pub)}"

    def write_known_hosts(self, path: Path, *, changed: bool = False, hashed: bool = False) -> Path:
        """Write a known_hosts file naming this server (with a changed key when `changed`)."""
        line = self.other_host_key_line() if changed else self.known_hosts_line
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n")
        if hashed:
            _run("ssh-keygen", "-q", "-H", "-f", path)
            Path(f"{path}.old").unlink(missing_ok=True)
        return path

    def reset_bare(self) -> None:
        """Empty the remote repository (fresh `git init --bare` at the same path)."""
        shutil.rmtree(self.bare)
        init_bare(self.bare)


def _sshd_config(tmp: Path, port: int, host_key: Path, authorized_keys: Path) -> Path:
    config = tmp / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress 127.0.0.1:{port}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized_keys}",
                "PidFile none",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "AllowAgentForwarding no",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "PrintMotd no",
                "PrintLastLog no",
                "UseDNS no",
                "LogLevel VERBOSE",
                "MaxStartups 100",
                "MaxAuthTries 10",
                "",
            ]
        )
    )
    return config


def _stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate a process we started (by pid), escalating to SIGKILL; always reaps it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


@pytest.fixture
def ssh_server(tmp_path_factory) -> Iterator[SSHServer]:
    """A real OpenSSH `sshd -D -e` on 127.0.0.1:PORT, running as the current user, with a bare repo."""
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} not installed (Debian: apt-get install openssh-server)")
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not installed (Debian: apt-get install openssh-client)")
    tmp = tmp_path_factory.mktemp("sshd")
    os.chmod(tmp, 0o700)
    user = getpass.getuser()
    if os.geteuid() == 0:
        # sshd started as root insists on its privilege-separation directory
        # (normally made by the systemd unit).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    host_key, host_pub = keygen(tmp / "ssh_host_ed25519_key", comment="test-host")
    client_key, client_pub = keygen(tmp / "id_client")
    passphrase = test_secrets.register("correct horse battery " + secrets.token_hex(4))
    pass_key, pass_pub = keygen(tmp / "id_passphrase", passphrase=passphrase)
    unauth_key, unauth_pub = keygen(tmp / "id_unauthorized")
    authorized = tmp / "authorized_keys"
    authorized.write_text(client_pub.read_text() + pass_pub.read_text())
    authorized.chmod(0o600)

    bare = init_bare(tmp / "remote.git")
    port = free_port()
    config = _sshd_config(tmp, port, host_key, authorized)
    stderr_path = tmp / "sshd.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        with contextlib.suppress(WaitTimeout):  # reported below, with sshd's stderr
            wait_until(
                lambda: proc.poll() is not None or port_accepts(port),
                timeout=START_TIMEOUT,
                message=f"sshd on 127.0.0.1:{port}",
            )
        if proc.poll() is not None or not port_accepts(port):
            _stop(proc)
            pytest.fail(
                f"sshd did not come up on 127.0.0.1:{port} (exit {proc.returncode}):\n"
                + stderr_path.read_text(errors="replace")
            )
        pattern = f"[127.0.0.1]:{port}"
        yield SSHServer(
            host="127.0.0.1",
            port=port,
            user=user,
            url=f"ssh://{user}@127.0.0.1:{port}{bare}",
            bare=bare,
            workdir=tmp,
            client_key=client_key,
            client_pub=client_pub,
            passphrase_key=pass_key,
            passphrase_pub=pass_pub,
            passphrase=passphrase,
            unauthorized_key=unauth_key,
            unauthorized_pub=unauth_pub,
            host_pub=host_pub,
            known_hosts_line=f"{pattern} {_pub_line(host_pub)}",
            process=proc,
        )
    finally:
        # Killing the listener's process group also ends its per-connection children.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


# ----------------------------------------------------------------------------- ssh-agent


@contextlib.contextmanager
def ssh_agent(*keys: Path, passphrase: str = "") -> Iterator[str]:
    """Run a real `ssh-agent -D -a SOCK`, `ssh-add` `keys`, yield the SSH_AUTH_SOCK path.

    The caller decides how the socket reaches libssh2 (e.g. `monkeypatch.setenv`).
    A passphrase-protected key is added via SSH_ASKPASS with `passphrase`.
    """
    for tool in ("ssh-agent", "ssh-add"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian: apt-get install openssh-client)")
    # Unix socket paths are limited to ~107 bytes: keep it short.
    import tempfile

    sockdir = Path(tempfile.mkdtemp(prefix="agent-"))
    sock = sockdir / "agent.sock"
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with contextlib.suppress(WaitTimeout):  # reported below, with the agent's output
            wait_until(
                lambda: proc.poll() is not None or sock.exists(),
                timeout=START_TIMEOUT,
                message="ssh-agent socket",
            )
        if proc.poll() is not None or not sock.exists():
            _stop(proc)
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"ssh-agent did not start: {out}")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SSH_AUTH_SOCK": str(sock)}
        if passphrase:
            askpass = sockdir / "askpass"
            askpass.write_text('#!/bin/sh\ncat "$(dirname "$0")/pp"\n')
            askpass.chmod(0o700)
            pp = sockdir / "pp"
            pp.write_text(passphrase + "\n")
            pp.chmod(0o600)
            env.update(SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
        for key in keys:
            subprocess.run(
                ["ssh-add", str(key)],
                env=env,
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=START_TIMEOUT,
            )
        yield str(sock)
    finally:
        _stop(proc)
        if proc.stdout:
            proc.stdout.close()
        shutil.rmtree(sockdir, ignore_errors=True)


# ----------------------------------------------------------------------------- smart http


class _GitHTTPHandler(http.server.BaseHTTPRequestHandler):
    """Basic-auth gate in front of `git http-backend` (CGI)."""

    protocol_version = "HTTP/1.1"
    timeout = 15  # socket timeout: a stuck client cannot pin a handler thread forever
    server: _GitHTTPServer

    def log_message(self, format: str, *args) -> None:
        self.server.log.append(format % args)

    # -- request body (Content-Length or chunked) --

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed during a chunked body")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers until an empty line
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after the chunk
            self.server.chunked_requests += 1
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def _authorized(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if secrets.compare_digest(user, self.server.username) and secrets.compare_digest(
            password, self.server.token
        ):
            return user
        return None

    def _handle(self) -> None:
        body = self._read_body() if self.command == "POST" else b""
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        if self.server.redirect_to is not None and (
            not self.server.redirect_after_auth or self._authorized() is not None
        ):
            self._send(302, b"moved\n", {"Location": self.server.redirect_to + self.path})
            return
        user = self._authorized()
        if user is None:
            self.server.auth_failures += 1
            self._send(
                401,
                b"authentication required\n",
                {"WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain"},
            )
            return
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.server.root),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_USER": user,
            "REMOTE_ADDR": self.client_address[0],
            "AUTH_TYPE": "Basic",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
        for name in ("Content-Encoding", "Git-Protocol"):
            if self.headers.get(name):
                env["HTTP_" + name.upper().replace("-", "_")] = self.headers[name]
        if self.server.stream:
            self._stream_backend(body, env)
            return
        proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60)
        head, sep, out = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, out = proc.stdout.partition(b"\n\n")
        if proc.returncode != 0 and not sep:
            self._send(500, proc.stderr or b"http-backend failed\n", {"Content-Type": "text/plain"})
            return
        code, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                code = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        self._send(code, out, headers)

    def _stream_backend(self, body: bytes, env: dict[str, str]) -> None:
        """Run `git http-backend` and pass its output on as it comes (chunked), the way a
        real server lets a slow hook's messages through while it runs."""
        proc = subprocess.Popen(
            ["git", "http-backend"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(body)
            proc.stdin.close()
            code, headers = 200, {}
            while (line := proc.stdout.readline().decode("latin-1").strip()) != "":
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    code = int(value.strip().split()[0])
                else:
                    headers[name.strip()] = value.strip()
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            while data := proc.stdout.read1(65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True
        finally:
            proc.stdout.close()
            proc.wait(timeout=60)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()


class _GitHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, addr, root: Path, username: str, token: str):
        super().__init__(addr, _GitHTTPHandler)
        self.root = root
        self.username = username
        self.token = token
        self.log: list[str] = []
        self.auth_failures = 0
        self.chunked_requests = 0
        self.authorizations: list[str] = []  # every request's Authorization header ("" if none)
        self.redirect_to: str | None = None  # set: answer 302 to this URL + the request path
        self.redirect_after_auth = False  # True: only an authorized request is redirected
        self.tls: ssl.SSLContext | None = None
        self.stream = False  # True: responses are passed on as http-backend writes them

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept; with `tls`, wrap the connection (the handshake runs in the handler's thread)."""
        conn, addr = super().get_request()
        if self.tls is not None:
            conn.settimeout(_GitHTTPHandler.timeout)
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A refused TLS handshake or a client gone is part of the tests: keep it quiet."""
        self.log.append(f"error from {client_address}")


@dataclass
class HTTPServer:
    """A running smart-HTTP git server (Basic auth) with one bare repository at `url`.

    `redirect(to)` makes it answer every request with a 302 to `to` + the path;
    `authorizations` lists the Authorization header of every request it received."""

    url: str
    username: str
    token: str
    bare: Path
    port: int
    server: _GitHTTPServer = field(repr=False)

    @property
    def auth_failures(self) -> int:
        """How many requests were answered 401 so far."""
        return self.server.auth_failures

    @property
    def chunked_requests(self) -> int:
        """How many request bodies arrived with Transfer-Encoding: chunked."""
        return self.server.chunked_requests

    def install_declining_hook(self, message: str = "push declined by test hook") -> Path:
        return install_declining_hook(self.bare, message)

    @property
    def authorizations(self) -> list[str]:
        """The Authorization header of every request so far ("" when there was none)."""
        return list(self.server.authorizations)

    def stream_responses(self, on: bool = True) -> None:
        """Pass `git http-backend`'s output on as it comes (chunked) instead of all at once
        at the end: a slow pre-receive hook's lines then reach the client one by one."""
        self.server.stream = on

    def install_hook(self, name: str, script: str) -> Path:
        """An executable hook `name` (e.g. "pre-receive") in the served bare repository."""
        hook = self.bare / "hooks" / name
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(script)
        hook.chmod(0o755)
        return hook

    def redirect(self, to: str | None, *, after_auth: bool = False) -> None:
        """Answer every request (every authorized one, with `after_auth`) with a 302 to
        `to` + the request path; None stops redirecting."""
        self.server.redirect_to = to
        self.server.redirect_after_auth = after_auth


def _have_http_backend() -> bool:
    return (
        subprocess.run(
            ["git", "http-backend"],
            capture_output=True,
            env={"PATH": os.environ.get("PATH", ""), "REQUEST_METHOD": "GET"},
        ).returncode
        != 127
    )


@contextlib.contextmanager
def serve_git_http(
    root: Path, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> Iterator[HTTPServer]:
    """A smart-HTTP git server over `root` (a new bare `remote.git` in it) listening on
    127.0.0.1, named `host` in its URL; over TLS with `tls` (then the URL is https://).
    Stopped and joined on exit."""
    bare = init_bare(root / "remote.git")
    username = "tester"
    token = test_secrets.register("tok-" + secrets.token_hex(16))
    server = _GitHTTPServer(("127.0.0.1", 0), root, username, token)
    server.tls = tls
    port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"git-http-{port}", daemon=False
    )
    thread.start()
    try:
        wait_until(lambda: port_accepts(port), timeout=START_TIMEOUT, message="http server")
        scheme = "https" if tls is not None else "http"
        yield HTTPServer(
            url=f"{scheme}://{host}:{port}/remote.git",
            username=username,
            token=token,
            bare=bare,
            port=port,
            server=server,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive(), "http server thread did not stop"


# ----------------------------------------------------------------------------- TLS

TLS_KINDS = ("good", "self-signed", "expired", "wrong-host")


@dataclass(frozen=True)
class TlsCA:
    """A throw-away CA (`ca_file`) and server certificates from `openssl`: `good` for
    127.0.0.1/localhost, `expired`, `wrong-host` (only `wrong.example`) signed by it, and a
    `self-signed` one for 127.0.0.1 that no CA vouches for. `cert(kind)` gives (cert, key)."""

    folder: Path
    ca_file: Path

    def cert(self, kind: str) -> tuple[Path, Path]:
        return self.folder / f"{kind}.crt", self.folder / f"{kind}.key"

    def context(self, kind: str) -> ssl.SSLContext:
        """A server-side TLS context presenting the `kind` certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = self.cert(kind)
        context.load_cert_chain(str(cert), str(key))
        return context


_CA_CONFIG = """[ca]
default_ca = test
[test]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
"""


def make_test_ca(folder: Path) -> TlsCA:
    """Generate the CA and the server certificates of `TlsCA` under `folder` (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issued").mkdir()
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("1000\n")
    config = folder / "ca.cnf"
    config.write_text(_CA_CONFIG.format(dir=folder))
    ca_key, ca_file = folder / "ca.key", folder / "ca.crt"

    def openssl(*args: str | os.PathLike) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_file,
            "-days", "2", "-subj", "/CN=mdbackup test CA")  # fmt: skip
    names = {
        "good": "IP:127.0.0.1,DNS:localhost",
        "expired": "IP:127.0.0.1,DNS:localhost",
        "wrong-host": "DNS:wrong.example",
    }
    for kind, san in names.items():
        csr = folder / f"{kind}.csr"
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", folder / f"{kind}.key", "-out", csr,
                "-subj", f"/CN={kind}", "-addext", f"subjectAltName={san}")  # fmt: skip
        dates = (
            ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]
            if kind == "expired"
            else ["-days", "2"]
        )
        openssl("ca", "-batch", "-config", config, "-cert", ca_file, "-keyfile", ca_key, "-in", csr,
                "-out", folder / f"{kind}.crt", *dates)  # fmt: skip
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", folder / "self-signed.key",
            "-out", folder / "self-signed.crt", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")  # fmt: skip
    return TlsCA(folder, ca_file)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> TlsCA:
    """The throw-away CA and certificates (`make_test_ca`), made once per session."""
    return make_test_ca(tmp_path_factory.mktemp("tls") / "ca")


@pytest.fixture(params=TLS_KINDS)
def https_server(request, test_ca: TlsCA, tmp_path_factory) -> Iterator[tuple[str, HTTPServer]]:
    """(kind, server): a smart-HTTP git server over TLS on 127.0.0.1 presenting each kind
    of certificate of `test_ca` in turn; only "good" should be trusted with the CA."""
    if not _have_http_backend():
        pytest.skip("git http-backend not available")
    kind = request.param
    with serve_git_http(tmp_path_factory.mktemp("https"), tls=test_ca.context(kind)) as server:
        yield kind, server


@pytest.fixture
def http_server(tmp_path_factory) -> Iterator[HTTPServer]:
    """A real smart-HTTP git server (`git http-backend` behind HTTP Basic auth) on 127.0.0.1."""
    if not _have_http_backend():
        pytest.skip("git http-backend not available")
    with serve_git_http(tmp_path_factory.mktemp("http")) as server:
        yield server


@pytest.fixture
def other_http_server(tmp_path_factory) -> Iterator[HTTPServer]:
    """A second smart-HTTP git server, named `localhost` in its URL (another host name than
    `http_server`'s 127.0.0.1): where a redirect to another host lands."""
    if not _have_http_backend():
        pytest.skip("git http-backend not available")
    with serve_git_http(tmp_path_factory.mktemp("http-other"), host="localhost") as server:
        yield server


__all__ = [
    "TLS_KINDS",
    "HTTPServer",
    "SSHServer",
    "TlsCA",
    "free_port",
    "http_server",
    "https_server",
    "init_bare",
    "install_declining_hook",
    "keygen",
    "make_test_ca",
    "other_http_server",
    "port_accepts",
    "remote_ref",
    "serve_git_http",
    "ssh_agent",
    "ssh_server",
    "test_ca",
]
