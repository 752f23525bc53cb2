"""Push as the user sees it: `--once`, the daemon, `status`, `check`, against real remotes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import config_file, isolated_env, mdbackup
from tests.support.daemon import Daemon
from tests.support.git import git, head_files, init_repo
from tests.support.secrets import register
from tests.support.servers import init_bare, remote_ref
from tests.support.wait import wait_until


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    return init_bare(tmp_path / "remote.git")


def write_config(home: Path, repo: Path, text: str) -> dict[str, str]:
    return {"MDBACKUP_CONFIG": str(config_file(home, repo, text))}


def push_config(*, retry_min: float = 1, retry_max: float = 2) -> str:
    return f"[push]\nenabled = true\nretry_min = {retry_min}\nretry_max = {retry_max}\n"


def status(repo: Path, home: Path, env: dict[str, str]) -> dict:
    return mdbackup("status", "--json", cwd=repo, home=home, env=env).json()


def local_head(repo: Path) -> str:
    return git(repo, "rev-parse", "main").strip()


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_once_pushes_to_a_bare_remote(repo, home, store, bare, as_url) -> None:
    git(repo, "remote", "add", "origin", f"file://{bare}" if as_url else str(bare))
    env = write_config(home, repo, push_config())
    (store / "a.md").write_text("a\n")
    result = mdbackup("--once", cwd=repo, home=home, env=env)
    assert result.code == 0, result.err
    assert remote_ref(bare) == local_head(repo)
    push = status(repo, home, env)["push"]
    assert push["status"] == "success" and push["ahead"] == 0 and push["last_push_at"]


def test_push_disabled_leaves_the_remote_untouched(repo, home, store, bare) -> None:
    git(repo, "remote", "add", "origin", str(bare))
    env = write_config(home, repo, "")
    (store / "a.md").write_text("a\n")
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 0
    assert remote_ref(bare) is None
    assert status(repo, home, env)["push"]["status"] == "disabled"


def test_remote_moved_away_then_back_fails_then_retry_pushes_without_new_change(
    repo, home, store, bare, tmp_path
) -> None:
    git(repo, "remote", "add", "origin", str(bare))
    env = write_config(home, repo, push_config(retry_min=600, retry_max=600))
    (store / "a.md").write_text("a\n")
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 0
    away = tmp_path / "away.git"
    bare.rename(away)
    (store / "b.md").write_text("b\n")
    (store / "c.md").write_text("c\n")
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 1
    (store / "d.md").write_text("d\n")
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 1
    push = status(repo, home, env)["push"]
    assert push["status"] == "failed" and push["ahead"] == 2
    assert str(bare) in push["last_error"] and push["next_attempt_at"]
    assert mdbackup("status", cwd=repo, home=home, env=env).code == 1
    away.rename(bare)
    # nothing new to commit: the retry must still push what the remote lacks
    assert mdbackup("retry", cwd=repo, home=home, env=env).code == 0
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 0
    assert remote_ref(bare) == local_head(repo)
    push = status(repo, home, env)["push"]
    assert push["status"] == "success" and push["ahead"] == 0 and push["last_error"] is None


def test_diverged_remote_is_never_overwritten_and_commits_go_on(repo, home, store, bare, tmp_path) -> None:
    git(repo, "remote", "add", "origin", str(bare))
    env = write_config(home, repo, push_config(retry_min=600, retry_max=600))
    (store / "a.md").write_text("a\n")
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 0
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    git(other, "config", "user.email", "o@example.com")
    git(other, "config", "user.name", "Other")
    (other / "theirs.txt").write_text("from another machine\n")
    git(other, "add", "theirs.txt")
    git(other, "commit", "-qm", "theirs")
    git(other, "push", "-q", "origin", "main")
    theirs = remote_ref(bare)
    (store / "b.md").write_text("b\n")
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 1
    assert remote_ref(bare) == theirs  # nothing on the remote was overwritten
    assert head_files(repo)["notes/b.md"] == "b\n"  # committing goes on locally
    push = status(repo, home, env)["push"]
    assert push["status"] == "failed" and "remote has diverged" in push["last_error"]


def test_check_reaches_the_remote(repo, home, store, bare, tmp_path) -> None:
    git(repo, "remote", "add", "origin", str(bare))
    env = write_config(home, repo, push_config())
    ok = mdbackup("check", cwd=repo, home=home, env=env)
    assert ok.code == 0 and "remote: ok" in ok.out, ok.out + ok.err
    git(repo, "remote", "set-url", "origin", str(tmp_path / "missing.git"))
    bad = mdbackup("check", cwd=repo, home=home, env=env)
    assert bad.code == 1 and "missing.git" in bad.out
    git(repo, "remote", "remove", "origin")
    none = mdbackup("check", cwd=repo, home=home, env=env)
    assert none.code == 1 and "origin" in none.out


def test_daemon_pushes_each_commit_and_after_a_crash_between_commit_and_push(repo, home, store, bare) -> None:
    git(repo, "remote", "add", "origin", str(bare))
    config = "[watch]\ndebounce = 0.1\n" + push_config()
    d = Daemon(
        repo=repo, home=home, config=config, env={"MDBACKUP_CRASH_AT": "push_started:2"}
    )  # 1st: the push at start
    try:
        d.start()
        (store / "a.md").write_text("a\n")
        assert d.proc.wait(timeout=30) == -9  # killed after the commit, before the push
        assert "notes/a.md" in head_files(repo)
        assert remote_ref(bare) != local_head(repo)
        d2 = Daemon(repo=repo, home=home, config=config)
        try:
            d2.start()
            wait_until(lambda: remote_ref(bare) == local_head(repo), message="pushed at restart")
            (store / "b.md").write_text("b\n")
            wait_until(
                lambda: "notes/b.md" in head_files(repo) and remote_ref(bare) == local_head(repo),
                message="pushed after commit",
            )
            assert d2.stop() == 0
        finally:
            d2.close()
    finally:
        d.close()


def test_http_token_never_appears_in_logs_status_or_database(repo, home, store, http_server) -> None:
    git(repo, "remote", "add", "origin", http_server.url)
    config = push_config() + f'[auth]\nusername = "{http_server.username}"\ntoken_env = "TEST_TOKEN"\n'
    env = {**write_config(home, repo, config), "TEST_TOKEN": http_server.token}
    (store / "a.md").write_text("a\n")
    good = mdbackup("--once", "--verbose", cwd=repo, home=home, env=env)
    assert good.code == 0, good.err
    assert remote_ref(http_server.bare) == local_head(repo)
    wrong = "wrong-" + http_server.token
    bad_env = {**env, "TEST_TOKEN": wrong}
    (store / "b.md").write_text("b\n")
    bad = mdbackup("--once", "--verbose", cwd=repo, home=home, env=bad_env, timeout=30)
    assert bad.code == 1
    doc = status(repo, home, bad_env)
    assert doc["push"]["status"] == "failed" and "auth" in doc["push"]["last_error"]
    db = (repo / ".git/mdbackup/state.db").read_bytes()
    for text in (good.out, good.err, bad.out, bad.err, json.dumps(doc), db.decode("latin-1")):
        assert http_server.token not in text
        assert wrong not in text


def test_declining_hook_is_a_failed_push(repo, home, store, http_server) -> None:
    git(repo, "remote", "add", "origin", http_server.url)
    http_server.install_declining_hook("no pushes today")
    config = push_config() + f'[auth]\nusername = "{http_server.username}"\ntoken_env = "T"\n'
    env = {**write_config(home, repo, config), "T": http_server.token}
    (store / "a.md").write_text("a\n")
    result = mdbackup("--once", cwd=repo, home=home, env=env)
    assert result.code == 1
    push = status(repo, home, env)["push"]
    assert push["status"] == "failed" and "declined" in push["last_error"]
    assert remote_ref(http_server.bare) is None


def test_ssh_push_with_key_and_host_verification(repo, home, store, ssh_server) -> None:
    git(repo, "remote", "add", "origin", ssh_server.url)
    config = push_config() + f'[auth]\nssh_key = "{ssh_server.client_key}"\n'
    env = write_config(home, repo, config)
    (store / "a.md").write_text("a\n")
    unknown = mdbackup("--once", cwd=repo, home=home, env=env)  # no known_hosts entry yet
    assert unknown.code == 1
    error = status(repo, home, env)["push"]["last_error"]
    assert "127.0.0.1" in error and "known_hosts" in error
    ssh_server.write_known_hosts(home / ".ssh/known_hosts")
    ok = mdbackup("--once", cwd=repo, home=home, env=env)
    assert ok.code == 0, ok.err
    assert remote_ref(ssh_server.bare) == local_head(repo)
    ssh_server.write_known_hosts(home / ".ssh/known_hosts", changed=True)
    (store / "b.md").write_text("b\n")
    assert mdbackup("--once", cwd=repo, home=home, env=env).code == 1
    assert "changed" in status(repo, home, env)["push"]["last_error"].lower()


def test_a_token_as_the_url_user_name_never_appears_anywhere(repo, home, store, http_server) -> None:
    token = register("ghp_" + "q9" * 18)
    git(repo, "remote", "add", "origin", http_server.url.replace("http://", f"http://{token}@"))
    config = push_config() + '[auth]\ntoken_env = "TEST_TOKEN"\n'
    env = {**write_config(home, repo, config), "TEST_TOKEN": "wrong-" + http_server.token}
    (store / "a.md").write_text("a\n")
    outputs = []
    for log_format in ("json", "console"):
        ran = mdbackup(
            "--once", "--verbose", "--log-format", log_format, cwd=repo, home=home, env=env, timeout=30
        )
        assert ran.code == 1, ran.err
        outputs += [ran.out, ran.err]
    doc = status(repo, home, env)
    assert doc["push"]["status"] == "failed" and "authentication failed" in doc["push"]["last_error"]
    plain = mdbackup("status", cwd=repo, home=home, env=env)
    check = mdbackup("check", "--verbose", cwd=repo, home=home, env=env, timeout=30)
    assert check.code == 1
    db = (repo / ".git/mdbackup/state.db").read_bytes()
    for text in (*outputs, json.dumps(doc), plain.out, plain.err, check.out, check.err, db.decode("latin-1")):
        assert token not in text


# ----------------------------------------------------------------------------- racing pushes


@dataclass(frozen=True)
class Clone:
    repo: Path
    home: Path
    env: dict[str, str]


def racing_clones(
    tmp_path: Path, *, url: str, bare: Path, n: int, auth: str = "", env: dict[str, str] | None = None
):
    """`n` clones of `bare` (already holding `main`) whose `origin` is `url`, each with its own
    HOME and config pushing there. The test side reads and merges `bare` by its path."""
    clones = []
    for i in range(n):
        home = tmp_path / f"home{i}"
        home.mkdir(parents=True)
        clone = init_repo(tmp_path / f"clone{i}", commit=False)
        git(clone, "remote", "add", "origin", url)
        git(clone, "pull", "-q", str(bare), "main")
        (clone / "notes").mkdir()
        clones.append(Clone(clone, home, {**write_config(home, clone, push_config() + auth), **(env or {})}))
    return clones


def race(clones: list[Clone], bare: Path, *, rounds: int, tag: str) -> int:
    """Each round: every clone saves a file, then all run `--once` at the same moment; a run
    that says success (exit 0) must leave its head in the remote; then every clone merges
    the remote with the git CLI. Returns how many runs succeeded."""
    successes = 0
    for r in range(rounds):
        procs = []
        for i, c in enumerate(clones):
            (c.repo / "notes" / f"{tag}-{i}-{r}.md").write_text(f"round {r} clone {i}\n")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "mdbackup", "--once", "--log-format", "json"],
                    cwd=c.repo,
                    env=isolated_env(c.home, c.env),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        results = [(p.communicate(timeout=120)[1], p.returncode) for p in procs]
        remote = remote_ref(bare)
        assert remote is not None
        for c, (err, code) in zip(clones, results, strict=True):
            assert code in (0, 1), err
            if code == 0:
                successes += 1
                mine = local_head(c.repo)
                assert is_ancestor(bare, mine, remote), f"round {r}: {mine} said pushed, the remote lost it"
        for c in clones:
            git(c.repo, "pull", "-q", "--no-rebase", "--no-edit", str(bare), "main")
    return successes


def is_ancestor(repo: Path, old: str, new: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", old, new]).returncode == 0


def reflog_updates(bare: Path) -> int:
    """Assert every update of the remote's main in its reflog is a fast-forward; how many."""
    lines = (bare / "logs" / "refs" / "heads" / "main").read_text().splitlines()
    for line in lines:
        old, new = line.split()[:2]
        if set(old) != {"0"}:
            assert is_ancestor(bare, old, new), f"non-fast-forward update on the remote: {line}"
    return len(lines)


