"""The mitmproxy addon: which trust devices reach which social-media platforms through the proxy.

    social-monitor proxy --config /etc/social-monitor/config.yaml
    mitmdump -s addons/social_monitor.py --set social_monitor_config=/etc/social-monitor/config.yaml

Both run this class: `addons/social_monitor.py` is a few lines that import it.

Thin by design: it reads the TLS SNI (`tls_clienthello`), the HTTP CONNECT
target and the Host of plain HTTP requests, builds one `Observation` per
client connection and hostname (`monitor.proxy.observe`) and hands it to the
shared pipeline (`monitor.tagging.pipeline`), whose sink is a writer thread: no I/O
on mitmproxy's event loop. TLS is passed through untouched (never decrypted)
unless `social_monitor_decrypt` names the platform. Any failure inside a hook
is counted in `social_monitor_addon_errors_total{hook}`, logged, and traffic
keeps flowing (fail open). SIGHUP re-reads the config off the event loop and
swaps it in without dropping a connection. Set-up and deployment: docs/proxy.md.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import structlog
from mitmproxy import connection, exceptions, http, tls
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import layer, layers, mode_specs, server_hooks
from prometheus_client import start_http_server

from monitor import logsetup
from monitor.capture.tls import (
    NeedMore,
    TLSParseError,
    client_hello_from_records,
    looks_like_client_hello,
    parse_client_hello,
)
from monitor.config.loader import Config, load_config
from monitor.config.models import split_hostport
from monitor.errors import ConfigError, UserError
from monitor.metrics.registry import Metrics
from monitor.observation import Observation
from monitor.proxy.observe import (
    ConnectionState,
    ConnectionTable,
    SameSecondTagger,
    build_observation,
    endpoint,
    hostname_or_none,
    parse_decrypt_option,
    proxy_user,
    request_hostname,
)
from monitor.sinks import FanOut, JsonLinesSink, Sink, close_sink, open_store_sink
from monitor.tagging.pipeline import Pipeline
from monitor.tagging.tagger import Tagger

log = structlog.get_logger("social_monitor.addon")
F = TypeVar("F", bound=Callable[..., Any])
OPTIONS = (
    "social_monitor_config",
    "social_monitor_decrypt",
    "social_monitor_store",
    "social_monitor_events_jsonl",
)
METRICS_OPTION = "social_monitor_metrics"
# where a TLS connection's destination is known before its hello (CONNECT target, original address)
PASS_THROUGH_MODES = (mode_specs.RegularMode, mode_specs.TransparentMode)


def guarded(hook: str) -> Callable[[F], F]:
    """Run a hook fail-open: an exception is counted and logged, never raised into mitmproxy."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def inner(self: SocialMonitor, *args: Any) -> None:
            try:
                func(self, *args)
            except Exception as exc:
                self.metrics.addon_errors.labels(hook).inc()
                self._log_failure(hook, exc)

        return inner  # type: ignore[return-value]

    return wrap


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


