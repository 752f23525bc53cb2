"""Logging with structlog: a console renderer on a terminal, JSON lines otherwise (journald).

Secrets registered with `redact` are replaced in every event before rendering, a
last line of defence behind code that never logs them in the first place. Tracebacks
(`exc_info`, `.exception()`) and stack info are rendered into the event as text
(`exception`, `stack`) BEFORE the scrub, so both renderers print them scrubbed; JSON
lines carry the formatted traceback in `exception`. The
replacing itself is `mdbackup.redact.scrub`; this module only keeps the registry.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from mdbackup import redact as _redact

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_secrets: set[str] = set()


def redact(*secrets: str | None) -> None:
    """Never let these strings appear in a log line (empty values are ignored)."""
    _secrets.update(s for s in secrets if s)


def scrub(text: str) -> str:
    """`text` with every registered secret replaced by `***` (longest first)."""
    return _redact.scrub(text, _secrets)


def _scrub_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _secrets:
        return event
    return {k: scrub(v) if isinstance(v, str) else v for k, v in event.items()}


def use_json(fmt: str, stream: TextIO) -> bool:
    """Whether `fmt` (auto|console|json) renders JSON on `stream`."""
    if fmt == "auto":
        return not stream.isatty()
    return fmt == "json"


def configure(*, level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog for the process; also routes the stdlib `logging` of libraries."""
    stream = stream or sys.stderr
    renderer = (
        structlog.processors.JSONRenderer()
        if use_json(fmt, stream)
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _scrub_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get(name: str = "mdbackup") -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