def seed_with_reflog(bare: Path, seed: Path) -> None:
    git(bare, "config", "core.logAllRefUpdates", "true")
    git(seed, "push", "-q", str(bare), "main:main")


@pytest.mark.parametrize("n", [2, 3])
def test_racing_once_runs_to_a_path_remote_never_overwrite_each_other(repo, bare, tmp_path, n) -> None:
    seed_with_reflog(bare, repo)
    clones = racing_clones(tmp_path, url=str(bare), bare=bare, n=n)
    rounds = 10 if n == 2 else 6
    successes = race(clones, bare, rounds=rounds, tag="path")
    assert successes >= rounds // 2
    assert reflog_updates(bare) >= successes


def test_racing_once_runs_to_an_http_remote_never_overwrite_each_other(repo, tmp_path, http_server) -> None:
    seed_with_reflog(http_server.bare, repo)
    auth = f'[auth]\nusername = "{http_server.username}"\ntoken_env = "TEST_TOKEN"\n'
    clones = racing_clones(
        tmp_path,
        url=http_server.url,
        bare=http_server.bare,
        n=2,
        auth=auth,
        env={"TEST_TOKEN": http_server.token},
    )
    successes = race(clones, http_server.bare, rounds=4, tag="http")
    assert successes >= 2
    assert reflog_updates(http_server.bare) >= successes


