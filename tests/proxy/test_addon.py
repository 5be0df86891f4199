"""Hook-level tests of addons/social_monitor.py through mitmproxy's own test helpers."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mitmproxy import connection, exceptions, http
from mitmproxy.proxy import context, events, layer, layers, mode_specs
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import taddons, tflow, tutils
from mitmproxy.tls import ClientHelloData
from structlog.testing import capture_logs

from monitor.observation import AccessEvent
from monitor.proxy import addon as SM
from tests.proxy_helpers import TEST_CONFIG, client_hello, client_hello_record

# A Wednesday in term, inside the test school's all-day contact period.
NOON = datetime(2026, 11, 18, 12, 0, tzinfo=UTC).timestamp()


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[AccessEvent] = []
        self.closed = False

    def submit(self, event: AccessEvent) -> bool:
        self.events.append(event)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        self.closed = True
        return True


class FailingSink(RecordingSink):
    def submit(self, event: AccessEvent) -> bool:
        raise OSError("disk full")


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def addon(sink: RecordingSink) -> Iterator[object]:
    a = SM.SocialMonitor(sink_factory=lambda config: sink)
    a.clock = lambda: NOON
    with taddons.context(a) as tctx:
        tctx.configure(a, social_monitor_config=str(TEST_CONFIG))
        yield a


def sample(addon, name: str, labels: dict[str, str]) -> float:
    return addon.metrics.registry.get_sample_value(name, labels) or 0.0


def client(ip: str = "127.0.0.1", port: int = 50000) -> connection.Client:
    c = tflow.tclient_conn()
    c.peername = (ip, port)
    return c


def hello(sni: str | None, cl: connection.Client | None = None,
          server: tuple[str, int] = ("93.184.216.34", 443), peer: bool = True) -> ClientHelloData:
    ctx = context.Context(cl or client(), None)  # type: ignore[arg-type]
    ctx.server.address = server
    ctx.server.peername = server if peer else None
    return ClientHelloData(ctx, client_hello(sni))


def http_flow(host: str, cl: connection.Client | None = None, *, scheme: str = "http",
              host_header: str | None = None, status: int = 200, peer=("93.184.216.34", 80)):
    req = tutils.treq(host=host, port=443 if scheme == "https" else 80, scheme=scheme.encode())
    if host_header:
        req.headers["Host"] = host_header
    f = tflow.tflow(client_conn=cl or client(), req=req, resp=tutils.tresp(status_code=status))
    f.server_conn.address = (host, req.port)
    f.server_conn.peername = peer
    return f


# --- configure ---------------------------------------------------------------------------


def test_configure_builds_pipeline(addon):
    assert addon.pipeline is not None
    assert addon.pipeline.refusal is None
    assert addon.decrypt == frozenset()


def test_empty_config_option_records_nothing_but_passes_tls_through(sink):
    a = SM.SocialMonitor(sink_factory=lambda config: sink)
    with taddons.context(a) as tctx:
        tctx.configure(a, social_monitor_config="")
        data = hello("www.tiktok.com")
        a.tls_clienthello(data)
    assert data.ignore_connection is True
    assert sink.events == []


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("cidrs: [127.0.0.0/8", "cidrs: [127.0.0.300/8", "schools[0].zones[0].cidrs"),
        ("timezone: Europe/London", "timezone: Mars/Olympus", "trust.timezone"),
        ("  inventory: devices.csv", "  inventory: devices.csv\n  colour: blue", "devices.colour"),
    ],
)
def test_bad_config_is_an_options_error_naming_the_field(tmp_path: Path, old, new, field):
    shutil.copy(TEST_CONFIG.parent / "devices.csv", tmp_path / "devices.csv")
    text = TEST_CONFIG.read_text()
    assert old in text
    (tmp_path / "config.yaml").write_text(text.replace(old, new, 1))
    a = SM.SocialMonitor()
    with taddons.context(a) as tctx, pytest.raises(exceptions.OptionsError, match=re.escape(field)):
        tctx.configure(a, social_monitor_config=str(tmp_path / "config.yaml"))


def test_missing_config_file_is_an_options_error(tmp_path: Path):
    a = SM.SocialMonitor()
    with taddons.context(a) as tctx, pytest.raises(exceptions.OptionsError, match="social_monitor_config"):
        tctx.configure(a, social_monitor_config=str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize(
    ("value", "ok"),
    [(["tiktok"], True), (["TikTok", " youtube "], True), ([], True), (["myspace"], False)],
)
def test_decrypt_option_names_catalog_platforms(value, ok):
    a = SM.SocialMonitor(sink_factory=lambda config: None)
    with taddons.context(a) as tctx:
        if ok:
            tctx.configure(a, social_monitor_config=str(TEST_CONFIG), social_monitor_decrypt=value)
            assert a.decrypt == {v.strip().lower() for v in value}
        else:
            with pytest.raises(exceptions.OptionsError, match="social_monitor_decrypt: unknown platform"):
                tctx.configure(a, social_monitor_config=str(TEST_CONFIG), social_monitor_decrypt=value)


def test_unrelated_option_does_not_rebuild(addon):
    pipeline = addon.pipeline
    addon.configure({"block_global"})
    assert addon.pipeline is pipeline


# --- tls_clienthello -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sni", "client_ip", "decrypt", "ignored", "platform"),
    [
        ("www.tiktok.com", "127.0.0.1", [], True, "tiktok"),
        ("WWW.TikTok.com.", "127.0.0.1", [], True, "tiktok"),
        ("www.tiktok.com", "127.0.0.1", ["tiktok"], False, "tiktok"),  # asked for: decrypted
        ("www.youtube.com", "127.0.0.1", ["tiktok"], True, "youtube"),  # other platforms untouched
        ("www.example.org", "127.0.0.1", ["tiktok"], True, None),  # not social: not stored
        ("www.tiktok.com", "::1", [], True, "tiktok"),  # IPv6 client
        ("www.tiktok.com", "::ffff:127.0.0.1", [], True, "tiktok"),  # dual-stack listener, IPv4 client
        ("www.tiktok.com", "127.0.0.2", [], True, None),  # not a trust device: counted, not stored
        ("www.tiktok.com", "10.1.2.3", [], True, None),  # no zone, no device
        (None, "127.0.0.1", [], True, None),  # no SNI: nothing to name
    ],
)
def test_tls_clienthello(sink, sni, client_ip, decrypt, ignored, platform):
    a = SM.SocialMonitor(sink_factory=lambda config: sink)
    a.clock = lambda: NOON
    with taddons.context(a) as tctx:
        tctx.configure(a, social_monitor_config=str(TEST_CONFIG), social_monitor_decrypt=decrypt)
        data = hello(sni, client(client_ip))
        a.tls_clienthello(data)
    assert data.ignore_connection is ignored
    assert [e.platform for e in sink.events] == ([platform] if platform else [])
    handling = "passthrough" if ignored else "decrypted"
    assert sample(a, "social_monitor_proxy_connections_total", {"handling": handling}) == 1


def next_layer(tctx: taddons.context | None, data: bytes, *, sni_client: connection.Client | None = None,
               mode: str = "regular", server: tuple[str, int] | None = ("93.184.216.34", 443),
               ) -> layer.NextLayer:
    """mitmproxy's NextLayer for a connection whose client has sent `data` so far."""
    cl = sni_client or client()
    cl.proxy_mode = mode_specs.ProxyMode.parse(mode)
    ctx = context.Context(cl, tctx.options if tctx else None)  # type: ignore[arg-type]
    ctx.server.address = ctx.server.peername = server
    nl = layer.NextLayer(ctx)
    nl.events.append(events.DataReceived(cl, data))
    return nl


