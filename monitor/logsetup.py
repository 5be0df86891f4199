"""Structured logs: one JSON object per event that matters, ECS-style keys.

`configure()` is called once by the command line. The daemon logs to stdout
(journald keeps it); other commands log to stderr so that their stdout stays
data (JSON lines, CSV). mitmproxy's and other libraries' stdlib logging goes
through the same renderer, so a reader sees one format.

Importing structlog costs about 30 ms (it pulls in asyncio), more than
`platforms` or `check-config` spend on their own work, and they never log. So
`configure()` does not import it: when structlog is not loaded yet, it is
configured the moment something imports it (a module that logs imports
structlog before its first log line), and the stdlib handler's formatter is
built on the first record it formats.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

_configured = False


class _Std:
    """sys.stdout or sys.stderr, looked up at each write (tests and tools swap them)."""

    def __init__(self, name: str):
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def _shared(structlog: Any) -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="@timestamp"),
    ]


def _configure_structlog(target: TextIO, level: int) -> None:
    import structlog

    structlog.configure(
        processors=[
            *_shared(structlog),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(target),
        cache_logger_on_first_use=False,
    )


class _JsonFormatter(logging.Formatter):
    """structlog's ProcessorFormatter for stdlib records, made when the first record arrives."""

    def __init__(self) -> None:
        super().__init__()
        self._inner: logging.Formatter | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._inner is None:
            import structlog

            self._inner = structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.EventRenamer("message"),
                    structlog.processors.JSONRenderer(),
                ],
                foreign_pre_chain=[*_shared(structlog), structlog.stdlib.add_logger_name],
            )
        return self._inner.format(record)


class _ConfigureOnImport:
    """A one-shot import hook: once structlog has been imported, `then` configures it."""

    def __init__(self, then: Callable[[], None]):
        self.then = then

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != "structlog":
            return None
        _remove_hooks()  # the real finders below find it; the hook fires once
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = cast("Loader", _ThenLoader(spec.loader, self.then))  # a Loader by duck typing
        return spec


class _ThenLoader:
    """Loads a module with `loader`, then calls `then`."""

    def __init__(self, loader: Any, then: Callable[[], None]):
        self.loader = loader
        self.then = then

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.then()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ... as the real loader
        return getattr(self.loader, name)


def _remove_hooks() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ConfigureOnImport)]


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    global _configured
    # the std streams are looked up at each write, so that pytest's capture (or a redirect) is honoured
    target: TextIO = (_Std("stdout") if stream is sys.stdout  # type: ignore[assignment]
                      else _Std("stderr") if stream in (None, sys.stderr) else stream)
    _remove_hooks()  # the latest call wins, as it does once structlog is loaded
    if "structlog" in sys.modules:
        _configure_structlog(target, level)
    else:
        sys.meta_path.insert(0, _ConfigureOnImport(lambda: _configure_structlog(target, level)))
    handler = logging.StreamHandler(target)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))
    _configured = True


class LazyLogger:
    """`structlog.get_logger(name)` for a module on a command's start-up path: structlog (and asyncio,
    ~30 ms) is imported at its first log line, not when the module is imported."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str):
        self._name = name
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._logger is None:
            import structlog

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, method)


def get_logger(name: str) -> Any:
    """The logger a module keeps as `log`; structlog itself is loaded only when it first logs."""
    return LazyLogger(name)
