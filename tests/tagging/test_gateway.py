"""The gateway's own addresses, read from the kernel's tables, and which of them are left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.tagging.gateway import (
    GatewayAddresses,
    ipv4_local_addresses,
    ipv6_local_addresses,
    read_local_addresses,
)

FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 10.20.10.0/23 2 0 2
           |-- 10.20.10.0
              /23 link UNICAST
           |-- 10.20.10.1
              /32 host LOCAL
     |-- 203.0.113.7
        /32 host LOCAL
        /24 link UNICAST
Local:
  +-- 0.0.0.0/0 3 0 5
           |-- 127.0.0.1
              /32 host LOCAL
"""

IF_INET6 = """\
fd000000000000000000000000000002 04 40 00 82     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
garbage
"""


def test_ipv4_local_addresses_are_the_host_local_entries():
    assert ipv4_local_addresses(FIB_TRIE) == {"127.0.0.1", "10.20.10.1", "203.0.113.7"}


def test_ipv6_local_addresses_in_canonical_form():
    assert ipv6_local_addresses(IF_INET6) == {"fd00::2", "fe80::fc:ff:fe00:1", "::1"}


def test_read_local_addresses_from_files(tmp_path: Path):
    (tmp_path / "fib").write_text(FIB_TRIE)
    (tmp_path / "inet6").write_text(IF_INET6)
    assert read_local_addresses(tmp_path / "fib", tmp_path / "inet6") >= {"10.20.10.1", "fd00::2"}
    assert read_local_addresses(tmp_path / "missing", tmp_path / "inet6") == {"fd00::2", "fe80::fc:ff:fe00:1",
                                                                              "::1"}


def test_this_hosts_loopback_is_among_its_addresses():
    assert "127.0.0.1" in read_local_addresses()


LOCAL = {"127.0.0.1", "::1", "10.20.10.1", "203.0.113.7", "fd00::2"}


@pytest.mark.parametrize(
    ("zones", "client", "own"),
    [
        ([], "203.0.113.7", True),  # the uplink address: the gateway's own lookups
        ([], "10.20.10.1", True),
        ([], "fd00::2", True),
        ([], "127.0.0.1", True),  # loopback is the gateway's own...
        ([], "127.0.0.53", True),  # ...all of 127/8 (systemd-resolved's stub listens there)
        ([], "::1", True),
        ([], "10.20.10.41", False),  # a client
        (["10.20.10.0/23"], "10.20.10.1", True),  # a zone that merely contains the LAN address: still own
        (["10.20.10.1/32"], "10.20.10.1", False),  # a zone naming the address itself: kept
        (["127.0.0.0/8", "::1/128"], "127.0.0.1", False),  # the demo-loopback zone: loopback is a place
        (["127.0.0.0/8", "::1/128"], "::1", False),
        (["127.0.0.0/8"], "203.0.113.7", True),  # ...but the uplink address is still the gateway's
        (["0.0.0.0/0"], "127.0.0.1", True),  # a catch-all is not an explicit loopback zone
    ],
)
def test_owns(zones, client, own):
    assert GatewayAddresses.build(LOCAL, zones).owns(client) is own


def test_of_config_reads_the_zones_of_the_example(example_config):
    gateway = GatewayAddresses.of_config(example_config.schools, local={"127.0.0.1", "203.0.113.7"})
    assert (gateway.owns("127.0.0.1"), gateway.owns("203.0.113.7")) == (False, True)  # demo-loopback zone


@pytest.mark.parametrize(
    ("zones", "server", "serves"),
    [
        ([], "10.20.10.1", True),  # the proxy listener on the LAN address
        (["127.0.0.0/8", "::1/128"], "127.0.0.1", True),  # the demo zone: a client, still local
        (["10.20.10.1/32"], "10.20.10.1", True),
        ([], "198.51.100.7", False),
    ],
)
def test_serves_is_every_local_address_whatever_the_zones(zones, server, serves):
    assert GatewayAddresses.build(LOCAL, zones).serves(server) is serves