HELLO = client_hello_record("www.tiktok.com")


@pytest.mark.parametrize(
    ("data", "mode", "server", "decrypt", "passed_through", "platform"),
    [
        (HELLO, "regular", ("93.184.216.34", 443), [], True, "tiktok"),
        (HELLO, "transparent", ("93.184.216.34", 443), [], True, "tiktok"),
        (client_hello_record("www.example.org"), "regular", ("93.184.216.34", 443), [], True, None),
        (client_hello_record(None), "regular", ("93.184.216.34", 443), [], True, None),  # no SNI
        # left to mitmproxy's TLS layer and tls_clienthello:
        (HELLO, "regular", ("93.184.216.34", 443), ["tiktok"], False, "tiktok"),  # to be decrypted
        (HELLO[:100], "regular", ("93.184.216.34", 443), [], False, None),  # hello not complete yet
        (b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "regular", ("93.184.216.34", 443), [], False, None),
        (b"GET / HTTP/1.1\r\n", "regular", ("93.184.216.34", 80), [], False, None),  # not TLS
        (HELLO, "regular", None, [], False, None),  # no destination yet: cannot pass through
        (HELLO, "reverse:https://example.com", ("example.com", 443), [], False, None),
    ],
)
def test_next_layer_passes_tls_through_before_the_tls_layer(sink, data, mode, server, decrypt,
                                                            passed_through, platform):
    a = SM.SocialMonitor(sink_factory=lambda config: sink)
    a.clock = lambda: NOON
    with taddons.context(a) as tctx:
        tctx.configure(a, social_monitor_config=str(TEST_CONFIG), social_monitor_decrypt=decrypt)
        nl = next_layer(tctx, data, mode=mode, server=server)
        a.next_layer(nl)
    if passed_through:
        assert isinstance(nl.layer, layers.TCPLayer) and nl.layer.flow is None  # ignore=True: untouched
        assert sample(a, "social_monitor_proxy_connections_total", {"handling": "passthrough"}) == 1
    else:
        assert nl.layer is None  # mitmproxy's NextLayer decides, as without the addon
    assert [e.platform for e in sink.events] == ([platform] if platform else [])
    assert sample(a, "social_monitor_addon_errors_total", {"hook": "next_layer"}) == 0


