"""`Backup` in process: a config written and loaded as the CLI would, and a clock that
moves only when told."""

from __future__ import annotations

from pathlib import Path

from mdbackup.config import Config, Overrides, load_config


class FakeClock:
    """A clock that moves only when told. Setting `now` moves both clocks by the same
    amount (time passing); `step_wall` moves only the wall clock (an NTP step, a user
    changing the date), as a real wall clock can and a monotonic one cannot."""

    def __init__(self, wall: float = 1_000_000.0) -> None:
        self._wall = wall
        self._mono = 5_000.0

    @property
    def now(self) -> float:
        return self._wall

    @now.setter
    def now(self, value: float) -> None:
        self._mono += value - self._wall
        self._wall = value

    def step_wall(self, seconds: float) -> None:
        self._wall += seconds

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono


def make_config(
    repo: Path, body: str = "", *, max_file_size: int = 10485760, exclude: tuple[str, ...] = ()
) -> Config:
    """Write `<repo>/../config.toml` for the store `notes/` (`body` appended) and load it."""
    path = repo.parent / "config.toml"
    store = f'[store]\nrepo = "{repo}"\npath = "notes"\nmax_file_size = {max_file_size}\n'
    store += f"exclude = {list(exclude)!r}\n".replace("'", '"')
    path.write_text(store + body)
    return load_config(path, overrides=Overrides(), cwd=repo)
