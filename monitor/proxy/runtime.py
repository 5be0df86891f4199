"""What the addon runs on: config, pipeline and sinks, built from its options and swapped whole.

`ProxyRuntime` builds them when an option changes (mitmproxy's `configure`,
which must stay synchronous and raise `OptionsError`) and again on SIGHUP,
then in a thread: the proxy keeps serving while the config is read, and the
new set is swapped in on the event loop in one step. Sinks that are replaced
are flushed and closed in a thread as well. `MetricsEndpoint` is this
process's own Prometheus endpoint, served by prometheus_client's thread.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from mitmproxy import exceptions
from prometheus_client import CollectorRegistry, start_http_server

from monitor import logsetup
from monitor.config.listen import proxy_client_networks
from monitor.config.loader import Config, load_config
from monitor.config.values import split_hostport
from monitor.errors import ConfigError, UserError
from monitor.metrics.registry import Metrics
from monitor.proxy.clients import ClientGate
from monitor.proxy.observe import SameSecondTagger, parse_decrypt_option
from monitor.proxy.options import CONFIG, DECRYPT, METRICS, STORE, ProxySettings
from monitor.sinks import Sink, SinkSet, open_sinks, open_store_writer
from monitor.tagging.pipeline import Pipeline
from monitor.tagging.tagger import Tagger

log = structlog.get_logger("social_monitor.addon")
SinkFactory = Callable[[Config], Sink | None]


def configure_logs() -> None:
    """JSON log lines in the daemon's format (monitor.logsetup); mitmproxy's own handlers stay."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logsetup.configure(sys.stdout)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def file_identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of the file a path leads to (through the daemon's `current` symlink)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def warm_up(tagger: Tagger, now: float) -> None:
    """Do the first-call work (the bank-holiday tables' import, today's day plans) at start-up.

    Otherwise the first access after start or reload would stall mitmproxy's
    event loop for a quarter of a second while `holidays` is imported."""
    for clock in tagger.clocks.values():
        clock.at(now)


@dataclass(frozen=True)
class Loaded:
    """One consistent set the hooks read: swapped whole, never field by field."""

    config: Config
    pipeline: Pipeline
    decrypt: frozenset[str]
    clients: ClientGate  # who may use the proxy (monitor.proxy.clients)

    @property
    def sink(self) -> Sink | None:
        return self.pipeline.sink