def test_next_layer_leaves_a_layer_another_addon_chose(addon, sink):
    with taddons.context(addon) as tctx:
        nl = next_layer(tctx, HELLO)
        chosen = layers.TCPLayer(nl.context)
        nl.layer = chosen
        addon.next_layer(nl)
    assert nl.layer is chosen and sink.events == []


def test_next_layer_then_tls_clienthello_is_one_access(sink):
    """A platform to decrypt: seen at next_layer, decided at tls_clienthello, recorded once."""
    a = SM.SocialMonitor(sink_factory=lambda config: sink)
    a.clock = lambda: NOON
    cl = client()
    with taddons.context(a) as tctx:
        tctx.configure(a, social_monitor_config=str(TEST_CONFIG), social_monitor_decrypt=["tiktok"])
        nl = next_layer(tctx, HELLO, sni_client=cl)
        a.next_layer(nl)
        data = hello("www.tiktok.com", cl)
        a.tls_clienthello(data)
    assert nl.layer is None and data.ignore_connection is False
    assert len(sink.events) == 1
    assert sample(a, "social_monitor_proxy_connections_total", {"handling": "decrypted"}) == 1


def test_tls_observation_fields(addon, sink):
    addon.tls_clienthello(hello("www.tiktok.com", client("127.0.0.1", 41000), ("157.240.1.1", 443)))
    (event,) = sink.events
    obs = event.observation
    assert (obs.client_ip, obs.client_port, obs.server_ip, obs.server_port) == (
        "127.0.0.1", 41000, "157.240.1.1", 443)
    assert (obs.protocol, obs.source, obs.transport, obs.hostname) == (
        "tls", "proxy", "tcp", "www.tiktok.com")
    assert (event.school, event.zone, event.period, event.period_kind) == (
        "test-school", "loopback-class", "All day", "contact")
    assert [f.name for f in event.flags] == ["contact_time", "pupil_area"]
    assert event.asset_tag == "DEMO-0001"


