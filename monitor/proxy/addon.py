"""The mitmproxy addon: which trust devices reach which social-media platforms through the proxy.

    social-monitor proxy --config /etc/social-monitor/config.yaml
    mitmdump -s addons/social_monitor.py --set social_monitor_config=/etc/social-monitor/config.yaml

Both run this class: `addons/social_monitor.py` is a few lines that import it.

Thin by design: it reads the TLS SNI (`tls_clienthello`), the HTTP CONNECT
target and the Host of plain HTTP requests, builds one `Observation` per
client connection and hostname (`monitor.proxy.observe`), continued while
the connection stays open (a tick a minute, and its disconnect), and hands it to the
shared pipeline (`monitor.tagging.pipeline`), whose sink is a writer thread: no I/O
on mitmproxy's event loop. TLS is passed through untouched (never decrypted)
unless `social_monitor_decrypt` names the platform. Any failure inside a hook
is counted in `social_monitor_addon_errors_total{hook}`, logged, and traffic
keeps flowing (fail open). Its options are declared in `monitor.proxy.options`;
the config, pipeline and sinks they lead to are built, reloaded on SIGHUP (off
the event loop) and swapped by `monitor.proxy.runtime`. Set-up and deployment: docs/proxy.md.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog
from mitmproxy import connection, http, tls
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import layer, layers, mode_specs, server_hooks
from mitmproxy.utils.asyncio_utils import create_task

from monitor.capture.tls import (
    NeedMore,
    TLSParseError,
    client_hello_from_records,
    looks_like_client_hello,
    parse_client_hello,
)
from monitor.config.loader import Config
from monitor.metrics.registry import Metrics
from monitor.observation import Observation
from monitor.proxy.observe import (
    CONTINUE_EVERY,
    ConnectionState,
    ConnectionTable,
    build_observation,
    endpoint,
    hostname_or_none,
    proxy_user,
    request_hostname,
)
from monitor.proxy.options import METRICS, PIPELINE_OPTIONS, ProxySettings, declare_options
from monitor.proxy.runtime import MetricsEndpoint, ProxyRuntime, SinkFactory, configure_logs
from monitor.sinks import Sink
from monitor.tagging.pipeline import Pipeline

log = structlog.get_logger("social_monitor.addon")
F = TypeVar("F", bound=Callable[..., Any])
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


class SocialMonitor:
    def __init__(self, metrics: Metrics | None = None, sink_factory: SinkFactory | None = None):
        self.metrics = metrics or Metrics()
        self.clock: Callable[[], float] = time.time
        # tests inject a sink in place of the store's; by default it is built from the config and options
        self.runtime = ProxyRuntime(self.metrics, sink_factory)
        self.metrics_endpoint = MetricsEndpoint(self.metrics.registry)
        self.connections = ConnectionTable()
        self._handling_counters: dict[str, Any] = {}
        self._failure_logged: dict[str, tuple[float, int]] = {}  # hook -> (last logged, suppressed since)
        self._evictions_seen = 0
        self._ticker: asyncio.Task | None = None  # continues open connections; referenced, so kept

    # what the hooks run on, swapped whole by the runtime
    @property
    def config(self) -> Config | None:
        return self.runtime.current.config if self.runtime.current else None

    @property
    def pipeline(self) -> Pipeline | None:
        return self.runtime.current.pipeline if self.runtime.current else None

    @property
    def decrypt(self) -> frozenset[str]:
        return self.runtime.current.decrypt if self.runtime.current else frozenset()

    @property
    def sink(self) -> Sink | None:
        return self.runtime.current.sink if self.runtime.current else None

    # --- life cycle ---------------------------------------------------------------------------

    def load(self, loader: Loader) -> None:
        configure_logs()
        declare_options(loader)

    def running(self) -> None:
        """Hostnames only: mitmproxy's own flow log would print every plain-HTTP URL. SIGHUP reloads."""
        from mitmproxy import ctx

        if "flow_detail" in ctx.options and ctx.options.flow_detail > 0:
            ctx.options.update(flow_detail=0)
            log.info("proxy_flow_log_disabled", reason="URLs are not recorded (data minimisation)")
        if self._ticker is None:
            try:
                self._ticker = create_task(self._continue_open_connections(),
                                           name="social-monitor continuations")
            except RuntimeError:  # no running loop (a test calling the hook directly)
                self._ticker = None
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
        except (NotImplementedError, RuntimeError, ValueError):  # no loop signals here (tests, Windows)
            return
        if self.runtime.stale():
            self.reload()  # replaced while mitmproxy was starting: a SIGHUP then was not ours to see

    def configure(self, updated: set[str]) -> None:
        """Rebuild config, pipeline and sink only when one of our options changed."""
        from mitmproxy import ctx

        if METRICS in updated:
            self.metrics_endpoint.serve(getattr(ctx.options, METRICS))
        if any(name in updated for name in PIPELINE_OPTIONS):
            self.runtime.apply(ProxySettings.from_options(ctx.options))

    def reload(self) -> None:
        """SIGHUP: the runtime re-reads the config in a thread; the proxy keeps serving."""
        from mitmproxy import ctx

        self.runtime.reload(ProxySettings.from_options(ctx.options), asyncio.get_running_loop())

    def done(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        try:  # the proxy stops: every open connection ends now
            now = self.clock()
            for state in self.connections.states():
                self._continue(state, now)
        except Exception as exc:
            self.metrics.addon_errors.labels("done").inc()
            self._log_failure("done", exc)
        self.runtime.close()
        self.metrics_endpoint.stop()

    # --- hooks ----------------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        """Serve only the trust's own networks (monitor.proxy.clients): an explicit proxy on 0.0.0.0
        must not be an open proxy. Fails closed: a client that cannot be checked is refused."""
        loaded = self.runtime.current
        if loaded is None:
            return  # no config: nothing to record, and mitmproxy's block_global decides
        try:
            if loaded.clients.allows(client.peername[0]):
                return
            to_log = loaded.clients.refuse(self.clock())
            if to_log is not None:
                log.warning("proxy_client_refused", client=client.peername[0], refused=to_log,
                            detail="not in the zones' networks (listen.proxy_clients)")
        except Exception as exc:
            self.metrics.addon_errors.labels("client_connected").inc()
            self._log_failure("client_connected", exc)
        self.metrics.proxy_connections.labels("refused").inc()
        client.error = "social-monitor: client outside the trust's networks"

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
        self._continue(state, self.clock())  # its sessions last until it closed

    # --- a connection's life ------------------------------------------------------------

    def continue_every(self) -> float:
        """Seconds between continuations: within half the store's idle gap, so a session never splits."""
        config = self.config
        return min(CONTINUE_EVERY, config.model.store.idle_gap_seconds / 2) if config else CONTINUE_EVERY

    async def _continue_open_connections(self) -> None:
        """Every `continue_every()` seconds, each open connection's observations again (fail open)."""
        while True:
            await asyncio.sleep(self.continue_every())
            try:
                await self.tick()
            except Exception as exc:
                self.metrics.addon_errors.labels("tick").inc()
                self._log_failure("tick", exc)

    async def tick(self, chunk: int = 256) -> None:
        """Continue the open connections, yielding to the loop every `chunk` of them."""
        now = self.clock()
        for i, state in enumerate(self.connections.states()):
            if i and not i % chunk:
                await asyncio.sleep(0)  # 65,536 connections must not stall the proxy
            self._continue(state, now)

    def _continue(self, state: ConnectionState, now: float) -> None:
        loaded = self.runtime.current
        if loaded is not None:
            for obs in state.continuations(now):
                loaded.pipeline.submit(obs)

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
        loaded = self.runtime.current
        if hostname is not None and loaded is not None:
            if loaded.decrypt:
                platform = loaded.pipeline.tagger.catalog.lookup(hostname)
                decrypt = platform is not None and platform.id in loaded.decrypt
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
        loaded = self.runtime.current
        if loaded is None:
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
            bypass=getattr(loaded.pipeline.tagger.config, "bypass_catalog", None),
        )
        state.remember(obs)
        return loaded.pipeline.submit(obs)

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

