"""Fast synthetic captures for load-style tests: raw frames built with struct, no scapy per packet."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from pathlib import Path


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def dns_query_frame(client: str, server: str, sport: int, name: str, txid: int = 1) -> bytes:
    """Ethernet / IPv4 / UDP / DNS standard query for an A record."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    dns = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    udp = struct.pack("!HHHH", sport, 53, 8 + len(dns), 0) + dns
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         ipaddress.IPv4Address(client).packed, ipaddress.IPv4Address(server).packed)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    ether = bytes.fromhex("020000000002" "020000000001") + b"\x08\x00"
    return ether + header + udp


def write_pcap(path: Path, frames: Iterable[tuple[float, bytes]]) -> None:
    """Classic little-endian pcap, microsecond timestamps, Ethernet link type."""
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, frame in frames:
            seconds = int(ts)
            out.write(struct.pack("<IIII", seconds, int((ts - seconds) * 1e6), len(frame), len(frame)))
            out.write(frame)
