"""Configuration: lookup, defaults, validation (every problem, one line each), overrides."""

from __future__ import annotations

import json
import math
import re
import subprocess
import tomllib
from dataclasses import fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdbackup.config import (
    DEFAULTS_LABEL,
    KEYS,
    SECTIONS,
    AuthConfig,
    CommitConfig,
    Config,
    ConfigError,
    LogConfig,
    Overrides,
    PushConfig,
    StateConfig,
    StoreConfig,
    WatchConfig,
    default_config,
    find_config_file,
    load_config,
)
from mdbackup.config_doc import example_toml

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
NO_OVERRIDES = Overrides()


# --------------------------------------------------------------------------- helpers


def git_init(path: Path) -> Path:
    """A fresh git working tree at `path` (created), resolved."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    return path.resolve()


def toml_value(value: Any) -> str:
    """A tiny TOML writer for the values these tests use."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        if isinstance(value, float) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(value)


def toml_text(data: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for section, table in data.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
    return "\n".join(lines) + "\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = git_init(tmp_path / "repo")
    (root / "notes").mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder that is not inside any git working tree."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder.resolve()


def write(folder: Path, text: str, name: str = "config.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None, *, cwd: Path, overrides: Overrides = NO_OVERRIDES) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides=overrides, cwd=cwd)
    assert str(info.value) == "\n".join(info.value.problems)
    for problem in info.value.problems:
        assert "\n" not in problem and problem.strip() == problem
    return info.value.problems


def load_text(text: str, *, repo: Path, overrides: Overrides = NO_OVERRIDES) -> Config:
    return load_config(write(repo, text), overrides=overrides, cwd=repo)


# --------------------------------------------------------------------------- defaults


def test_defaults_without_a_file(repo: Path) -> None:
    config = load_config(None, cwd=repo)
    assert config == default_config(repo=repo, source=None)
    assert config.store == StoreConfig(
        repo=repo, path=".", include=("**/*.md",), exclude=(), max_file_size=10485760
    )
    assert config.watch == WatchConfig(
        debounce=2.0, max_delay=30.0, poll_interval=0.0, rescan_interval=3600.0
    )
    assert config.commit == CommitConfig(
        enabled=True, message="backup: {summary}", author_name="", author_email=""
    )
    assert config.push == PushConfig(
        enabled=False, remote="origin", branch="", retry_min=5.0, retry_max=900.0
    )
    assert config.auth == AuthConfig(
        ssh_key="", ssh_passphrase_env="", username="", token_env="MDBACKUP_TOKEN", allow_plain_http=False
    )
    assert config.state == StateConfig(db="")
    assert config.log == LogConfig(level="info", format="auto")
    assert config.repo == repo and config.repo.is_absolute()
    assert config.store_prefix == ""


def test_default_repo_is_the_work_tree_around_cwd(repo: Path) -> None:
    config = load_config(None, cwd=repo / "notes")
    assert config.repo == repo
    assert config.store.path == "."


def test_an_empty_file_gives_the_defaults(repo: Path) -> None:
    path = write(repo, "")
    config = load_config(path, cwd=repo)
    assert config == default_config(repo=repo, source=path)


def test_float_keys_accept_integers_and_int_keys_stay_int(repo: Path) -> None:
    config = load_text("[watch]\ndebounce = 1\nmax_delay = 10\n[store]\nmax_file_size = 5\n", repo=repo)
    assert config.watch.debounce == 1.0 and isinstance(config.watch.debounce, float)
    assert config.watch.max_delay == 10.0 and isinstance(config.watch.max_delay, float)
    assert config.store.max_file_size == 5 and isinstance(config.store.max_file_size, int)


def test_every_dataclass_is_frozen(repo: Path) -> None:
    config = load_config(None, cwd=repo)
    for section in fields(config):
        value = getattr(config, section.name)
        if section.name == "source":
            continue
        with pytest.raises(AttributeError):
            setattr(value, fields(value)[0].name, None)


def test_log_choices_are_case_insensitive(repo: Path) -> None:
    config = load_text('[log]\nlevel = "DEBUG"\nformat = "Json"\n', repo=repo)
    assert config.log == LogConfig(level="debug", format="json")


def test_lists_become_tuples(repo: Path) -> None:
    config = load_text('[store]\ninclude = ["*.md", "*.txt"]\nexclude = ["drafts/"]\n', repo=repo)
    assert config.store.include == ("*.md", "*.txt")
    assert config.store.exclude == ("drafts/",)


# --------------------------------------------------------------------------- the example


def test_the_example_config_loads(repo: Path) -> None:
    config = load_config(EXAMPLE, overrides=Overrides(repo=repo), cwd=repo)
    assert config == default_config(repo=repo, source=EXAMPLE)


def test_the_example_is_generated_from_the_table() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == example_toml(), (
        "config.example.toml is out of step with the key table in mdbackup/config_keys.py; regenerate it:"
        " python -m mdbackup.config_doc > config.example.toml"
    )


KEY_LINE = re.compile(r"(?P<commented># )?(?P<name>[a-z_]+) = (?P<value>.+?) +# (?P<doc>.+)")
"""`key = value  # doc`, or a commented-out `# key = value  # doc`."""


def example_lines() -> dict[str, tuple[bool, Any, str]]:
    """`section.key` -> (commented out, value, comment) for every key line of the example,
    read line by line (after a section header every non-blank line must be a key line)."""
    found: dict[str, tuple[bool, Any, str]] = {}
    section = None
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        header = re.fullmatch(r"\[([a-z_]+)\]", line)
        if header:
            section = header[1]
        elif section is not None and line:
            match = KEY_LINE.fullmatch(line)
            assert match, f"not a documented key: {line}"
            value = tomllib.loads(f"v = {match['value']}")["v"]
            found[f"{section}.{match['name']}"] = (bool(match["commented"]), value, match["doc"])
    return found


def test_the_example_documents_every_key_with_its_default() -> None:
    """Checked without the renderer: every table key and no other, its default as the value,
    its doc as the comment; only a key whose default is "" may be commented out."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    lines = example_lines()
    table = {f"{section}.{name}": key for section, keys in KEYS.items() for name, key in keys.items()}
    assert list(lines) == list(table)
    active = {f"{section}.{name}" for section, values in data.items() for name in values}
    assert active == {name for name, (commented, _, _) in lines.items() if not commented}
    for name, (commented, value, doc) in lines.items():
        key = table[name]
        assert key.doc in doc, name
        parsed = key.kind(value)
        assert type(parsed) is type(key.default), name
        if commented:
            assert key.default == "" and value == key.example, name
        else:
            assert parsed == key.default, name


def test_every_section_class_has_exactly_the_table_keys() -> None:
    assert list(SECTIONS) == list(KEYS)
    for section, cls in SECTIONS.items():
        assert [f.name for f in fields(cls)] == list(KEYS[section]), section
    assert [f.name for f in fields(Config)] == [*KEYS, "source"]


def test_every_default_passes_its_own_checks() -> None:
    for section, keys in KEYS.items():
        for name, key in keys.items():
            assert [problem for check in key.checks for problem in check(key.default)] == [], (section, name)


# --------------------------------------------------------------------------- single problems


def expect_one(repo: Path, text: str, key: str, what: str) -> None:
    path = write(repo, text)
    assert problems_of(path, cwd=repo) == [f"{path}: at '{key}': {what}"]


KNOWN_SECTIONS = "auth, commit, log, push, state, store, sync, watch"
WATCH_KEYS = "debounce, max_delay, poll_interval, rescan_interval"


@pytest.mark.parametrize(
    ("text", "key", "what"),
    [
        # unknown sections and keys
        ("[extra]\na = 1\n", "extra", f"unknown section (known: {KNOWN_SECTIONS})"),
        (
            "[wach]\ndebounce = 1\n",
            "wach",
            f"unknown section; did you mean 'watch'? (known: {KNOWN_SECTIONS})",
        ),
        ("debounce = 1\n", "debounce", f"unknown section (known: {KNOWN_SECTIONS})"),
        (
            "[watch]\ndebouce = 1\n",
            "watch.debouce",
            f"unknown key; did you mean 'debounce'? (known: {WATCH_KEYS})",
        ),
        ("[watch.sub]\na = 1\n", "watch.sub", f"unknown key (known: {WATCH_KEYS})"),
        ("[state]\nzzz = 1\n", "state.zzz", "unknown key (known: db)"),
        # a section that is not a table
        ("store = 3\n", "store", "expected a table, got integer 3"),
        ('[[log]]\nlevel = "info"\n', "log", 'expected a table, got array [{"level": "info"}]'),
        # durations (float keys)
        ('[watch]\ndebounce = "2s"\n', "watch.debounce", 'expected a number of seconds, got string "2s"'),
        ("[watch]\ndebounce = true\n", "watch.debounce", "expected a number of seconds, got boolean true"),
        ("[watch]\nmax_delay = [1]\n", "watch.max_delay", "expected a number of seconds, got array [1]"),
        (
            "[watch]\npoll_interval = {a = 1}\n",
            "watch.poll_interval",
            "expected a number of seconds, got table",
        ),
        (
            "[push]\nretry_min = 1979-05-27T07:32:00Z\n",
            "push.retry_min",
            "expected a number of seconds, got datetime 1979-05-27T07:32:00+00:00",
        ),
        (
            "[push]\nretry_max = 1979-05-27\n",
            "push.retry_max",
            "expected a number of seconds, got date 1979-05-27",
        ),
        (
            "[watch]\nrescan_interval = nan\n",
            "watch.rescan_interval",
            "expected a finite number of seconds, got float nan",
        ),
        (
            "[watch]\nmax_delay = inf\n",
            "watch.max_delay",
            "expected a finite number of seconds, got float inf",
        ),
        # integers: bool is not an int, floats are rejected
        (
            "[store]\nmax_file_size = true\n",
            "store.max_file_size",
            "expected an integer number of bytes, got boolean true",
        ),
        (
            "[store]\nmax_file_size = 1.5\n",
            "store.max_file_size",
            "expected an integer number of bytes, got float 1.5",
        ),
        (
            "[store]\nmax_file_size = 1024.0\n",
            "store.max_file_size",
            "expected an integer number of bytes, got float 1024.0",
        ),
        (
            '[store]\nmax_file_size = "10MB"\n',
            "store.max_file_size",
            'expected an integer number of bytes, got string "10MB"',
        ),
        # booleans
        ("[commit]\nenabled = 1\n", "commit.enabled", "expected true or false, got integer 1"),
        ('[push]\nenabled = "yes"\n', "push.enabled", 'expected true or false, got string "yes"'),
        # strings
        ("[push]\nremote = 3\n", "push.remote", "expected a string, got integer 3"),
        ("[auth]\ntoken_env = false\n", "auth.token_env", "expected a string, got boolean false"),
        ('[commit]\nauthor_name = ["me"]\n', "commit.author_name", 'expected a string, got array ["me"]'),
        ("[state]\ndb = 2.5\n", "state.db", "expected a string, got float 2.5"),
        ("[store]\nrepo = 1\n", "store.repo", "expected a string, got integer 1"),
        ("[store]\npath = true\n", "store.path", "expected a string, got boolean true"),
        # lists of strings
        ('[store]\ninclude = "*.md"\n', "store.include", 'expected a list of strings, got string "*.md"'),
        (
            '[store]\ninclude = ["a.md", 3]\n',
            "store.include",
            "expected a list of strings, got integer 3 at index 1",
        ),
        (
            '[store]\nexclude = [""]\n',
            "store.exclude",
            "expected a list of non-empty strings, got an empty string at index 0",
        ),
        (
            '[store]\nexclude = [["a"]]\n',
            "store.exclude",
            'expected a list of strings, got array ["a"] at index 0',
        ),
        # choices
        (
            '[log]\nlevel = "verbose"\n',
            "log.level",
            'expected one of debug, info, warning, error, got string "verbose"',
        ),
        ("[log]\nlevel = 10\n", "log.level", "expected one of debug, info, warning, error, got integer 10"),
        ('[log]\nformat = "xml"\n', "log.format", 'expected one of auto, console, json, got string "xml"'),
        # ranges
        ("[watch]\ndebounce = -1\n", "watch.debounce", "must be >= 0, got -1"),
        ("[watch]\nmax_delay = 0\n", "watch.max_delay", "must be > 0, got 0"),
        ("[watch]\nmax_delay = 1.5\n", "watch.max_delay", "must be >= watch.debounce (2), got 1.5"),
        ("[watch]\ndebounce = 40\n", "watch.max_delay", "must be >= watch.debounce (40), got 30"),
        ("[watch]\npoll_interval = -0.5\n", "watch.poll_interval", "must be >= 0, got -0.5"),
        ("[watch]\nrescan_interval = -1\n", "watch.rescan_interval", "must be >= 0, got -1"),
        (
            "[watch]\nrescan_interval = 1e12\n",
            "watch.rescan_interval",
            "must be <= 31536000, got 1000000000000",
        ),
        ("[store]\nmax_file_size = 0\n", "store.max_file_size", "must be > 0, got 0"),
        ("[store]\nmax_file_size = -5\n", "store.max_file_size", "must be > 0, got -5"),
        ("[push]\nretry_min = 0\n", "push.retry_min", "must be > 0, got 0"),
        ("[push]\nretry_max = 1\n", "push.retry_max", "must be >= push.retry_min (5), got 1"),
        ('[push]\nremote = ""\n', "push.remote", "must not be empty"),
        # commit message templates
        (
            '[commit]\nmessage = "backup: {summry}"\n',
            "commit.message",
            "unknown placeholder {summry} (known: {added}, {count}, {deleted}, {files}, {hostname}, "
            "{modified}, {summary}, {timestamp})",
        ),
        ('[commit]\nmessage = "{count:>3}"\n', "commit.message", "format spec not allowed in {count:>3}"),
        (
            '[commit]\nmessage = "backup {"\n',
            "commit.message",
            "malformed braces (Single '{' encountered in format string); write {{ and }} for literal braces",
        ),
        ('[commit]\nmessage = " "\n', "commit.message", "must not be empty"),
    ],
)
def test_one_problem(repo: Path, text: str, key: str, what: str) -> None:
    expect_one(repo, text, key, what)


def test_a_very_long_value_is_shortened_in_the_problem(repo: Path) -> None:
    path = write(repo, f'[watch]\ndebounce = "{"x" * 200}"\n')
    [problem] = problems_of(path, cwd=repo)
    assert problem == f"{path}: at 'watch.debounce': expected a number of seconds, got string \"{'x' * 36}..."


def test_control_characters_stay_on_one_line(repo: Path) -> None:
    path = write(repo, '[store]\npath = "a\\nb\\u0000c"\n')
    [problem] = problems_of(path, cwd=repo)
    assert problem == f"{path}: at 'store.path': a\\nb\\x00c: contains a NUL character"


def test_invalid_toml(repo: Path) -> None:
    path = write(repo, "[watch\ndebounce = 1\n")
    [problem] = problems_of(path, cwd=repo)
    assert problem.startswith(f"{path}: invalid TOML: ")
    assert "line 1" in problem


def test_not_utf8(repo: Path) -> None:
    path = repo / "config.toml"
    path.write_bytes(b'[log]\nlevel = "\xff"\n')
    [problem] = problems_of(path, cwd=repo)
    assert problem.startswith(f"{path}: invalid TOML: ")


def test_unreadable_file(repo: Path) -> None:
    [problem] = problems_of(repo / "notes", cwd=repo)
    assert problem.startswith(f"{repo / 'notes'}: cannot read: ")


def test_a_relative_config_path_is_relative_to_cwd(repo: Path) -> None:
    write(repo / "notes", "[watch]\ndebounce = -1\n")
    assert problems_of(Path("config.toml"), cwd=repo / "notes") == [
        f"{repo / 'notes' / 'config.toml'}: at 'watch.debounce': must be >= 0, got -1"
    ]


# --------------------------------------------------------------------------- repository and store


def test_repo_relative_to_the_config_folder(tmp_path: Path, outside: Path) -> None:
    root = git_init(tmp_path / "notes-repo")
    path = write(outside, '[store]\nrepo = "../notes-repo"\n')
    config = load_config(path, cwd=tmp_path)
    assert config.repo == root
    assert config.source == path


def test_repo_with_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Path) -> None:
    root = git_init(tmp_path / "home" / "notes")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_config(write(outside, '[store]\nrepo = "~/notes"\n'), cwd=outside)
    assert config.repo == root


def test_repo_does_not_exist(repo: Path, outside: Path) -> None:
    path = write(outside, '[store]\nrepo = "missing"\n')
    assert problems_of(path, cwd=repo) == [f"{path}: at 'store.repo': {outside / 'missing'}: does not exist"]


def test_repo_is_not_a_git_work_tree(outside: Path, repo: Path) -> None:
    path = write(outside, f'[store]\nrepo = "{outside}"\n')
    assert problems_of(path, cwd=repo) == [f"{path}: at 'store.repo': {outside}: not a git working tree"]


def test_repo_is_a_file(repo: Path, outside: Path) -> None:
    (outside / "file").write_text("x")
    path = write(outside, '[store]\nrepo = "file"\n')
    assert problems_of(path, cwd=repo) == [f"{path}: at 'store.repo': {outside / 'file'}: not a folder"]


def test_repo_is_not_the_root(repo: Path, outside: Path) -> None:
    path = write(outside, f'[store]\nrepo = "{repo / "notes"}"\n')
    assert problems_of(path, cwd=repo) == [
        f"{path}: at 'store.repo': {repo / 'notes'}: not the root of a git working tree (the root is {repo})"
    ]


def test_repo_is_the_git_dir(repo: Path, outside: Path) -> None:
    path = write(outside, f'[store]\nrepo = "{repo / ".git"}"\n')
    [problem] = problems_of(path, cwd=repo)
    assert problem.startswith(f"{path}: at 'store.repo': {repo / '.git'}: not ")


def test_repo_is_bare(tmp_path: Path, repo: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    path = write(repo, f'[store]\nrepo = "{bare}"\n')
    assert problems_of(path, cwd=repo) == [f"{path}: at 'store.repo': {bare}: not a git working tree"]


def test_no_repo_anywhere(outside: Path) -> None:
    assert problems_of(None, cwd=outside) == [
        f"{DEFAULTS_LABEL}: at 'store.repo': not set, and the current directory {outside} "
        "is not inside a git working tree (pass --repo or set store.repo)"
    ]


def test_no_repo_anywhere_with_a_file(outside: Path) -> None:
    path = write(outside, "[watch]\ndebounce = 1\n")
    [problem] = problems_of(path, cwd=outside)
    assert problem.startswith(f"{path}: at 'store.repo': not set, and the current directory {outside} ")


def test_store_path(repo: Path) -> None:
    (repo / "notes" / "daily").mkdir()
    config = load_text('[store]\npath = "./notes//daily/"\n', repo=repo)
    assert config.store.path == "notes/daily"
    assert config.store_prefix == "notes/daily"


@pytest.mark.parametrize("given", [".", "", "./", "notes/.."])
def test_store_path_at_the_root(repo: Path, given: str) -> None:
    config = load_text(f'[store]\npath = "{given}"\n', repo=repo)
    assert config.store.path == "."
    assert config.store_prefix == ""


def test_store_path_absolute_inside_the_repo(repo: Path) -> None:
    config = load_text(f'[store]\npath = "{repo / "notes"}"\n', repo=repo)
    assert config.store.path == "notes"


@pytest.mark.parametrize(
    ("given", "what"),
    [
        ("..", "outside the repository {repo}"),
        ("notes/../../x", "outside the repository {repo}"),
        ("/", "outside the repository {repo}"),
        (".git", "inside .git"),
        (".git/refs", "inside .git"),
        ("notes/../.git", "inside .git"),
        ("config.toml", "not a folder"),
    ],
)
def test_bad_store_path(repo: Path, given: str, what: str) -> None:
    path = write(repo, f'[store]\npath = "{given}"\n')
    assert problems_of(path, cwd=repo) == [f"{path}: at 'store.path': {given}: {what.format(repo=repo)}"]


def test_store_folder_that_does_not_exist_yet_is_accepted(repo: Path) -> None:
    """Deleted for a moment, or not created yet: the watcher waits for it to appear."""
    config = load_text('[store]\npath = "not/yet"\n', repo=repo)
    assert config.store_prefix == "not/yet"


def test_store_symlink_out_of_the_repo(repo: Path, outside: Path) -> None:
    (repo / "link").symlink_to(outside)
    path = write(repo, '[store]\npath = "link"\n')
    assert problems_of(path, cwd=repo) == [f"{path}: at 'store.path': link: outside the repository {repo}"]


def test_state_db_and_ssh_key_are_absolute(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_text('[state]\ndb = "state/x.db"\n[auth]\nssh_key = "~/.ssh/key"\n', repo=repo)
    assert config.state.db == str(repo / "state" / "x.db")
    assert config.auth.ssh_key == str(tmp_path / "home" / ".ssh" / "key")


def test_state_db_relative_to_cwd_without_a_file(repo: Path) -> None:
    config = load_config(None, cwd=repo / "notes")
    assert config.state.db == ""


def test_state_db_is_a_folder(repo: Path) -> None:
    path = write(repo, '[state]\ndb = "notes"\n')
    assert problems_of(path, cwd=repo) == [
        f"{path}: at 'state.db': {repo / 'notes'}: is a folder, expected a file"
    ]


# --------------------------------------------------------------------------- overrides


def test_overrides_replace_the_file(repo: Path, tmp_path: Path) -> None:
    other = git_init(tmp_path / "other")
    (other / "sub").mkdir()
    path = write(repo, '[store]\npath = "notes"\n[push]\nenabled = false\n')
    config = load_config(path, overrides=Overrides(repo=Path("../other"), store="sub", push=True), cwd=repo)
    assert config.repo == other
    assert config.store.path == "sub"
    assert config.push.enabled is True
    config = load_config(path, overrides=Overrides(push=False), cwd=repo)
    assert (config.repo, config.store.path, config.push.enabled) == (repo, "notes", False)


def test_bad_repo_override(repo: Path, outside: Path) -> None:
    assert problems_of(None, cwd=repo, overrides=Overrides(repo=outside)) == [
        f"--repo: {outside}: not a git working tree"
    ]
    assert problems_of(None, cwd=repo, overrides=Overrides(repo=Path("nope"))) == [
        f"--repo: {repo / 'nope'}: does not exist"
    ]


def test_bad_store_override(repo: Path) -> None:
    assert problems_of(None, cwd=repo, overrides=Overrides(store="../x")) == [
        f"--store: ../x: outside the repository {repo}"
    ]


def test_overridden_file_values_are_still_type_checked(repo: Path) -> None:
    path = write(repo, "[store]\nrepo = 3\npath = 4\n")
    assert problems_of(path, cwd=repo, overrides=Overrides(repo=repo, store="notes")) == [
        f"{path}: at 'store.repo': expected a string, got integer 3",
        f"{path}: at 'store.path': expected a string, got integer 4",
    ]


def test_an_overridden_repo_is_not_checked_on_disk(repo: Path) -> None:
    path = write(repo, '[store]\nrepo = "/does/not/exist"\n')
    assert load_config(path, overrides=Overrides(repo=repo), cwd=repo).repo == repo


# --------------------------------------------------------------------------- all problems at once


def test_every_problem_is_reported_at_once(repo: Path) -> None:
    path = write(
        repo,
        "[store]\n"
        'path = "../x"\n'
        "include = [1]\n"
        "max_file_size = true\n"
        "[watch]\n"
        'debounce = "2s"\n'
        "max_delay = -1\n"
        "bogus = 1\n"
        "[commit]\n"
        'message = "{nope} {count:3}"\n'
        "[push]\n"
        "retry_min = 10\n"
        "retry_max = 2\n"
        "[log]\n"
        'level = "loud"\n'
        "[other]\n",
    )
    assert problems_of(path, cwd=repo, overrides=Overrides(repo=repo / "notes")) == [
        f"{path}: at 'store.include': expected a list of strings, got integer 1 at index 0",
        f"{path}: at 'store.max_file_size': expected an integer number of bytes, got boolean true",
        f"{path}: at 'watch.debounce': expected a number of seconds, got string \"2s\"",
        f"{path}: at 'watch.max_delay': must be > 0, got -1",
        f"{path}: at 'watch.bogus': unknown key (known: {WATCH_KEYS})",
        f"{path}: at 'commit.message': unknown placeholder {{nope}} (known: {{added}}, {{count}}, "
        "{deleted}, {files}, {hostname}, {modified}, {summary}, {timestamp})",
        f"{path}: at 'commit.message': format spec not allowed in {{count:3}}",
        f"{path}: at 'log.level': expected one of debug, info, warning, error, got string \"loud\"",
        f"{path}: at 'other': unknown section (known: {KNOWN_SECTIONS})",
        f"{path}: at 'push.retry_max': must be >= push.retry_min (10), got 2",
        f"--repo: {repo / 'notes'}: not the root of a git working tree (the root is {repo})",
    ]


def test_store_path_is_checked_alongside_other_problems(repo: Path) -> None:
    path = write(repo, '[store]\npath = ".git"\n[watch]\ndebounce = -1\n')
    assert problems_of(path, cwd=repo) == [
        f"{path}: at 'watch.debounce': must be >= 0, got -1",
        f"{path}: at 'store.path': .git: inside .git",
    ]


# --------------------------------------------------------------------------- lookup


def test_lookup_explicit_first(tmp_path: Path) -> None:
    explicit = write(tmp_path, "", "explicit.toml")
    from_env = write(tmp_path, "", "env.toml")
    environ = {"MDBACKUP_CONFIG": str(from_env), "XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)}
    assert find_config_file(explicit=explicit, environ=environ) == explicit


def test_lookup_env_second(tmp_path: Path) -> None:
    from_env = write(tmp_path, "", "env.toml")
    (tmp_path / "mdbackup").mkdir()
    write(tmp_path / "mdbackup", "")
    environ = {"MDBACKUP_CONFIG": str(from_env), "XDG_CONFIG_HOME": str(tmp_path)}
    assert find_config_file(explicit=None, environ=environ) == from_env


def test_lookup_xdg_third(tmp_path: Path) -> None:
    (tmp_path / "mdbackup").mkdir()
    xdg = write(tmp_path / "mdbackup", "")
    for environ in (
        {"XDG_CONFIG_HOME": str(tmp_path)},
        {"XDG_CONFIG_HOME": str(tmp_path), "MDBACKUP_CONFIG": ""},
    ):
        assert find_config_file(explicit=None, environ=environ) == xdg


def test_lookup_xdg_defaults_to_dot_config(tmp_path: Path) -> None:
    (tmp_path / ".config" / "mdbackup").mkdir(parents=True)
    home_config = write(tmp_path / ".config" / "mdbackup", "")
    for xdg in ({}, {"XDG_CONFIG_HOME": ""}, {"XDG_CONFIG_HOME": "relative/ignored"}):
        assert find_config_file(explicit=None, environ={"HOME": str(tmp_path), **xdg}) == home_config


def test_lookup_nothing(tmp_path: Path) -> None:
    assert find_config_file(explicit=None, environ={"HOME": str(tmp_path)}) is None
    assert find_config_file(explicit=None, environ={"XDG_CONFIG_HOME": str(tmp_path)}) is None


def test_lookup_missing_explicit_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config_file(explicit=tmp_path / "nope.toml", environ={})
    assert info.value.problems == [f"--config: {tmp_path / 'nope.toml'}: no such file"]


def test_lookup_missing_env_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config_file(explicit=None, environ={"MDBACKUP_CONFIG": str(tmp_path / "nope.toml")})
    assert info.value.problems == [f"$MDBACKUP_CONFIG: {tmp_path / 'nope.toml'}: no such file"]


def test_lookup_a_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        find_config_file(explicit=tmp_path, environ={})


def test_lookup_expands_tilde_with_the_given_home(tmp_path: Path) -> None:
    config = write(tmp_path, "", "c.toml")
    assert find_config_file(explicit=Path("~/c.toml"), environ={"HOME": str(tmp_path)}) == config
    assert (
        find_config_file(explicit=None, environ={"HOME": str(tmp_path), "MDBACKUP_CONFIG": "~/c.toml"})
        == config
    )


# --------------------------------------------------------------------------- mutations of the example

# What each key accepts, by TOML type (the contract's types).
SECONDS = (int, float)
KEY_TYPES: dict[str, tuple[type, ...]] = {
    "store.repo": (str,),
    "store.path": (str,),
    "store.include": (list,),
    "store.exclude": (list,),
    "store.max_file_size": (int,),
    "watch.debounce": SECONDS,
    "watch.max_delay": SECONDS,
    "watch.poll_interval": SECONDS,
    "watch.rescan_interval": SECONDS,
    "commit.enabled": (bool,),
    "commit.message": (str,),
    "commit.author_name": (str,),
    "commit.author_email": (str,),
    "push.enabled": (bool,),
    "push.remote": (str,),
    "push.branch": (str,),
    "push.retry_min": SECONDS,
    "push.retry_max": SECONDS,
    "auth.ssh_key": (str,),
    "auth.ssh_passphrase_env": (str,),
    "auth.username": (str,),
    "auth.token_env": (str,),
    "auth.allow_plain_http": (bool,),
    "sync.enabled": (bool,),
    "sync.interval": SECONDS,
    "state.db": (str,),
    "log.level": (str,),
    "log.format": (str,),
}

OTHER_VALUES: tuple[Any, ...] = (
    "text",
    7,
    2.5,
    True,
    False,
    ["a.md"],
    [1, 2],
    [],
    {"k": 1},
    datetime(1979, 5, 27, 7, 32, tzinfo=UTC),
    date(1979, 5, 27),
)


def accepts(key: str, value: Any) -> bool:
    """Whether `value` has a TOML type `key` accepts (bool is never a number)."""
    types = KEY_TYPES[key]
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, list):
        return list in types and all(isinstance(item, str) for item in value)
    return isinstance(value, types)


def example_data() -> dict[str, dict[str, Any]]:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["store"] = {"repo": ".", **data["store"]}
    return data


def mutations() -> list[tuple[str, Any]]:
    return [(key, value) for key in KEY_TYPES for value in OTHER_VALUES if not accepts(key, value)]


def test_there_are_many_mutations_and_every_key_is_covered() -> None:
    assert len(mutations()) >= 100
    data = example_data()
    assert {f"{s}.{k}" for s, table in data.items() for k in table} == set(KEY_TYPES)


@pytest.fixture(scope="module")
def mutation_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return git_init(tmp_path_factory.mktemp("mutations") / "repo")


@pytest.mark.parametrize(("key", "value"), mutations(), ids=lambda v: repr(v)[:30])
def test_a_value_of_another_type_names_its_key(mutation_repo: Path, key: str, value: Any) -> None:
    data = example_data()
    section, name = key.split(".")
    data[section][name] = value
    path = write(mutation_repo, toml_text(data), f"mutated-{section}-{name}.toml")
    assert load_config(write(mutation_repo, toml_text(example_data()), "valid.toml"), cwd=mutation_repo)
    with pytest.raises(ConfigError) as info:
        load_config(path, cwd=mutation_repo)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}: at '{key}': expected ")


# --------------------------------------------------------------------------- fuzzing any value of any key

RELATED = {"watch.debounce": "watch.max_delay", "push.retry_min": "push.retry_max"}
"""A value of the first key can make the second one wrong (it must be >= the first)."""

toml_scalars = st.one_of(
    st.text(max_size=300),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
)
toml_values = st.one_of(
    toml_scalars, st.lists(toml_scalars, max_size=3), st.lists(st.text(max_size=20), max_size=3)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(sorted(KEY_TYPES)), value=toml_values)
def test_any_value_loads_or_names_its_key(mutation_repo: Path, key: str, value: Any) -> None:
    data = example_data()
    section, name = key.split(".")
    data[section][name] = value
    path = write(mutation_repo, toml_text(data), "fuzzed.toml")
    try:
        load_config(path, cwd=mutation_repo)
    except ConfigError as exc:
        for problem in exc.problems:
            assert problem.startswith((f"{path}: at '{key}': ", f"{path}: at '{RELATED.get(key)}': ")), (
                problem
            )
            assert "\n" not in problem