def test_transparent_mode_server_is_the_original_destination(addon, sink):
    # transparent mode: no peername yet, the address is the original destination IP
    addon.tls_clienthello(hello("www.tiktok.com", server=("157.240.1.2", 443), peer=False))
    assert sink.events[0].observation.server_ip == "157.240.1.2"


def test_lazy_regular_mode_observes_when_the_server_connects(addon, sink):
    """connection_strategy=lazy (the daemon's): after CONNECT the hello comes before the upstream."""
    c = client()
    data = hello("www.tiktok.com", c, server=("www.tiktok.com", 443), peer=False)
    addon.clock = lambda: NOON
    addon.tls_clienthello(data)
    assert data.ignore_connection is True and sink.events == []
    addon.clock = lambda: NOON + 0.2
    data.context.server.peername = ("157.240.7.7", 443)
    addon.server_connected(ServerConnectionHookData(data.context.server, c))
    addon.server_connected(ServerConnectionHookData(data.context.server, c))  # only once
    addon.client_disconnected(c)
    (event,) = sink.events
    obs = event.observation
    assert (obs.server_ip, obs.server_port, obs.timestamp) == ("157.240.7.7", 443, NOON)  # hello time


def test_lazy_regular_mode_upstream_never_connects(addon, sink):
    c = client()
    addon.tls_clienthello(hello("www.tiktok.com", c, server=("www.tiktok.com", 443), peer=False))
    addon.client_disconnected(c)
    obs = sink.events[0].observation
    assert (obs.server_ip, obs.server_port, sink.events[0].platform) == ("", 443, "tiktok")


def test_one_observation_per_connection_and_hostname(addon, sink):
    c1, c2 = client(port=1), client(port=2)
    for _ in range(3):
        addon.tls_clienthello(hello("www.tiktok.com", c1))
    addon.tls_clienthello(hello("www.youtube.com", c1))
    addon.tls_clienthello(hello("www.tiktok.com", c2))
    assert [(e.observation.client_port, e.platform) for e in sink.events] == [
        (1, "tiktok"), (1, "youtube"), (2, "tiktok")]


def test_client_disconnected_clears_connection_state(addon, sink):
    c = client()
    addon.tls_clienthello(hello("www.tiktok.com", c))
    assert len(addon.connections) == 1
    addon.client_disconnected(c)
    assert len(addon.connections) == 0


# --- HTTP ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "host_header", "scheme", "protocol", "platform"),
    [
        ("www.tiktok.com", None, "http", "http", "tiktok"),  # absolute-form through the proxy
        ("157.240.1.1", "www.facebook.com", "http", "http", "facebook"),  # transparent: Host header
        ("www.tiktok.com", None, "https", "tls", "tiktok"),  # decrypted request
        ("www.example.org", None, "http", "http", None),
        ("157.240.1.1", None, "http", "http", None),  # a bare IP names nothing
    ],
)
def test_http_request_host(addon, sink, host, host_header, scheme, protocol, platform):
    f = http_flow(host, host_header=host_header, scheme=scheme)
    addon.responseheaders(f)
    assert [(e.platform, e.observation.protocol) for e in sink.events] == (
        [(platform, protocol)] if platform else [])


def test_http_observation_has_the_connected_server(addon, sink):
    addon.responseheaders(http_flow("www.tiktok.com", peer=("157.240.9.9", 80)))
    obs = sink.events[0].observation
    assert (obs.server_ip, obs.server_port, obs.hostname) == ("157.240.9.9", 80, "www.tiktok.com")


def test_two_hundred_requests_on_one_connection_are_one_access(addon, sink):
    c = client()
    for _ in range(200):
        addon.responseheaders(http_flow("www.tiktok.com", c))
    assert len(sink.events) == 1
    assert sample(addon, "social_monitor_proxy_connections_total", {"handling": "plain"}) == 1


def test_failed_request_is_still_an_access(addon, sink):
    f = http_flow("www.tiktok.com")
    f.response = None
    f.error = tflow.terr()
    addon.error(f)
    assert [e.platform for e in sink.events] == ["tiktok"]