class ProxyRuntime:
    """Builds, reloads and swaps the addon's `Loaded` set; `current` is None until a config is set."""

    def __init__(self, metrics: Metrics, sink_factory: SinkFactory | None = None,
                 clock: Callable[[], float] = time.time):
        self.metrics = metrics
        self.sink_factory = sink_factory  # tests inject a store sink; by default the config's store
        self.clock = clock
        self.current: Loaded | None = None
        self._reloading = False
        self._loaded_identity: tuple[int, int] | None = None  # the config file as last loaded

    def apply(self, settings: ProxySettings) -> None:
        """Option change (`configure`): build now and swap; OptionsError leaves the old set running.

        The first load is a start, not a reload: only a later one is counted, as the daemon's are."""
        reloading = self.current is not None
        if not settings.config_path:
            self.swap(None)
            return
        try:
            loaded = self.build(settings, reuse_sinks=False)
        except exceptions.OptionsError:
            if reloading:
                self.metrics.config_reloads.labels("failure").inc()
            raise
        self.swap(loaded)
        if reloading:
            self.metrics.config_reloads.labels("success").inc()

    def reload(self, settings: ProxySettings, loop: asyncio.AbstractEventLoop) -> None:
        """SIGHUP: re-read the config in a thread and swap it in on `loop` when valid.

        The proxy keeps serving throughout (the daemon signals its proxy child
        instead of restarting it). A config that fails is logged field by
        field and counted in `addon_errors_total{hook="reload"}`; the old one
        stays. The daemon counts reloads itself, so these are not counted twice."""
        if not settings.config_path or self._reloading:
            return
        self._reloading = True
        threading.Thread(target=self._reload_in_background, args=(loop, settings),
                         name="social-monitor-reload", daemon=True).start()

    @property
    def reloading(self) -> bool:
        """A SIGHUP's reload is being built (a second one meanwhile is ignored)."""
        return self._reloading

    def stale(self) -> bool:
        """True when the config file was replaced since it was loaded (a SIGHUP may have been missed)."""
        current = self.current
        return current is not None and file_identity(current.config.path) != self._loaded_identity

    def _reload_in_background(self, loop: asyncio.AbstractEventLoop, settings: ProxySettings) -> None:
        try:
            loaded = self.build(settings, reuse_sinks=True)
        except Exception as exc:
            self.metrics.addon_errors.labels("reload").inc()
            errors = str(exc).splitlines()
            log.error("proxy_config_reload_rejected", config=settings.config_path,
                      errors=errors[1:] or errors)
            loop.call_soon_threadsafe(setattr, self, "_reloading", False)
            return
        loop.call_soon_threadsafe(self._finish_reload, loaded)

    def _finish_reload(self, loaded: Loaded) -> None:
        self.swap(loaded)
        self._reloading = False
        config = loaded.config
        log.info("proxy_config_reloaded", config=str(config.path), fingerprint=config.fingerprint[:12])

    def build(self, settings: ProxySettings, *, reuse_sinks: bool) -> Loaded:
        """Config, pipeline and decrypt set from the options; OptionsError naming what is wrong.

        `reuse_sinks`: keep the running store writer when the new config stores
        to the same place, so a reload neither reopens the store nor drops its queue."""
        path = settings.config_path
        identity = file_identity(Path(path))
        try:
            config = load_config(path)
        except ConfigError as exc:  # the field-path lines say it all: no chained traceback
            raise exceptions.OptionsError(f"{CONFIG}: invalid config:\n" + "\n".join(exc.errors)) from None
        except OSError as exc:
            raise exceptions.OptionsError(f"{CONFIG}: cannot read: {exc}") from exc
        try:
            decrypt = parse_decrypt_option(settings.decrypt, config.catalog)
        except ValueError as exc:
            raise exceptions.OptionsError(f"{DECRYPT}: {exc}") from exc
        old = self.current
        if reuse_sinks and old is not None and old.sink is not None and (
                old.config.model.store, old.config.store_path) == (config.model.store, config.store_path):
            sink: Sink | None = old.sink
        else:
            try:
                sink = self._open_sinks(config, settings)
            except (UserError, OSError) as exc:  # the store cannot be opened (not a store, no permission)
                raise exceptions.OptionsError(f"{STORE}: {exc}") from exc
        tagger = Tagger(config)
        warm_up(tagger, self.clock())
        pipeline = Pipeline(SameSecondTagger(tagger), sink=sink, metrics=self.metrics)  # type: ignore[arg-type]
        self._loaded_identity = identity
        log.info(
            "proxy_addon_configured",
            config=str(config.path),
            platforms=len(config.catalog),
            decrypt=sorted(decrypt),
            storing=pipeline.refusal is None and sink is not None,
        )
        return Loaded(config, pipeline, decrypt, ClientGate(proxy_client_networks(config.model)))

    def _open_sinks(self, config: Config, settings: ProxySettings) -> SinkSet | None:
        """The store writer (or an injected sink) plus the optional JSON-lines file; None if neither."""
        sinks = open_sinks(config, self.metrics, store=settings.store, events_jsonl=settings.events_jsonl,
                           open_store=self._open_store)
        return None if sinks.empty else sinks

    def _open_store(self, config: Config, metrics: Metrics) -> Sink | None:
        if self.sink_factory is not None:
            return self.sink_factory(config)
        return open_store_writer(config, metrics)

    def swap(self, loaded: Loaded | None) -> None:
        """Make `loaded` current (on the event loop); a sink it no longer uses is closed in a thread."""
        old = self.current.sink if self.current is not None else None
        self.current = loaded
        if old is not None and old is not (loaded.sink if loaded is not None else None):
            # flushing the old writer may take a moment: not on the event loop
            threading.Thread(target=old.close, name="social-monitor-close", daemon=True).start()

    def close(self) -> None:
        """mitmproxy's `done`: flush and close the sinks."""
        current, self.current = self.current, None
        if current is not None and current.sink is not None:
            current.sink.close()


class MetricsEndpoint:
    """This mitmdump's own metrics (METRICS option): a prometheus_client server thread, off the loop."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self._server: Any = None

    def serve(self, listen: str) -> None:
        """(Re)start on `listen` (host:port); empty: stop. OptionsError when it cannot listen there."""
        self.stop()
        if not listen:
            return
        try:
            host, port = split_hostport(listen)
        except ValueError as exc:
            raise exceptions.OptionsError(f"{METRICS}: {exc}") from None
        try:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise exceptions.OptionsError(f"{METRICS}: cannot listen on {listen}: {exc}") from exc
        log.info("proxy_metrics_listening", listen=listen)

    @property
    def serving(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
