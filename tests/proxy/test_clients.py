"""The proxy's client gate: the trust's networks are served, every other address refused."""

from __future__ import annotations

import ipaddress

import pytest

from monitor.proxy.clients import LOG_EVERY, ClientGate, client_address

GATE = ClientGate(tuple(ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "::1/128", "10.10.20.0/24", "2001:db8:10:20::/64")))


@pytest.mark.parametrize(("peer", "address"), [
    ("10.10.20.5", "10.10.20.5"),
    ("::ffff:10.10.20.5", "10.10.20.5"),  # a dual-stack socket's view of an IPv4 client
    ("fe80::1%vlan120", "fe80::1"),
    ("2001:db8:10:20::5", "2001:db8:10:20::5"),
    ("not-an-address", None),
    ("", None),
])
def test_client_address(peer, address):
    found = client_address(peer)
    assert (str(found) if found is not None else None) == address


@pytest.mark.parametrize(("peer", "allowed"), [
    ("127.0.0.1", True),
    ("::1", True),
    ("10.10.20.5", True),
    ("::ffff:10.10.20.5", True),
    ("2001:db8:10:20::5", True),
    ("198.51.100.7", False),  # a public address: the world
    ("10.10.21.5", False),  # private, but not a zone of the trust
    ("2001:db8:bad::7", False),
    ("::ffff:198.51.100.7", False),
    ("garbage", False),
])
def test_gate_allows_the_trusts_networks_only(peer, allowed):
    assert GATE.allows(peer) is allowed


def test_refusals_are_all_counted_and_logged_once_a_minute():
    gate = ClientGate(GATE.networks)
    logged = [gate.refuse(now) for now in (0.0, 1.0, 2.0, LOG_EVERY + 0.5, LOG_EVERY + 1.0)]
    assert logged == [1, None, None, 3, None]  # the minute's line carries the refusals not yet logged
    assert gate.refused == 5
