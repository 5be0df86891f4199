"""The proxy child gives up every Linux capability before it reads a byte from a client.

The daemon holds CAP_NET_RAW and CAP_NET_ADMIN for packet capture (ambient
capabilities from the systemd unit), and a child inherits ambient capabilities.
The proxy needs neither: regular mode opens ordinary TCP sockets on a port above
1024, and transparent mode (nftables `redirect`, deploy/nftables-transparent-proxy.nft)
only reads the original destination with getsockopt(SO_ORIGINAL_DST), which
needs no capability either (mitmproxy/platform/linux.py). So the process that
parses untrusted input holds nothing: the ambient set is cleared, the bounding
set emptied where allowed, effective, permitted and inheritable sets zeroed, and
no_new_privs set so no setuid program can give any back.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAP_SETPCAP = 8
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


@dataclass(frozen=True)
class Capabilities:
    """The capability sets of a process, as /proc/<pid>/status shows them (bit masks)."""

    inheritable: int
    permitted: int
    effective: int
    bounding: int
    ambient: int

    @classmethod
    def parse(cls, status: str) -> Capabilities:
        """From the text of /proc/<pid>/status; ValueError when a Cap line is missing."""
        found = {}
        for line in status.splitlines():
            name, _, value = line.partition(":")
            if name in STATUS_FIELDS:
                found[name] = int(value.strip(), 16)
        missing = [name for name in STATUS_FIELDS if name not in found]
        if missing:
            raise ValueError(f"no {', '.join(missing)} line in the process status")
        return cls(*(found[name] for name in STATUS_FIELDS))

    @classmethod
    def of(cls, pid: int | str = "self", proc: Path = Path("/proc")) -> Capabilities:
        return cls.parse((proc / str(pid) / "status").read_text())

    @property
    def held(self) -> bool:
        """Whether the process can use, or regain, any capability (the bounding set aside)."""
        return bool(self.inheritable | self.permitted | self.effective | self.ambient)


def last_capability(proc: Path = Path("/proc")) -> int:
    try:
        return int((proc / "sys" / "kernel" / "cap_last_cap").read_text())
    except (OSError, ValueError):
        return 40  # CAP_CHECKPOINT_RESTORE, the last one in Linux 5.9 to 6.x


def drop_all() -> Capabilities:
    """Give up every capability for good; returns the sets left. OSError when Linux refuses."""
    libc = ctypes.CDLL(None, use_errno=True)

    def prctl(*args: int) -> int:
        return int(libc.prctl(*(ctypes.c_ulong(a) for a in args)))

    if prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    if Capabilities.of().effective & (1 << CAP_SETPCAP):  # root, say: empty the bounding set too
        for cap in range(last_capability() + 1):
            prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL for a cap this kernel lacks: nothing to drop
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # all zero: no effective, permitted or inheritable capability
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    left = Capabilities.of()
    if left.held:
        raise OSError(0, f"capabilities still held after dropping them: {left}")
    return left