def test_proxy_auth_refusal_is_not_an_access(addon, sink):
    addon.responseheaders(http_flow("www.tiktok.com", status=407))
    assert sink.events == []


@pytest.mark.parametrize(
    ("metadata", "owner"),
    [
        ({"proxyauth": ("jsmith", "secret")}, "jsmith"),
        ({}, "S9001"),  # no sign-in: the device's owner
        ({"proxyauth": ("", "")}, "S9001"),
    ],
)
def test_proxy_user_owns_the_access(addon, sink, metadata, owner):
    f = http_flow("www.tiktok.com")
    f.metadata.update(metadata)
    addon.responseheaders(f)
    assert sink.events[0].owner == owner
    assert "secret" not in repr(sink.events[0].to_ecs())


# --- CONNECT -------------------------------------------------------------------------------


def connect_flow(host: str, cl: connection.Client, user: str | None = None) -> http.HTTPFlow:
    req = tutils.treq(method=b"CONNECT", host=host, port=443, path=b"", scheme=b"")
    f = tflow.tflow(client_conn=cl, req=req)
    f.server_conn.address = (host, 443)
    f.server_conn.peername = None
    if user:
        f.metadata["proxyauth"] = (user, "pw")
    return f


def test_connect_then_hello_is_one_access_with_the_user(addon, sink):
    c = client()
    addon.http_connect(connect_flow("www.tiktok.com", c, user="jsmith"))
    assert sink.events == []  # waits for the hello, where the server address is known
    addon.tls_clienthello(hello("www.tiktok.com", c))
    addon.client_disconnected(c)
    assert [(e.platform, e.owner, e.observation.protocol) for e in sink.events] == [
        ("tiktok", "jsmith", "tls")]


def test_connect_hello_without_sni_uses_the_connect_host(addon, sink):
    c = client()
    addon.http_connect(connect_flow("www.tiktok.com", c))
    addon.tls_clienthello(hello(None, c))
    assert [e.observation.hostname for e in sink.events] == ["www.tiktok.com"]


def test_connect_without_tls_is_observed_when_the_client_leaves(addon, sink):
    c = client()
    f = connect_flow("www.tiktok.com", c)
    addon.http_connect(f)
    f.server_conn.peername = ("157.240.3.3", 443)  # connected after the hook
    addon.client_disconnected(c)
    assert [(e.platform, e.observation.server_ip) for e in sink.events] == [("tiktok", "157.240.3.3")]


def test_refused_connect_is_not_an_access(addon, sink):
    c = client()
    f = connect_flow("www.tiktok.com", c)
    f.response = tutils.tresp(status_code=407)
    addon.http_connect(f)
    addon.client_disconnected(c)
    assert sink.events == []


# --- fail open ------------------------------------------------------------------------------


def test_failing_sink_keeps_traffic_flowing():
    a = SM.SocialMonitor(sink_factory=lambda config: FailingSink())
    a.clock = lambda: NOON
    with taddons.context(a) as tctx:
        tctx.configure(a, social_monitor_config=str(TEST_CONFIG))
        data = hello("www.tiktok.com")
        a.tls_clienthello(data)
    assert data.ignore_connection is True
    assert sample(a, "social_monitor_store_write_errors_total", {"reason": "sink"}) == 1


@pytest.mark.parametrize(
    ("hook", "call"),
    [
        ("tls_clienthello", lambda a: a.tls_clienthello(hello("www.tiktok.com"))),
        ("next_layer", lambda a: a.next_layer(next_layer(None, HELLO))),
        ("responseheaders", lambda a: a.responseheaders(http_flow("www.tiktok.com"))),
        ("http_connect", lambda a: a.http_connect(connect_flow("www.tiktok.com", client()))),
        ("error", lambda a: a.error(http_flow("www.tiktok.com"))),
        ("server_connected", lambda a: a.server_connected(None)),
        ("client_disconnected", lambda a: a.client_disconnected(None)),
    ],
)
def test_hook_failure_is_counted_logged_and_swallowed(addon, monkeypatch, hook, call):
    def boom(*args, **kwargs):
        raise RuntimeError("tagger broke")

    monkeypatch.setattr(addon.pipeline, "submit", boom)
    monkeypatch.setattr(SM, "hostname_or_none", boom)
    with capture_logs() as logs:
        call(addon)
    assert sample(addon, "social_monitor_addon_errors_total", {"hook": hook}) == 1
    assert any(e["event"] == "addon_hook_failed" and e["hook"] == hook for e in logs)


