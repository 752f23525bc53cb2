"""`Backup` in process: a config written and loaded as the CLI would, and a clock that
moves only when told."""

from __future__ import annotations

from pathlib import Path

from mdbackup.config import Config, Overrides, load_config


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, wall: float = 1_000_000.0) -> None:
        self.now = wall

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def make_config(
    repo: Path, body: str = "", *, max_file_size: int = 10485760, exclude: tuple[str, ...] = ()
) -> Config:
    """Write `<repo>/../config.toml` for the store `notes/` (`body` appended) and load it."""
    path = repo.parent / "config.toml"
    store = f'[store]\nrepo = "{repo}"\npath = "notes"\nmax_file_size = {max_file_size}\n'
    store += f"exclude = {list(exclude)!r}\n".replace("'", '"')
    path.write_text(store + body)
    return load_config(path, overrides=Overrides(), cwd=repo)
