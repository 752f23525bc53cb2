"""The CLI as a subprocess, run as a user would, in an environment of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support import secrets

ROOT = Path(__file__).resolve().parents[2]  # the checkout
PYTHONPATH = f"{ROOT / 'daemon'}{os.pathsep}{ROOT}"  # the package (src layout), `tests` and `bench`


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def isolated_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment with its own HOME and no config from the user's machine."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "MDBACKUP_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "PYTHONPATH": PYTHONPATH,
        }
    )
    env.update(extra or {})
    return env


def config_file(home: Path, repo: Path, text: str = "", store: str = "notes") -> Path:
    """Write `<home>/config.toml` for `repo`'s store, `text` appended; return its path."""
    path = home / "config.toml"
    path.write_text(f'[store]\nrepo = "{repo}"\npath = "{store}"\n{text}')
    return path


def mdbackup(
    *args: str,
    cwd: Path,
    home: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    prefix: Sequence[str] = (),
    errors: str = "strict",
) -> Result:
    """Run `python -m mdbackup ARGS` as a user would, and capture its output.

    `prefix`: a command to run it through (e.g. setpriv, to run it as another user);
    `errors`: how undecodable output is decoded (`strict` fails the test)."""
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "mdbackup", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors=errors,
        env=isolated_env(home, env),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    secrets.assert_clean(proc.stdout + proc.stderr, where=f"the output of mdbackup {' '.join(args)}")
    return Result(proc.returncode, proc.stdout, proc.stderr)