def test_hook_failure_never_turns_decryption_on(monkeypatch):
    a = SM.SocialMonitor(sink_factory=lambda config: RecordingSink())
    with taddons.context(a) as tctx:
        tctx.configure(a, social_monitor_config=str(TEST_CONFIG), social_monitor_decrypt=["tiktok"])
        monkeypatch.setattr(a.pipeline, "submit", lambda obs: 1 / 0)
        data = hello("www.tiktok.com")
        a.tls_clienthello(data)
    assert data.ignore_connection is True


# --- the real sinks -------------------------------------------------------------------------


def tmp_config(tmp_path: Path) -> Path:
    shutil.copy(TEST_CONFIG.parent / "devices.csv", tmp_path / "devices.csv")
    shutil.copy(TEST_CONFIG, tmp_path / "config.yaml")
    return tmp_path / "config.yaml"


def test_accesses_reach_the_store_and_the_jsonl_file(tmp_path: Path):
    from monitor.store.sqlite import open_store

    config = tmp_config(tmp_path)
    a = SM.SocialMonitor()
    a.clock = lambda: NOON
    with taddons.context(a) as tctx:
        tctx.configure(a, social_monitor_config=str(config),
                       social_monitor_events_jsonl=str(tmp_path / "events.jsonl"))
        c = client()
        for _ in range(3):
            a.tls_clienthello(hello("www.tiktok.com", c))
        a.tls_clienthello(hello("www.example.org", c))
        a.done()
    with open_store(tmp_path / "store.db", create=False) as store:
        (session,) = store.sessions()
    assert (session.platform, session.zone, session.period, session.observations) == (
        "tiktok", "loopback-class", "All day", 1)
    assert "proxy" in session.signals
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"social.platform":"tiktok"' in lines[0]


def test_store_that_cannot_be_opened_is_an_options_error(tmp_path: Path):
    config = tmp_config(tmp_path)
    (tmp_path / "store.db").write_bytes(b"not a database at all, just text" * 10)
    a = SM.SocialMonitor()
    with taddons.context(a) as tctx, pytest.raises(exceptions.OptionsError, match="social_monitor_store"):
        tctx.configure(a, social_monitor_config=str(config))


def test_metrics_endpoint_serves_the_addon_registry():
    import urllib.request

    from tests.proxy_helpers import free_port

    port = free_port()
    a = SM.SocialMonitor(sink_factory=lambda config: None)
    with taddons.context(a) as tctx:
        tctx.configure(a, social_monitor_metrics=f"127.0.0.1:{port}")
        a.metrics.addon_errors.labels("tls_clienthello").inc()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        a.done()
    assert 'social_monitor_addon_errors_total{hook="tls_clienthello"} 1.0' in body


@pytest.mark.parametrize("value", ["9465", "127.0.0.1:http"])
def test_bad_metrics_listen_is_an_options_error(value):
    a = SM.SocialMonitor(sink_factory=lambda config: None)
    with taddons.context(a) as tctx, pytest.raises(exceptions.OptionsError, match="social_monitor_metrics"):
        tctx.configure(a, social_monitor_metrics=value)


def test_repeated_hook_failures_are_all_counted_but_logged_once_a_minute(addon, monkeypatch):
    monkeypatch.setattr(addon.pipeline, "submit", lambda obs: 1 / 0)
    with capture_logs() as logs:
        for port in range(50):
            addon.tls_clienthello(hello("www.tiktok.com", client(port=port)))
    assert sample(addon, "social_monitor_addon_errors_total", {"hook": "tls_clienthello"}) == 50
    assert [e["event"] for e in logs].count("addon_hook_failed") == 1


