"""Observation and AccessEvent as ECS: the name lands in the field its protocol defines."""

import pytest

from monitor.observation import AccessEvent, Flag, Observation, iso_utc, normalise_hostname


@pytest.mark.parametrize(
    ("protocol", "field"),
    [("dns", "dns.question.name"), ("tls", "tls.client.server_name"), ("quic", "tls.client.server_name"),
     ("http", "url.domain")],
)
def test_name_field_per_protocol(protocol, field):
    obs = Observation(0.0, "10.0.0.1", 5, "192.0.2.1", 443, "tcp", protocol, "www.example.org")
    row = obs.to_ecs()
    assert row[field] == "www.example.org"
    names = {"dns.question.name", "tls.client.server_name", "url.domain"} & set(row)
    assert names == {field}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("WWW.Example.ORG.", "www.example.org"), (" x.com ", "x.com"),
     ("bücher.example", "xn--bcher-kva.example")],
)
def test_normalise_hostname(raw, expected):
    assert normalise_hostname(raw) == expected


def test_iso_utc_is_ecs_timestamp():
    assert iso_utc(1796032800.25) == "2026-11-30T10:00:00.250Z"


def test_event_flagged_and_recordable():
    obs = Observation(0.0, "10.0.0.1", 5, "192.0.2.1", 443, "tcp", "tls", "x.com")
    flag = Flag("contact_time", "4.3", "reason")
    event = AccessEvent(obs, platform="twitter", trust_device=True, flags=(flag,))
    assert event.flagged and event.recordable
    for change in ({"trust_device": False}, {"platform": None}, {"sensitive": True}, {"monitored": False}):
        other = AccessEvent(obs, **{"platform": "twitter", "trust_device": True, **change})
        assert not other.recordable, change
    row = event.to_ecs()
    assert row["social.flags"] == [{"name": "contact_time", "clause": "4.3", "reason": "reason"}]
    # hostnames only: never a path, a full URL, a query or HTTP content
    assert not any(k.startswith(("url.path", "url.full", "url.query", "http.")) for k in row)


@pytest.mark.parametrize(
    ("encapsulation", "field"),
    [(None, None), ("vxlan", "vxlan"), ("gre,erspan", "gre,erspan")],
    ids=["direct", "one-tunnel", "nested"],
)
def test_tunnel_provenance_is_network_encapsulation(encapsulation, field):
    obs = Observation(0.0, "10.0.0.1", 5, "192.0.2.1", 53, "udp", "dns", "x.com", encapsulation=encapsulation)
    assert obs.to_ecs().get("network.encapsulation") == field


@pytest.mark.parametrize(("continuation", "field"), [(False, None), (True, True)], ids=["first", "continued"])
def test_a_continuation_says_so(continuation, field):
    obs = Observation(0.0, "10.0.0.1", 5, "192.0.2.1", 443, "tcp", "tls", "x.com", continuation=continuation)
    assert obs.to_ecs().get("social.continuation") == field


@pytest.mark.parametrize(
    ("protocol", "hostname", "obscured_by", "expected"),
    [("wireguard", "", "vpn", {"social.obscured": True, "social.obscured_by": "vpn"}),
     ("tls", "", "encrypted-dns", {"social.obscured": True, "social.obscured_by": "encrypted-dns"}),
     ("tls", "dns.google", "encrypted-dns", {"tls.client.server_name": "dns.google",
                                             "social.obscured_by": "encrypted-dns"}),
     ("tls", "www.facebook.com", None, {"tls.client.server_name": "www.facebook.com"})],
)
def test_to_ecs_of_a_hidden_destination(protocol, hostname, obscured_by, expected):
    from monitor.observation import Observation

    obs = Observation(1.0, "10.0.0.5", 40000, "198.51.100.9", 51820, "udp", protocol, hostname,
                      obscured=obscured_by is not None, obscured_by=obscured_by)
    out = obs.to_ecs()
    assert {k: out[k] for k in expected} == expected
    names = {"tls.client.server_name", "url.domain", "dns.question.name"}
    assert bool(names & set(out)) == bool(hostname)  # a name-less flow shows no empty name field
    assert ("social.obscured_by" in out) == (obscured_by is not None)


def _datetime_iso(ts: float) -> str:
    """What iso_utc returned before it cached seconds: the reference it must match byte for byte."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize("ts", [
    0.0, -0.0, 1.0, 1796032800.25, 1581109488.0814, 1581109488.9999995, 1581109488.9999994,
    1581109488.0005, 1581109488.0004999, 0.0000005, 0.0000015, -0.5, -1.0000004, -1.9999996, -86400.75,
    253402300799.999, 1e9 + 0.999999, 1e9 + 0.9999996,
])
def test_iso_utc_is_the_text_datetime_gives(ts):
    assert iso_utc(ts) == _datetime_iso(ts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_iso_utc_agrees_with_datetime_on_random_times(seed):
    import random

    rng = random.Random(seed)
    times = [rng.uniform(-1e9, 4e9) for _ in range(20000)]
    times += [rng.randrange(0, 4_000_000_000) + rng.randrange(0, 1_000_000) / 1e6 for _ in range(20000)]
    assert [t for t in times if iso_utc(t) != _datetime_iso(t)] == []


@pytest.mark.parametrize("ts", [float("nan"), float("inf"), 1e20])
def test_iso_utc_refuses_what_datetime_refuses(ts):
    with pytest.raises((ValueError, OverflowError, OSError)):
        _datetime_iso(ts)
    with pytest.raises((ValueError, OverflowError, OSError)):
        iso_utc(ts)


_BASE = dict(timestamp=1581109488.0814, client_ip="10.0.0.1", client_port=50000, server_ip="192.0.2.1",
             server_port=443, transport="tcp", protocol="tls", hostname="www.example.org")


@pytest.mark.parametrize("changes", [
    {},
    {"protocol": "dns", "transport": "udp", "server_port": 53},
    {"protocol": "quic", "transport": "udp"},
    {"protocol": "http", "server_port": 80},
    {"protocol": "wireguard", "hostname": "", "transport": "udp"},
    {"protocol": "tls", "hostname": ""},
    {"client_mac": "aa:bb:cc:dd:ee:ff"},
    {"user": "jsmith", "source": "proxy"},
    {"vlan": 0},
    {"vlan": 4094, "encapsulation": "gre,vxlan"},
    {"attribution": "dns-answer"},
    {"obscured": True},
    {"obscured_by": "vpn", "obscured": True},
    {"obscured_by": "ech"},
    {"continuation": True},
    {"hostname": 'quo"te\\back\x01ctl\u00e9\U0001f600.example'},  # http's Host can hold anything
    {"client_ip": "2001:db8::1", "server_ip": "2001:db8::2"},
    {"client_port": True},  # not a plain int: json's own text ("true"), not the int's
    {"vlan": None, "client_mac": "", "encapsulation": "", "user": ""},
    {"client_mac": 5},  # not text where text belongs: as json writes it
    {"client_mac": "aa:bb:cc:dd:ee:ff", "user": "u", "vlan": 7, "encapsulation": "vxlan",
     "attribution": "dns-answer", "obscured_by": "tor", "continuation": True, "source": "proxy"},
])
def test_ecs_json_head_is_the_json_of_to_ecs(changes):
    import json

    obs = Observation(**{**_BASE, **changes})
    assert obs.ecs_json_head() + "}" == json.dumps(obs.to_ecs(), separators=(",", ":"))