def test_racing_once_runs_to_an_ssh_remote_never_overwrite_each_other(repo, tmp_path, ssh_server) -> None:
    seed_with_reflog(ssh_server.bare, repo)
    auth = f'[auth]\nssh_key = "{ssh_server.client_key}"\n'
    clones = racing_clones(tmp_path, url=ssh_server.url, bare=ssh_server.bare, n=2, auth=auth)
    for c in clones:
        ssh_server.write_known_hosts(c.home / ".ssh" / "known_hosts")
    successes = race(clones, ssh_server.bare, rounds=4, tag="ssh")
    assert successes >= 2
    assert reflog_updates(ssh_server.bare) >= successes


# ----------------------------------------------------------------------------- TLS

TLS_PROBLEM = {  # OpenSSL's words for each problem, as the error must name it
    "self-signed": "self-signed certificate",
    "expired": "certificate has expired",
    "wrong-host": "mismatch, certificate is not valid for '127.0.0.1'",
}


def test_https_push_trusts_only_a_valid_certificate_of_the_given_ca(
    repo, home, store, https_server, test_ca, tmp_path
) -> None:
    kind, server = https_server
    git(repo, "remote", "add", "origin", server.url)
    config = push_config() + f'[auth]\nusername = "{server.username}"\ntoken_env = "TEST_TOKEN"\n'
    no_dir = tmp_path / "no-ca-dir"
    no_dir.mkdir()
    env = {
        **write_config(home, repo, config),
        "TEST_TOKEN": server.token,
        "SSL_CERT_FILE": str(test_ca.ca_file),  # the machine's own setting is replaced
        "SSL_CERT_DIR": str(no_dir),
    }
    (store / "a.md").write_text("a\n")
    ran = mdbackup("--once", "--log-format", "json", cwd=repo, home=home, env=env, timeout=60)
    if kind == "good":
        assert ran.code == 0, ran.err
        assert remote_ref(server.bare) == local_head(repo)
        assert check_ok(repo, home, env)
        return
    assert ran.code == 1, ran.err
    error = status(repo, home, env)["push"]["last_error"]
    assert error.startswith("TLS certificate of 127.0.0.1") and TLS_PROBLEM[kind] in error, error
    assert "cannot reach" not in error and "early EOF" not in error
    assert all(header == "" for header in server.authorizations)  # no credential was ever sent
    assert remote_ref(server.bare) is None


