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


def pcapng_block(block_type: int, body: bytes) -> bytes:
    """One little-endian pcapng block: type, total length, body padded to 4 bytes, total length."""
    body += bytes(-len(body) % 4)
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def write_pcapng(path: Path, frames: Iterable[tuple[int, bytes]], tsresol: int | None = None) -> None:
    """A section header, one Ethernet interface (with `if_tsresol` when given) and an enhanced
    packet block per (timestamp in the interface's units, frame), written byte by byte."""
    options = b"" if tsresol is None else struct.pack("<HHB3xHH", 9, 1, tsresol, 0, 0)
    with open(path, "wb") as out:
        out.write(pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        out.write(pcapng_block(1, struct.pack("<HHI", 1, 0, 65535) + options))
        for units, frame in frames:
            out.write(pcapng_block(6, struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF,
                                                  len(frame), len(frame)) + frame))


def tcp_frame(client: str, server: str, sport: int, dport: int, seq: int, payload: bytes = b"",
              flags: int = 0x18) -> bytes:
    """Ethernet / IPv4 / TCP from client to server (flags: 0x02 SYN, 0x18 PSH+ACK), no checksums."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 0, 0x50, flags, 65535, 0, 0)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0,
                         ipaddress.IPv4Address(client).packed, ipaddress.IPv4Address(server).packed)
    return bytes.fromhex("020000000002" "020000000001") + b"\x08\x00" + header + tcp + payload