# --- a connection's life ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (seconds after the hello, what happens): "tick" (the periodic task) or "close"
        ([(30, "close")], [(0, False), (30, True)]),
        ([(0.5, "close")], [(0, False)]),  # closed within a second: nothing to add
        ([(60, "tick"), (120, "tick"), (150, "close")], [(0, False), (60, True), (120, True), (150, True)]),
        ([(60, "tick"), (60.5, "close")], [(0, False), (60, True)]),  # the tick just said so
        ([(60, "close"), (120, "tick")], [(0, False), (60, True)]),  # closed: no longer continued
    ],
    ids=["closed-after-30s", "short", "open-two-minutes", "close-right-after-tick", "tick-after-close"],
)
def test_an_open_connection_is_continued_until_it_closes(addon, sink, steps, expected):
    import asyncio

    c = client()
    addon.tls_clienthello(hello("www.tiktok.com", c))
    for after, what in steps:
        addon.clock = lambda after=after: NOON + after
        if what == "tick":
            asyncio.run(addon.tick())
        else:
            addon.client_disconnected(c)
    assert [(e.observation.timestamp - NOON, e.observation.continuation) for e in sink.events] == expected
    assert {e.platform for e in sink.events} == {"tiktok"}


@pytest.mark.parametrize(("connections", "chunk"), [(1, 256), (1000, 256), (1000, 1)],
                         ids=["one", "many", "tiny"])
def test_a_tick_continues_every_open_connection_and_yields(addon, sink, connections, chunk):
    import asyncio

    for port in range(connections):
        addon.tls_clienthello(hello("www.tiktok.com", client(port=port + 1)))
    addon.clock = lambda: NOON + 60
    yields = 0

    async def run() -> None:
        nonlocal yields
        task = asyncio.ensure_future(addon.tick(chunk))
        while not task.done():
            yields += 1
            await asyncio.sleep(0)

    asyncio.run(run())
    assert sum(e.observation.continuation for e in sink.events) == connections
    assert yields >= connections // chunk  # the loop ran between chunks


@pytest.mark.parametrize(("gap", "every"), [(300, 60.0), (60, 30.0), (1, 0.5)],
                         ids=["default", "minute", "tiny"])
def test_continuations_follow_the_idle_gap(tmp_path: Path, gap, every):
    text = TEST_CONFIG.read_text().replace("store:\n", f"store:\n  idle_gap_seconds: {gap}\n")
    (tmp_path / "config.yaml").write_text(text)
    shutil.copy(TEST_CONFIG.parent / "devices.csv", tmp_path / "devices.csv")
    a = SM.SocialMonitor(sink_factory=lambda config: RecordingSink())
    with taddons.context(a) as tctx:
        tctx.configure(a, social_monitor_config=str(tmp_path / "config.yaml"))
        assert a.continue_every() == every


# --- destinations the proxy can tell are hidden (issue 16) ----------------------------------------


@pytest.mark.parametrize(
    ("sni", "server", "kind", "platform"),
    [("mask-h2.icloud.com", ("17.253.1.1", 443), "vpn", None),  # iCloud Private Relay's TLS fallback
     ("dns.google", ("8.8.8.8", 443), "encrypted-dns", None),
     ("resolver.example", ("192.0.2.53", 853), "encrypted-dns", None),  # DNS over TLS, by its port
     ("www.tiktok.com", ("93.184.216.34", 443), None, "tiktok")],
)
def test_a_hidden_destination_through_the_proxy(addon, sink, sni, server, kind, platform):
    addon.tls_clienthello(hello(sni, server=server))
    assert [(e.platform, e.observation.obscured_by) for e in sink.events] == [(platform, kind)]
    assert not (kind and sink.events[0].flagged)  # a hidden destination is never flagged
    counted = sample(addon, "social_monitor_obscured_flows_total",
                     {"school": sink.events[0].school or "unknown", "zone": sink.events[0].zone or "unknown",
                      "kind": kind or "none"})
    assert counted == (1.0 if kind else 0.0)