def check_ok(repo: Path, home: Path, env: dict[str, str]) -> bool:
    return mdbackup("check", cwd=repo, home=home, env=env, timeout=60).code == 0


def test_a_push_killed_in_a_linked_worktree_leaves_no_lock_in_the_common_dir(
    repo, home, tmp_path, http_server
):
    """In a linked worktree (`git worktree add`) the remote-tracking ref lives in the main
    repository's git directory: the push's marker must name the lock there, so a kill -9
    while libgit2 holds it leaves nothing the next start cannot clear."""
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(linked))
    git(repo, "remote", "add", "origin", http_server.url)
    (linked / "notes").mkdir()
    (linked / "notes" / "a.md").write_text("a\n")
    common = repo / ".git"
    own = Path(git(linked, "rev-parse", "--absolute-git-dir").strip())
    marker = own / "mdbackup" / "writing"
    # The remote's pre-receive hook holds the first push until the test lets it go, then
    # declines it; later pushes pass.
    gate = tmp_path / "gate"
    gate.mkdir()
    hook = http_server.bare / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(
        f"#!/bin/sh\ncat >/dev/null\nif [ -e {gate}/declined ]; then exit 0; fi\ntouch {gate}/held\n"
        f"while [ ! -e {gate}/go ]; do sleep 0.05; done\ntouch {gate}/declined\nexit 1\n"
    )
    hook.chmod(0o755)
    config = push_config(retry_min=600, retry_max=600)
    config += f'[auth]\nusername = "{http_server.username}"\ntoken_env = "TEST_TOKEN"\n'
    env = {"TEST_TOKEN": http_server.token}
    daemon = Daemon(repo=linked, home=home, config=config, env=env).start(wait_ready=False)
    try:
        wait_until(lambda: (gate / "held").exists(), timeout=30, message=lambda: daemon.log())
        assert marker.exists(), "the push runs inside its leftovers marker"
        daemon.kill()  # as if killed while libgit2 held the remote-tracking ref's lock:
        lock = common / "refs" / "remotes" / "origin" / "side.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("")  # where libgit2 takes it (created after the marker)
    finally:
        (gate / "go").touch()
        daemon.close()
    again = mdbackup(
        "--once",
        "--repo",
        str(linked),
        cwd=linked,
        home=home,
        env={**env, "MDBACKUP_CONFIG": str(daemon.config_path)},
    )
    assert again.code == 0, again.err + again.out
    tip = git(linked, "rev-parse", "side").strip()
    assert remote_ref(http_server.bare, "refs/heads/side") == tip
    assert not lock.exists(), "our lock in the common dir was not cleared"
    assert git(repo, "rev-parse", "refs/remotes/origin/side").strip() == tip
    assert not marker.exists()
    assert not list(common.rglob("*.lock")) and not list(own.rglob("*.lock"))
    assert git(linked, "status", "--porcelain") == ""
