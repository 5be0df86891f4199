"""The pure helpers behind the proxy addon, table by table."""

from __future__ import annotations

import pytest

from monitor.observation import Observation
from monitor.proxy.observe import (
    MAX_CONTINUED,
    ConnectionState,
    ConnectionTable,
    build_observation,
    endpoint,
    hostname_or_none,
    parse_decrypt_option,
    proxy_user,
    request_hostname,
)
from monitor.tagging.catalog import default_catalog


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("www.TikTok.com.", "www.tiktok.com"),
        (" m.facebook.com ", "m.facebook.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("157.240.1.1", None),
        ("[2a03:2880::1]", None),
        ("::1", None),
        ("", None),
        (None, None),
    ],
)
def test_hostname_or_none(name, expected):
    assert hostname_or_none(name) == expected


@pytest.mark.parametrize(
    ("url", "http_version", "headers", "expected"),
    [
        ("http://127.0.0.1:8080/", "HTTP/1.1", {"Host": "www.TikTok.com:80"}, "www.tiktok.com"),
        ("http://www.reddit.com/r/x", "HTTP/1.1", {}, "www.reddit.com"),  # no Host: the URL's
        ("http://10.0.0.1/", "HTTP/1.1", {"Host": "[2a03:2880::1]:443"}, None),  # an address, no name
        ("http://10.0.0.1/", "HTTP/1.1", {"Host": "10.0.0.1"}, None),
        ("https://m.facebook.com/", "HTTP/2.0", {}, "m.facebook.com"),  # :authority
        ("http://x.example/", "HTTP/1.1", {"Host": "bücher.example"}, "xn--bcher-kva.example"),
    ],
)
def test_request_hostname_agrees_with_pretty_host(url, http_version, headers, expected):
    from mitmproxy import http

    request = http.Request.make("GET", url)
    request.headers.pop("Host", None)  # make() may write one from the URL
    request.headers.update(headers)
    request.http_version = http_version
    if http_version == "HTTP/2.0":
        request.authority = request.host
    assert request_hostname(request.host_header, request.host) == expected
    assert hostname_or_none(request.pretty_host) == expected  # what the addon used to compute


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ((("157.240.1.1", 443),), ("157.240.1.1", 443)),
        ((None, ("10.0.0.1", 80)), ("10.0.0.1", 80)),  # not connected yet: the original destination
        ((("www.tiktok.com", 443),), ("", 443)),  # regular mode before connecting: IP unknown
        ((("::ffff:10.1.2.3", 8080, 0, 0),), ("10.1.2.3", 8080)),  # dual-stack socket
        ((("2a03:2880::1", 443, 0, 0),), ("2a03:2880::1", 443)),
        ((), ("", 0)),
    ],
)
def test_endpoint(candidates, expected):
    assert endpoint(*candidates) == expected


@pytest.mark.parametrize(
    ("metadata", "user"),
    [
        ({"proxyauth": ("jsmith", "pw")}, "jsmith"),
        ({"proxyauth": ["jsmith", "pw"]}, "jsmith"),
        ({"proxyauth": " jsmith "}, "jsmith"),
        ({"proxyauth": ("", "pw")}, None),
        ({"proxyauth": ()}, None),
        ({}, None),
        (None, None),
    ],
)
def test_proxy_user(metadata, user):
    assert proxy_user(metadata) == user


@pytest.mark.parametrize(
    ("values", "expected", "error"),
    [
        ([], frozenset(), None),
        (["tiktok", " YouTube ", ""], frozenset({"tiktok", "youtube"}), None),
        (["tiktok", "myspace", "geocities"], None, "unknown platform id(s) geocities, myspace"),
    ],
)
def test_parse_decrypt_option(values, expected, error):
    if error:
        with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
            parse_decrypt_option(values, default_catalog())
    else:
        assert parse_decrypt_option(values, default_catalog()) == expected


@pytest.mark.parametrize(
    ("protocol", "server", "port"),
    [("tls", [None], 443), ("http", [None], 80), ("tls", [("1.2.3.4", 8443)], 8443)],
)
def test_build_observation_default_ports(protocol, server, port):
    obs = build_observation(timestamp=1.0, hostname="www.tiktok.com", protocol=protocol,
                            client=("127.0.0.1", 5000), server=server, user="u")
    assert (obs.server_port, obs.source, obs.transport, obs.user) == (port, "proxy", "tcp", "u")


def test_connection_state_first_sighting_is_bounded():
    state = ConnectionState()
    assert state.first_sighting("a", max_hostnames=3)
    assert not state.first_sighting("a", max_hostnames=3)
    for name in "bc":
        assert state.first_sighting(name, max_hostnames=3)
    assert state.first_sighting("d", max_hostnames=3)  # full: starts over
    assert len(state.hostnames) == 1


