"""Link state and the default route: names the kernel accepts, route tables as /proc prints them,
real links."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from monitor.capture.links import default_route_interface, link_state, valid_interface_name

ROUTE_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"


def ipv4(*rows: tuple[str, str, str, int, str]) -> str:
    """/proc/net/route rows: (interface, destination, flags, metric, mask), hex as the kernel writes it."""
    return ROUTE_HEADER + "".join(f"{i}\t{d}\t010200C0\t{f}\t0\t0\t{m}\t{mask}\t0\t0\t0\n"
                                  for i, d, f, m, mask in rows)


def ipv6(*rows: tuple[str, str, str, str, str]) -> str:
    """/proc/net/ipv6_route rows: (destination, prefix length, metric, flags, interface)."""
    zeros = "0" * 32
    return "".join(f"{d} {p} {zeros} 00 {zeros} {m} 00000001 00000000 {f} {i}\n" for d, p, m, f, i in rows)


V6_DEFAULT = "0" * 32
V6_VIA_ETH1 = (V6_DEFAULT, "00", "00000400", "00000003", "eth1")


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("eth0", True),
        ("gw-in", True),
        ("vlan999", True),
        ("a" * 15, True),
        ("a" * 16, False),  # IFNAMSIZ counts the NUL
        ("", False),
        (".", False),
        ("..", False),
        ("../../etc", False),
        ("eth0:1", False),  # an alias, not an interface
        ("eth 0", False),
    ],
)
def test_valid_interface_name(name, valid):
    assert valid_interface_name(name) is valid


@pytest.mark.parametrize(
    ("v4", "v6", "expected"),
    [
        (ipv4(("eth0", "00000000", "0003", 0, "00000000")), "", "eth0"),
        (ipv4(("eth0", "0000A8C0", "0001", 0, "00FFFFFF")), "", None),  # a subnet route is not a default
        (ipv4(("wan1", "00000000", "0003", 200, "00000000"), ("wan2", "00000000", "0003", 100, "00000000")),
         "", "wan2"),  # the lowest metric wins
        (ipv4(("eth0", "00000000", "0002", 0, "00000000")), "", None),  # not RTF_UP
        (ipv4(("eth0", "00000000", "0201", 0, "00000000")), "", None),  # a reject route
        (ipv4(("eth0", "00000000", "0003", 0, "00000000")), ipv6(V6_VIA_ETH1), "eth0"),  # IPv4 first
        (ipv4(), ipv6(V6_VIA_ETH1), "eth1"),  # an IPv6-only gateway
        (ipv4(), ipv6((V6_DEFAULT, "00", "ffffffff", "00200200", "lo")), None),  # unreachable default on lo
        (ipv4(), ipv6(("fd" + "0" * 30, "40", "00000100", "00000001", "eth1")), None),  # a prefix only
        (ROUTE_HEADER + "garbage\n" + "eth0 00000000 x zz 0 0 zz 00000000\n", "garbage line\n", None),
        ("", "", None),
    ],
    ids=["one-default", "subnet-only", "lowest-metric", "not-up", "reject", "ipv4-first", "ipv6-only",
         "ipv6-unreachable", "ipv6-prefix", "garbage", "empty"],
)
def test_default_route_interface(v4, v6, expected):
    assert default_route_interface(v4, v6) == expected


def test_default_route_interface_reads_this_namespace():
    with open("/proc/net/route") as handle:
        has_v4_default = any(line.split()[1:2] == ["00000000"] for line in handle.readlines()[1:])
    found = default_route_interface()
    assert found is None or valid_interface_name(found)
    if has_v4_default:
        assert found is not None


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("lo", "up"),
        (f"smnone{uuid.uuid4().hex[:6]}", "missing"),
        ("bad/name", "invalid"),
        ("x" * 20, "invalid"),
    ],
    ids=["loopback", "missing", "slash", "too-long"],
)
def test_link_state(name, state):
    assert link_state(name) == state


@pytest.mark.integration
@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2")
def test_link_state_follows_ip_link():
    name = f"smL{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True)
    try:
        seen = [link_state(name)]
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        seen.append(link_state(name))
        subprocess.run(["ip", "link", "set", name, "down"], check=True)
        seen.append(link_state(name))
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)
    seen.append(link_state(name))
    assert seen == ["down", "up", "down", "missing"]
