"""What the kernel says about an interface: present, up, and which one carries the default route.

The live capture asks before it opens a socket (a socket bound to a missing
interface fails, one bound to a down interface opens but reports ENETDOWN on
its first read) and after a socket fails, to give the outage its reason.
Everything here reads the calling process's own network namespace: the link
flags through an ioctl on a throwaway socket (sysfs may be mounted for
another namespace), the routes from /proc/net (which is per namespace).
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
from typing import Final, Literal

LinkState = Literal["up", "down", "missing", "invalid"]
"""up: admin up, frames reach a packet socket; down: present but `ip link set ... down`;
missing: no such interface (not created yet, deleted, misspelt); invalid: not an interface name."""

_SIOCGIFFLAGS: Final = 0x8913
_IFF_UP: Final = 0x1
_IFNAMSIZ: Final = 16
_RTF_UP: Final = 0x0001
_RTF_REJECT: Final = 0x0200


def valid_interface_name(name: str) -> bool:
    """The kernel's rule (dev_valid_name): 1-15 bytes, no '/', ':' or white space, not '.' or '..'."""
    encoded = name.encode("utf-8", "replace")
    return (0 < len(encoded) < _IFNAMSIZ and name not in (".", "..")
            and not any(c in "/:" or c.isspace() for c in name))


def link_state(name: str) -> LinkState:
    """The interface's state now, in this network namespace."""
    if not valid_interface_name(name):
        return "invalid"
    request = struct.pack("16sH", name.encode(), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            reply = fcntl.ioctl(probe.fileno(), _SIOCGIFFLAGS, request)
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                return "missing"
            raise
    flags = struct.unpack_from("H", reply, 16)[0]
    return "up" if flags & _IFF_UP else "down"


def default_route_interface(ipv4_routes: str | None = None, ipv6_routes: str | None = None) -> str | None:
    """The interface of the preferred default route (IPv4 first, then IPv6), or None when there is none.

    The texts are /proc/net/route and /proc/net/ipv6_route (read when not given); among several
    default routes the lowest metric wins, as it does for the kernel."""
    if ipv4_routes is None:
        ipv4_routes = _read("/proc/net/route")
    best: tuple[int, str] | None = None
    for line in ipv4_routes.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[1] != "00000000" or fields[7] != "00000000":
            continue
        flags, metric = _hex(fields[3]), _hex(fields[6])
        if flags is None or metric is None or not flags & _RTF_UP or flags & _RTF_REJECT:
            continue
        if best is None or metric < best[0]:
            best = (metric, fields[0])
    if best is not None:
        return best[1]
    if ipv6_routes is None:
        ipv6_routes = _read("/proc/net/ipv6_route")
    for line in ipv6_routes.splitlines():
        fields = line.split()
        if len(fields) < 10 or fields[1] != "00" or fields[0].strip("0"):
            continue
        flags, metric = _hex(fields[8]), _hex(fields[5])
        if flags is None or metric is None or not flags & _RTF_UP or flags & _RTF_REJECT or fields[9] == "lo":
            continue
        if best is None or metric < best[0]:
            best = (metric, fields[9])
    return best[1] if best is not None else None


def _hex(field: str) -> int | None:
    try:
        return int(field, 16)
    except ValueError:
        return None


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""
