"""Builders for the packets the capture tests feed: ClientHellos, TLS records, QUIC Initials, frames."""

from __future__ import annotations

from collections.abc import Iterable

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from monitor.capture.quic import VERSION_2, initial_salt
from monitor.capture.sensor import Sensor
from monitor.observation import Observation

CLIENT4, SERVER4 = "192.168.1.10", "31.13.86.36"
CLIENT6, SERVER6 = "2001:db8::10", "2a03:2880:f10c:83:face:b00c:0:25de"


def client_hello(sni: str | None, *, ech: bool = False, padding: int = 0,
                 alpn: tuple[str, ...] = ()) -> bytes:
    """A TLS 1.3-style ClientHello handshake message (4-byte header included)."""
    exts = b""
    if alpn:
        names = b"".join(bytes([len(p)]) + p.encode() for p in alpn)
        exts += b"\x00\x10" + (len(names) + 2).to_bytes(2, "big") + len(names).to_bytes(2, "big") + names
    if sni is not None:
        name = sni.encode()
        entry = b"\x00" + len(name).to_bytes(2, "big") + name
        sni_ext = len(entry).to_bytes(2, "big") + entry
        exts += b"\x00\x00" + len(sni_ext).to_bytes(2, "big") + sni_ext
    exts += b"\x00\x2b\x00\x03\x02\x03\x04"  # supported_versions: TLS 1.3
    if ech:
        body = b"\x00\x00\x01\x00\x01\x07\x00\x20" + bytes(32) + b"\x00\x10" + bytes(16)
        exts += b"\xfe\x0d" + len(body).to_bytes(2, "big") + body
    if padding:
        exts += b"\x00\x15" + padding.to_bytes(2, "big") + bytes(padding)
    body = (b"\x03\x03" + bytes(range(32)) + b"\x20" + bytes(32) + b"\x00\x04\x13\x01\x13\x02"
            + b"\x01\x00" + len(exts).to_bytes(2, "big") + exts)
    return b"\x01" + len(body).to_bytes(3, "big") + body


def tls_records(message: bytes, record_size: int = 16384) -> bytes:
    """The message as one or more TLS handshake records."""
    out = b""
    for i in range(0, len(message), record_size):
        part = message[i : i + record_size]
        out += b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part
    return out


def varint(value: int) -> bytes:
    if value < 0x40:
        return bytes([value])
    if value < 0x4000:
        return (0x4000 | value).to_bytes(2, "big")
    return (0x80000000 | value).to_bytes(4, "big")


def crypto_frames(chunks: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(b"\x06" + varint(off) + varint(len(data)) + data for off, data in chunks)


def quic_initial(version: int, dcid: bytes, frames: bytes, *, pn: int = 0, pad_to: int = 1162,
                 scid: bytes = b"\x11\x22\x33\x44", key_dcid: bytes | None = None) -> bytes:
    """One client Initial packet protected with the version's Initial keys (RFC 9001 section 5).

    `key_dcid` is the connection id the keys come from when it is not the packet's own
    (a client's later Initials, after the server chose its connection id)."""
    payload = frames + bytes(max(0, pad_to - len(frames)))
    ptype = 1 if version == VERSION_2 else 0
    header = (bytes([0xC0 | (ptype << 4) | 0x03]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid
              + bytes([len(scid)]) + scid + varint(0) + (0x4000 | (len(payload) + 4 + 16)).to_bytes(2, "big")
              + pn.to_bytes(4, "big"))
    return aioquic_initial_keys(version, key_dcid or dcid).encrypt_packet(header, payload, pn)


def aioquic_initial_keys(version: int, dcid: bytes):
    """aioquic's own client Initial keys (its TLS module's HKDF), not monitor.capture.quic's: packets
    built here check the sensor's key derivation against an independent one."""
    from aioquic.quic.crypto import INITIAL_CIPHER_SUITE, CryptoContext
    from aioquic.tls import cipher_suite_hash, hkdf_expand_label, hkdf_extract

    salt = initial_salt(version)
    assert salt is not None
    algorithm = cipher_suite_hash(INITIAL_CIPHER_SUITE)
    secret = hkdf_expand_label(algorithm, hkdf_extract(algorithm, salt, dcid), b"client in", b"",
                               algorithm.digest_size)
    context = CryptoContext()  # aioquic uses the "quicv2" labels for v2, "quic" for every other version
    context.setup(cipher_suite=INITIAL_CIPHER_SUITE, secret=secret,
                  version=VERSION_2 if version == VERSION_2 else 1)
    return context


def tcp_frame(payload: bytes = b"", *, seq: int = 1000, flags: str = "PA", sport: int = 50000,
              dport: int = 443, v6: bool = False, reverse: bool = False) -> bytes:
    ip = IPv6(src=CLIENT6, dst=SERVER6) if v6 else IP(src=CLIENT4, dst=SERVER4)
    if reverse:
        ip = IPv6(src=SERVER6, dst=CLIENT6) if v6 else IP(src=SERVER4, dst=CLIENT4)
        sport, dport = dport, sport
    pkt = Ether(src="00:11:22:33:44:55", dst="66:77:88:99:aa:bb") / ip / TCP(
        sport=sport, dport=dport, seq=seq, flags=flags)
    if payload:
        pkt = pkt / Raw(payload)
    return bytes(pkt)


def udp_frame(payload: bytes, *, sport: int = 50000, dport: int = 443, v6: bool = False) -> bytes:
    ip = IPv6(src=CLIENT6, dst=SERVER6) if v6 else IP(src=CLIENT4, dst=SERVER4)
    return bytes(Ether(src="00:11:22:33:44:55") / ip / UDP(sport=sport, dport=dport) / Raw(payload))


def observe(frames: Iterable[bytes], linktype: int = 1, sensor: Sensor | None = None) -> list[Observation]:
    out: list[Observation] = []
    if sensor is None:
        sensor = Sensor(out.append)
    else:
        sensor.on_observation = out.append
    for i, frame in enumerate(frames):
        sensor.feed(1_700_000_000.0 + i * 0.001, linktype, frame)
    return out


def inventory_hello(mac: str, ip: str, host: str, *, server: str = SERVER4) -> bytes:
    """A TLS ClientHello from a given MAC and address (an inventory device, to be tagged as its owner's)."""
    return bytes(Ether(src=mac, dst="66:77:88:99:aa:bb") / IP(src=ip, dst=server)
                 / TCP(sport=50000, dport=443, seq=1000, flags="PA") / Raw(tls_records(client_hello(host))))
