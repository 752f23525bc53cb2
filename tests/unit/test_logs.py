"""mdbackup.logs: JSON lines or console, the level filter, secrets scrubbed from every event."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from mdbackup import logs


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() is process-wide: put back what was there, and forget our secrets."""
    saved = structlog.get_config()
    secrets = set(logs._secrets)
    yield
    structlog.configure(**saved)
    logs._secrets.intersection_update(secrets)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(
    ("fmt", "stream", "json_out"),
    [
        ("auto", io.StringIO(), True),
        ("auto", Terminal(), False),
        ("json", Terminal(), True),
        ("console", io.StringIO(), False),
    ],
)
def test_use_json(fmt: str, stream: io.StringIO, json_out: bool) -> None:
    assert logs.use_json(fmt, stream) is json_out


def test_json_lines_with_level_and_utc_timestamp() -> None:
    out = io.StringIO()
    logs.configure(fmt="json", stream=out)
    logs.get().info("commit", paths=2)
    (line,) = lines(out)
    event = json.loads(line)
    assert (event["event"], event["level"], event["paths"]) == ("commit", "info", 2)
    assert event["timestamp"].endswith("Z")


def test_console_lines_on_a_terminal() -> None:
    out = Terminal()
    logs.configure(stream=out)
    logs.get().warning("push_failed", error="unreachable")
    (line,) = lines(out)
    assert "push_failed" in line and "error=unreachable" in line and not line.startswith("{")


def test_the_level_filters_events() -> None:
    out = io.StringIO()
    logs.configure(level="warning", fmt="json", stream=out)
    logs.get().info("quiet")
    logs.get().debug("quieter")
    logs.get().error("loud")
    assert [json.loads(line)["event"] for line in lines(out)] == ["loud"]
    logs.configure(level="debug", fmt="json", stream=out)
    logs.get().debug("now heard")
    assert json.loads(lines(out)[-1])["event"] == "now heard"


def test_registered_secrets_never_reach_a_line() -> None:
    out = io.StringIO()
    logs.configure(fmt="json", stream=out)
    logs.redact("tok-unit-logs", None, "")
    logs.get().warning("push_failed", error="https://u:tok-unit-logs@host/x rejected", token="tok-unit-logs")
    assert "tok-unit-logs" not in out.getvalue()
    event = json.loads(lines(out)[0])
    assert event["error"] == "https://u:***@host/x rejected" and event["token"] == "***"
    assert logs.scrub("a tok-unit-logs b") == "a *** b"


def _fail_with(secret: str) -> None:
    raise RuntimeError(f"could not push to https://user:{secret}@example.org/repo.git")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_traceback_secret_is_scrubbed_in_each_renderer(fmt: str) -> None:
    secret = "tok-SECRET-4242-xyz"
    logs.redact(secret)
    out = io.StringIO()
    logs.configure(fmt=fmt, stream=out)
    try:
        _fail_with(secret)
    except RuntimeError:
        logs.get().exception("push_crashed")
    text = out.getvalue()
    assert secret not in text
    assert "RuntimeError: could not push to https://user:***@example.org/repo.git" in text
    assert "_fail_with" in text  # the traceback itself is there, not only the message


def test_json_lines_carry_the_formatted_exception() -> None:
    out = io.StringIO()
    logs.configure(fmt="json", stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        logs.get().error("crashed", exc_info=True)
    (line,) = lines(out)
    event = json.loads(line)
    assert "exc_info" not in event
    assert event["exception"].startswith("Traceback (most recent call last)")
    assert event["exception"].rstrip().endswith("ValueError: boom")