def test_connection_table_is_bounded_and_counts_evictions():
    table = ConnectionTable(max_connections=3)
    for i in range(5):
        table.get(f"c{i}")
    assert len(table) == 3 and table.evictions == 2
    assert table.drop("c4") is not None and table.drop("c0") is None


def test_same_second_tagger_is_exact_and_bounded():
    from monitor.config.loader import load_config
    from monitor.observation import Observation
    from monitor.proxy.observe import SameSecondTagger
    from monitor.tagging.tagger import Tagger
    from tests.proxy_helpers import TEST_CONFIG

    tagger = Tagger(load_config(TEST_CONFIG))
    memo = SameSecondTagger(tagger, max_entries=2)

    def obs(ts: float, port: int, host: str = "www.tiktok.com", ip: str = "127.0.0.1") -> Observation:
        return Observation(ts, ip, port, "1.2.3.4", 443, "tcp", "tls", host, source="proxy")

    base = 1795000000.0
    for o in [obs(base + 0.1, 1), obs(base + 0.9, 2), obs(base + 1.0, 3), obs(base + 1.5, 4, ip="127.0.0.2"),
              obs(base + 1.6, 5, host="www.youtube.com"), obs(base + 1.7, 6)]:
        got, want = memo.tag(o), tagger.tag(o)
        assert got.observation is o
        assert {k: getattr(got, k) for k in ("platform", "trust_device", "zone", "period", "local_time",
                                              "flags", "owner", "asset_tag")} == \
               {k: getattr(want, k) for k in ("platform", "trust_device", "zone", "period", "local_time",
                                              "flags", "owner", "asset_tag")}
    assert len(memo._memo) <= 2
    assert memo.catalog is tagger.catalog and memo.config is tagger.config


def _seen(name: str, at: float) -> Observation:
    return Observation(at, "10.0.0.1", 50000, "157.240.1.1", 443, "tcp", "tls", name, source="proxy")


@pytest.mark.parametrize(
    ("names", "asked", "expected"),
    [
        (["www.tiktok.com"], [60.0], [[60.0]]),
        (["www.tiktok.com"], [0.5], [[]]),  # under a second after the observation
        (["www.tiktok.com"], [60.0, 60.5, 120.0], [[60.0], [], [120.0]]),
        (["www.tiktok.com", "v16.tiktokcdn.com"], [60.0], [[60.0, 60.0]]),
        ([f"n{i}.tiktok.com" for i in range(20)], [60.0], [[60.0] * MAX_CONTINUED]),  # bounded
        ([], [60.0], [[]]),  # nothing observed: nothing to continue
    ],
    ids=["one", "too-soon", "ticks", "two-names", "capped", "none"],
)
def test_connection_continuations(names, asked, expected):
    state = ConnectionState()
    for name in names:
        state.remember(_seen(name, 0.0))
    got = []
    for now in asked:
        out = state.continuations(now)
        assert all(o.continuation and o.source == "proxy" for o in out)
        got.append([o.timestamp for o in out])
    assert got == expected


# --- what the proxy can tell of a hidden destination (issue 16) -----------------------------------


@pytest.mark.parametrize(
    ("hostname", "protocol", "port", "kind"),
    [("dns.google", "tls", 443, "encrypted-dns"), ("mask-h2.icloud.com", "tls", 443, "vpn"),
     ("resolver.example", "tls", 853, "encrypted-dns"), ("resolver.example", "http", 853, None),
     ("www.facebook.com", "tls", 443, None), ("x.ddns.softether-network.net", "http", 80, "vpn")],
)
def test_hidden_by_name(hostname, protocol, port, kind):
    from monitor.capture.bypass import default_catalog
    from monitor.proxy.observe import hidden_by_name

    assert hidden_by_name(hostname, protocol, port, default_catalog()) == kind


@pytest.mark.parametrize(("bypass_given", "kind"), [(True, "vpn"), (False, None)])
def test_build_observation_marks_a_vpn_service_with_the_catalog(bypass_given, kind):
    from monitor.capture.bypass import default_catalog
    from monitor.proxy.observe import build_observation

    obs = build_observation(timestamp=1.0, hostname="mask.icloud.com", protocol="tls",
                            client=("10.0.0.5", 5000), server=[("17.0.0.1", 443)],
                            bypass=default_catalog() if bypass_given else None)
    assert (obs.obscured_by, obs.obscured, obs.source) == (kind, kind is not None, "proxy")
