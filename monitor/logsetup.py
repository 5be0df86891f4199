"""Structured logs: one JSON object per event that matters, ECS-style keys.

`configure()` is called once by the command line. The daemon logs to stdout
(journald keeps it); other commands log to stderr so that their stdout stays
data (JSON lines, CSV). mitmproxy's and other libraries' stdlib logging goes
through the same renderer, so a reader sees one format.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

_configured = False


class _Std:
    """sys.stdout or sys.stderr, looked up at each write (tests and tools swap them)."""

    def __init__(self, name: str):
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    global _configured
    # the std streams are looked up at each write, so that pytest's capture (or a redirect) is honoured
    target: TextIO = (_Std("stdout") if stream is sys.stdout  # type: ignore[assignment]
                      else _Std("stderr") if stream in (None, sys.stderr) else stream)
    shared: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="@timestamp"),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(target),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(target)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.EventRenamer("message"),
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))
    _configured = True
