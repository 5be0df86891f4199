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