class SocialMonitor:
    def __init__(
        self,
        metrics: Metrics | None = None,
        sink_factory: Callable[[Config], Sink | None] | None = None,
    ):
        self.metrics = metrics or Metrics()
        # Tests inject a sink; by default it is built from the config and options.
        self.sink_factory = sink_factory
        self.clock: Callable[[], float] = time.time
        self.config: Config | None = None
        self.pipeline: Pipeline | None = None
        self.sink: Sink | None = None
        self.decrypt: frozenset[str] = frozenset()
        self.connections = ConnectionTable()
        self._metrics_server: Any = None
        self._handling_counters: dict[str, Any] = {}
        self._failure_logged: dict[str, tuple[float, int]] = {}  # hook -> (last logged, suppressed since)
        self._reloading = False
        self._loaded_identity: tuple[int, int] | None = None  # the config file as last loaded
        self._evictions_seen = 0

    # --- options ------------------------------------------------------------------------

    def load(self, loader: Loader) -> None:
        self._configure_logs()
        loader.add_option(
            "social_monitor_config",
            str,
            "",
            """
            Path of the trust's social-monitor config (YAML). Empty: the addon records
            nothing but still passes every TLS connection through undecrypted.
            """,
        )
        loader.add_option(
            "social_monitor_decrypt",
            Sequence[str],
            [],
            """
            Platform ids (e.g. tiktok) whose TLS connections the proxy may decrypt
            (needs mitmproxy's CA on the devices). Default empty: all TLS is passed
            through untouched and only the SNI is read.
            """,
        )
        loader.add_option(
            "social_monitor_store",
            bool,
            True,
            """
            Write recorded accesses to the store named by the config (store.path),
            through a writer thread with a bounded queue. Off: count and log only.
            """,
        )
        loader.add_option(
            METRICS_OPTION,
            str,
            "",
            """
            host:port where this mitmdump process serves its own Prometheus metrics
            (e.g. 127.0.0.1:9465; the daemon's endpoint is a different process).
            Empty: not served.
            """,
        )
        loader.add_option(
            "social_monitor_events_jsonl",
            str,
            "",
            """
            Also append every recorded access as one ECS JSON line to this file,
            written by a background thread. Empty: off.
            """,
        )

    @staticmethod
    def _configure_logs() -> None:
        """JSON log lines in the daemon's format (monitor.logsetup); mitmproxy's own handlers stay."""
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        logsetup.configure(sys.stdout)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)

    def running(self) -> None:
        """Hostnames only: mitmproxy's own flow log would print every plain-HTTP URL. SIGHUP reloads."""
        from mitmproxy import ctx

        if "flow_detail" in ctx.options and ctx.options.flow_detail > 0:
            ctx.options.update(flow_detail=0)
            log.info("proxy_flow_log_disabled", reason="URLs are not recorded (data minimisation)")
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
        except (NotImplementedError, RuntimeError, ValueError):  # no loop signals here (tests, Windows)
            return
        if self.config is not None and file_identity(self.config.path) != self._loaded_identity:
            self.reload()  # replaced while mitmproxy was starting: a SIGHUP then was not ours to see

    def configure(self, updated: set[str]) -> None:
        """Rebuild config, pipeline and sink only when one of our options changed."""
        from mitmproxy import ctx

        if METRICS_OPTION in updated:
            self._serve_metrics(ctx.options.social_monitor_metrics)
        if not any(name in updated for name in OPTIONS):
            return
        opts = ctx.options
        # the first load is a start, not a reload: only a later one counts (as the daemon's do)
        reloading = self.config is not None
        if not opts.social_monitor_config:
            self._swap(None, None, frozenset())
            return
        try:
            config, pipeline, decrypt = self._build(
                opts.social_monitor_config, opts.social_monitor_decrypt, opts.social_monitor_store,
                opts.social_monitor_events_jsonl, reuse_sink=False)
        except exceptions.OptionsError:
            if reloading:
                self.metrics.config_reloads.labels("failure").inc()
            raise
        self._swap(config, pipeline, decrypt)
        if reloading:
            self.metrics.config_reloads.labels("success").inc()

    def reload(self) -> None:
        """SIGHUP: re-read the config file in a thread and swap it in on the event loop when valid.

        The proxy keeps serving throughout (the daemon signals its proxy child
        instead of restarting it). A config that fails is logged field by
        field and counted in `addon_errors_total{hook="reload"}`; the old one
        stays. The daemon counts reloads itself, so these are not counted twice."""
        from mitmproxy import ctx

        opts = ctx.options
        if not opts.social_monitor_config or self._reloading:
            return
        self._reloading = True
        args = (opts.social_monitor_config, opts.social_monitor_decrypt, opts.social_monitor_store,
                opts.social_monitor_events_jsonl)
        threading.Thread(target=self._reload_in_background, args=(asyncio.get_running_loop(), *args),
                         name="social-monitor-reload", daemon=True).start()

    def _reload_in_background(self, loop: asyncio.AbstractEventLoop, path: str, *args: Any) -> None:
        try:
            built = self._build(path, *args, reuse_sink=True)
        except Exception as exc:
            self.metrics.addon_errors.labels("reload").inc()
            errors = str(exc).splitlines()
            log.error("proxy_config_reload_rejected", config=path, errors=errors[1:] or errors)
            loop.call_soon_threadsafe(setattr, self, "_reloading", False)
            return
        loop.call_soon_threadsafe(self._finish_reload, *built)

    def _finish_reload(self, config: Config, pipeline: Pipeline, decrypt: frozenset[str]) -> None:
        self._swap(config, pipeline, decrypt)
        self._reloading = False
        log.info("proxy_config_reloaded", config=str(config.path), fingerprint=config.fingerprint[:12])

    def _build(self, path: str, decrypt_option: Sequence[str], store: bool, jsonl: str, *,
               reuse_sink: bool) -> tuple[Config, Pipeline, frozenset[str]]:
        """Config, pipeline and decrypt set from the options; OptionsError naming what is wrong.

        `reuse_sink`: keep the running store writer when the new config stores
        to the same place, so a reload neither reopens the store nor drops its queue."""
        identity = file_identity(Path(path))
        try:
            config = load_config(path)
        except ConfigError as exc:  # the field-path lines say it all: no chained traceback
            raise exceptions.OptionsError(
                "social_monitor_config: invalid config:\n" + "\n".join(exc.errors)) from None
        except OSError as exc:
            raise exceptions.OptionsError(f"social_monitor_config: cannot read: {exc}") from exc
        try:
            decrypt = parse_decrypt_option(decrypt_option, config.catalog)
        except ValueError as exc:
            raise exceptions.OptionsError(f"social_monitor_decrypt: {exc}") from exc
        old = self.config
        if reuse_sink and old is not None and self.sink is not None and (
                old.model.store, old.store_path) == (config.model.store, config.store_path):
            sink: Sink | None = self.sink
        else:
            try:
                sink = self._build_sink(config, store, jsonl)
            except (UserError, OSError) as exc:  # the store cannot be opened (not a store, no permission)
                raise exceptions.OptionsError(f"social_monitor_store: {exc}") from exc
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
        return config, pipeline, decrypt

    def _build_sink(self, config: Config, store: bool, jsonl: str) -> Sink | None:
        """The store writer (or an injected sink, in tests) plus the optional JSON-lines file."""
        sinks: list[Sink] = []
        if self.sink_factory is not None:
            injected = self.sink_factory(config)
            if injected is not None:
                sinks.append(injected)
        elif store:
            sinks.append(open_store_sink(config, self.metrics))
        if jsonl:
            sinks.append(JsonLinesSink(jsonl, self.metrics, config.model.store.queue_size))
        if not sinks:
            return None
        return sinks[0] if len(sinks) == 1 else FanOut(sinks)

    def _swap(self, config: Config | None, pipeline: Pipeline | None, decrypt: frozenset[str]) -> None:
        old = self.sink
        self.config, self.pipeline, self.decrypt = config, pipeline, decrypt
        self.sink = pipeline.sink if pipeline else None
        if old is not None and old is not self.sink:
            # flushing the old writer may take a moment: not on the event loop
            threading.Thread(target=close_sink, args=(old,), name="social-monitor-close", daemon=True).start()

    def _serve_metrics(self, listen: str) -> None:
        """(Re)start the metrics endpoint: a prometheus_client server thread, off the event loop."""
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        if not listen:
            return
        try:
            host, port = split_hostport(listen)
        except ValueError as exc:
            raise exceptions.OptionsError(f"{METRICS_OPTION}: {exc}") from None
        try:
            self._metrics_server, _ = start_http_server(port, addr=host, registry=self.metrics.registry)
        except OSError as exc:
            raise exceptions.OptionsError(f"{METRICS_OPTION}: cannot listen on {listen}: {exc}") from exc
        log.info("proxy_metrics_listening", listen=listen)

    def done(self) -> None:
        close_sink(self.sink)
        self.sink = None
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server = None

    # --- hooks ----------------------------------------------------------------------------

    @guarded("http_connect")
    def http_connect(self, flow: http.HTTPFlow) -> None:
        """Remember the CONNECT target and user; the TLS hello inside the tunnel is observed next."""
        if flow.response is not None:  # refused (e.g. proxy authentication failed)
            return
        state = self._state(flow.client_conn)
        state.user = proxy_user(flow.metadata) or state.user
        state.connect_host = hostname_or_none(flow.request.host)
        state.connect_server = flow.server_conn

    @guarded("next_layer")
    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """Read the TLS hello and pass the connection through before mitmproxy's TLS layer starts.

        This is what mitmproxy's own `ignore_hosts` does, and it skips the TLS
        layer, its hook and its connection objects: about a tenth of a
        pass-through connection's instructions (bench/proxy_instructions.py).
        The hello is read with the sensor's parser (monitor.capture.tls).
        Whatever is not decided here (a hello split across reads, a platform
        to decrypt, modes other than regular and transparent) reaches
        `tls_clienthello` as before. The addon must come before mitmproxy's
        NextLayer addon in the chain, as `-s` scripts and monitor/proxy/launcher.py do."""
        if nextlayer.layer is not None:
            return
        context = nextlayer.context
        client = context.client
        if (client.transport_protocol != "tcp" or client.tls or not context.server.address
                or not isinstance(client.proxy_mode, PASS_THROUGH_MODES)):
            return
        data = nextlayer.data_client()
        if not looks_like_client_hello(data):
            return
        try:
            hello = parse_client_hello(client_hello_from_records(data))
        except (NeedMore, TLSParseError):
            return  # mitmproxy's TLS layer reads it, and tls_clienthello decides
        if not self._tls_hello(client, context.server, hello.server_name):
            nextlayer.layer = layers.TCPLayer(context, ignore=True)

    @guarded("tls_clienthello")
    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        # Pass through by default: a failure below must never turn decryption on.
        data.ignore_connection = True
        decrypt = self._tls_hello(data.context.client, data.context.server, data.client_hello.sni)
        data.ignore_connection = not decrypt

    @guarded("server_connected")
    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        """A TLS hello seen before the upstream connection is observed now, with the server's IP."""
        state = self.connections.peek(data.client.id)
        if state is not None and state.pending is not None:
            hostname, timestamp, user, _ = state.pending
            state.pending = None
            server = data.server
            self._observe(data.client, state, hostname, "tls", (server.peername, server.address), user,
                          timestamp=timestamp)

    @guarded("responseheaders")
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Plain (or decrypted) HTTP: observed once the server's address is known."""
        self._observe_flow(flow)

    @guarded("error")
    def error(self, flow: http.HTTPFlow) -> None:
        """A request that got no response was still an access attempt."""
        if isinstance(flow, http.HTTPFlow) and flow.request.method != "CONNECT":
            self._observe_flow(flow)

    @guarded("client_disconnected")
    def client_disconnected(self, client: connection.Client) -> None:
        state = self.connections.drop(client.id)
        if state is None:
            return
        if state.pending is not None:
            # the upstream connection never opened (refused, no route): still an access attempt
            hostname, timestamp, user, server = state.pending
            self._observe(client, state, hostname, "tls", (server.peername, server.address), user,
                          timestamp=timestamp)
        if state.connect_host is not None:
            # a CONNECT tunnel that never carried a TLS hello: its target is the name
            server = state.connect_server
            addrs = (server.peername, server.address) if server is not None else ()
            self._observe(client, state, state.connect_host, "http", addrs, state.user)

    # --- helpers ------------------------------------------------------------------------

    def _state(self, client: connection.Client) -> ConnectionState:
        state = self.connections.get(client.id)
        if self.connections.evictions != self._evictions_seen:
            self.metrics.flow_evictions.labels("proxy_connections").inc(
                self.connections.evictions - self._evictions_seen
            )
            self._evictions_seen = self.connections.evictions
        return state

    def _tls_hello(self, client: connection.Client, server: connection.Server, sni: str | None) -> bool:
        """Observe the name a TLS hello asks for; True when its platform is to be decrypted."""
        state = self._state(client)
        hostname = hostname_or_none(sni) or state.connect_host
        state.connect_host = None  # the tunnel's name is observed with its TLS hello
        decrypt = False
        if hostname is not None and self.pipeline is not None:
            if self.decrypt:
                platform = self.pipeline.tagger.catalog.lookup(hostname)
                decrypt = platform is not None and platform.id in self.decrypt
            if endpoint(server.peername, server.address)[0]:
                self._observe(client, state, hostname, "tls", (server.peername, server.address), state.user)
            elif hostname not in state.hostnames:
                # regular mode, lazy connection: the server's IP is known once mitmproxy connects
                state.pending = (hostname, self.clock(), state.user, server)
        self._count_handling(state, "decrypted" if decrypt else "passthrough")
        return decrypt

    def _observe_flow(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        hostname = request_hostname(request.host_header, request.host)
        if hostname is None:
            return
        state = self._state(flow.client_conn)
        if hostname in state.hostnames:
            return  # the common case: another request of a page already observed
        if flow.response is not None and flow.response.status_code == 407:
            return  # refused by proxy authentication: no access happened
        user = proxy_user(flow.metadata) or state.user
        server = flow.server_conn
        protocol = "tls" if request.scheme == "https" else "http"
        if state.handling is None:
            self._count_handling(state, "decrypted" if flow.client_conn.tls else "plain")
        self._observe(flow.client_conn, state, hostname, protocol, (server.peername, server.address), user)

    def _observe(
        self,
        client: connection.Client,
        state: ConnectionState,
        hostname: str,
        protocol: Any,
        server_addrs: Sequence[Any],
        user: str | None,
        timestamp: float | None = None,
    ) -> Any:
        """Submit the first sighting of (connection, hostname); later ones are free."""
        pipeline = self.pipeline
        if pipeline is None:
            return None
        if not state.first_sighting(hostname):
            return None
        obs: Observation = build_observation(
            timestamp=self.clock() if timestamp is None else timestamp,
            hostname=hostname,
            protocol=protocol,
            client=client.peername,
            server=server_addrs,
            user=user,
        )
        return pipeline.submit(obs)

    def _log_failure(self, hook: str, exc: Exception, every: float = 60.0) -> None:
        """Log a hook failure with its traceback, at most once a minute per hook (each is counted).

        A persistent failure (a broken store) would otherwise write a traceback per
        connection to stdout from the event loop."""
        now = time.monotonic()
        last, suppressed = self._failure_logged.get(hook, (float("-inf"), 0))
        if now - last < every:
            self._failure_logged[hook] = (last, suppressed + 1)
            return
        self._failure_logged[hook] = (now, 0)
        log.error("addon_hook_failed", hook=hook, error=repr(exc), suppressed_since_last=suppressed,
                  exc_info=True)

    def _count_handling(self, state: ConnectionState, handling: str) -> None:
        if state.handling is None:
            state.handling = handling
            counter = self._handling_counters.get(handling)
            if counter is None:  # label children resolved once: `labels()` is not free per connection
                counter = self._handling_counters[handling] = self.metrics.proxy_connections.labels(handling)
            counter.inc()

