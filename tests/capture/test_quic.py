"""QUIC Initial decryption (v1, v2, draft-29), CRYPTO reassembly, and clear-text gQUIC CHLOs."""

from __future__ import annotations

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicProtocolVersion

from monitor.capture import quic
from tests.capture_helpers import client_hello, crypto_frames, observe, quic_initial, udp_frame

DRAFT_29 = 0xFF00001D
VERSIONS = [quic.VERSION_1, quic.VERSION_2, DRAFT_29]
DCID = bytes.fromhex("8394c8f03e515708")


def aioquic_datagrams(server_name: str, version: int) -> list[bytes]:
    config = QuicConfiguration(is_client=True, server_name=server_name, supported_versions=[version])
    conn = QuicConnection(configuration=config)
    conn.connect(("192.0.2.1", 443), now=0.0)
    return [data for data, _addr in conn.datagrams_to_send(now=0.0)]


@pytest.mark.parametrize("version", [QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2])
def test_real_aioquic_client_initial(version):
    frames = [udp_frame(d) for d in aioquic_datagrams("www.tiktok.com", version)]
    [obs] = observe(frames)
    assert (obs.protocol, obs.transport, obs.hostname) == ("quic", "udp", "www.tiktok.com")
    assert obs.server_port == 443


@pytest.mark.parametrize("version", VERSIONS, ids=["v1", "v2", "draft-29"])
def test_single_initial(version):
    hello = client_hello("www.youtube.com")
    [obs] = observe([udp_frame(quic_initial(version, DCID, crypto_frames([(0, hello)])))])
    assert obs.hostname == "www.youtube.com"


@pytest.mark.parametrize("version", VERSIONS, ids=["v1", "v2", "draft-29"])
def test_client_hello_over_several_packets_out_of_order(version):
    hello = client_hello("scontent.cdninstagram.com", padding=2500)  # post-quantum sized
    thirds = [(0, hello[:900]), (900, hello[900:1800]), (1800, hello[1800:])]
    datagrams = [quic_initial(version, DCID, crypto_frames([chunk]), pn=i) for i, chunk in enumerate(thirds)]
    frames = [udp_frame(datagrams[2]), udp_frame(datagrams[0]), udp_frame(datagrams[1])]
    [obs] = observe(frames)
    assert obs.hostname == "scontent.cdninstagram.com"


def test_crypto_frames_out_of_order_inside_one_packet():
    hello = client_hello("www.linkedin.com")
    frames = crypto_frames([(100, hello[100:]), (0, hello[:100])])
    [obs] = observe([udp_frame(quic_initial(quic.VERSION_1, DCID, frames))])
    assert obs.hostname == "www.linkedin.com"


def test_coalesced_initials_in_one_datagram():
    hello = client_hello("www.pinterest.com", padding=600)
    first = quic_initial(quic.VERSION_1, DCID, crypto_frames([(0, hello[:500])]), pad_to=0)
    second = quic_initial(quic.VERSION_1, DCID, crypto_frames([(500, hello[500:])]), pn=1, pad_to=600)
    [obs] = observe([udp_frame(first + second)])
    assert obs.hostname == "www.pinterest.com"


def test_later_initials_with_the_servers_connection_id_use_the_first_keys():
    hello = client_hello("www.twitch.tv", padding=1500)
    first = quic_initial(quic.VERSION_1, DCID, crypto_frames([(0, hello[:1000])]))
    later = quic_initial(quic.VERSION_1, b"\x5e\x7e\x40\x01", crypto_frames([(1000, hello[1000:])]), pn=1,
                         key_dcid=DCID)
    [obs] = observe([udp_frame(first), udp_frame(later)])
    assert obs.hostname == "www.twitch.tv"


def test_ech_in_quic_is_obscured():
    hello = client_hello("cloudflare-ech.com", ech=True)
    [obs] = observe([udp_frame(quic_initial(quic.VERSION_1, DCID, crypto_frames([(0, hello)])))])
    assert obs.obscured


def test_unknown_version_and_server_initials_are_ignored_quietly():
    hello = client_hello("www.youtube.com")
    packet = bytearray(quic_initial(quic.VERSION_1, DCID, crypto_frames([(0, hello)])))
    packet[1:5] = (0x0A0A0A0A).to_bytes(4, "big")  # a greased version
    assert observe([udp_frame(bytes(packet))]) == []


def chlo(tags: dict[bytes, bytes]) -> bytes:
    out, values, end = b"CHLO" + len(tags).to_bytes(2, "little") + b"\0\0", b"", 0
    for tag, value in tags.items():
        end += len(value)
        out += tag + end.to_bytes(4, "little")
        values += value
    return out + values


def test_gquic_legacy_public_header_chlo():
    body = chlo({b"PAD\0": b"-" * 20, b"SNI\0": b"www.youtube.com", b"VER\0": b"Q043"})
    packet = b"\x0d" + bytes(8) + b"Q043" + b"\x01" + bytes(12) + b"\xa0\x01" + body
    [obs] = observe([udp_frame(packet)])
    assert (obs.protocol, obs.hostname) == ("quic", "www.youtube.com")


def test_gquic_q046_long_header_chlo():
    body = chlo({b"SNI\0": b"i.ytimg.com"})
    packet = b"\xc3Q046\x50" + bytes(8) + b"\0\0\0\x01" + bytes(12) + body
    [obs] = observe([udp_frame(packet)])
    assert obs.hostname == "i.ytimg.com"


@pytest.mark.parametrize("data", [b"CHLO\xff\xff\0\0", b"CHLO\x01\0\0\0SNI\0\xff\xff\0\0"])
def test_broken_chlo_raises_parse_error(data):
    with pytest.raises(quic.QUICParseError):
        quic.chlo_server_name(data)


def test_gquic_q050_protected_initial_with_chlo():
    body = b"\x08\x00\x40\x40" + chlo({b"PAD\0": b"-" * 8, b"SNI\0": b"www.youtube.com"})
    [obs] = observe([udp_frame(quic_initial(quic.VERSION_Q050, DCID, body))])
    assert (obs.protocol, obs.hostname) == ("quic", "www.youtube.com")


@pytest.mark.parametrize("version", [quic.VERSION_T051, 0xFF000017, 0xFACEB002],
                         ids=["T051", "draft-23", "mvfst"])
def test_other_tls_based_versions(version):
    hello = client_hello("rr1---sn-h0jeen7y.googlevideo.com")
    [obs] = observe([udp_frame(quic_initial(version, DCID, crypto_frames([(0, hello)])))])
    assert obs.hostname == "rr1---sn-h0jeen7y.googlevideo.com"


@pytest.mark.parametrize(
    ("chunks", "held", "size"),
    [
        ([(0, b"abcd"), (4, b"efgh")], 2, 8),
        ([(0, b"ab"), (0, b"abcd")], 1, 4),  # a longer copy replaces, counting only its growth
        ([(0, b"abcd"), (0, b"ab")], 1, 4),  # a shorter copy is ignored
        ([(k, bytes(40)) for k in range(10)], 2, 80),  # shifted copies: the 100-byte limit holds
        ([(90, bytes(20))], 0, 0),  # past the limit
        ([(k, b"xy") for k in range(99)], 50, 100),  # overlapping pairs: held bytes count twice
    ],
    ids=["two", "longer-copy", "shorter-copy", "shifted-copies", "past-limit", "overlapping-pairs"],
)
def test_crypto_stream_holds_at_most_its_limit(chunks, held, size):
    stream = quic.CryptoStream(None)
    for offset, data in chunks:
        stream.add(offset, data, limit=100)
    assert (len(stream.chunks), stream.size) == (held, size)


def test_crypto_stream_holds_a_bounded_number_of_chunks():
    stream = quic.CryptoStream(None)
    for offset in range(0, 4 * quic.MAX_CRYPTO_CHUNKS, 2):
        stream.add(offset, b"x", limit=16384)
    assert len(stream.chunks) == stream.size == quic.MAX_CRYPTO_CHUNKS


def test_quic_initials_evict_the_oldest_connection():
    evicted = []
    table = quic.QuicInitials(max_connections=2, on_evict=lambda: evicted.append(1))
    for port in (1, 2, 3):
        table._new_stream(("c", port), None, 0.0)
    assert ([k[1] for k in table.streams], evicted) == ([2, 3], [1])


# RFC 9001 appendix A.1 (v1) and RFC 9369 appendix A.1 (v2), DCID 8394c8f03e515708: the sensor
# derives the Initial keys itself (aioquic's TLS module is too slow to import), so each step is
# held to the published vectors.
V1_INITIAL = "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44"
V1_CLIENT = "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"
V2_CLIENT = "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b"


@pytest.mark.parametrize(
    ("secret", "label", "length", "expected"),
    [
        (V1_INITIAL, b"client in", 32, V1_CLIENT),
        (V1_CLIENT, b"quic key", 16, "1f369613dd76d5467730efcbe3b1a22d"),
        (V1_CLIENT, b"quic iv", 12, "fa044b2f42a3fd3b46fb255c"),
        (V1_CLIENT, b"quic hp", 16, "9f50449e04a0e810283a1e9933adedd2"),
        (V2_CLIENT, b"quicv2 key", 16, "8b1a0bc121284290a29e0971b5cd045d"),
        (V2_CLIENT, b"quicv2 iv", 12, "91f73e2351d8fa91660e909f"),
        (V2_CLIENT, b"quicv2 hp", 16, "45b95e15235d6f45a6b19cbcb0294ba9"),
    ],
    ids=["v1-client-secret", "v1-key", "v1-iv", "v1-hp", "v2-key", "v2-iv", "v2-hp"],
)
def test_hkdf_expand_label_gives_the_rfc_vectors(secret, label, length, expected):
    assert quic.hkdf_expand_label(bytes.fromhex(secret), label, length).hex() == expected


@pytest.mark.parametrize(
    ("version", "packet_dcid", "key_dcid", "reads"),
    [
        (quic.VERSION_1, DCID, DCID, True),
        (quic.VERSION_2, DCID, DCID, True),
        (DRAFT_29, DCID, DCID, True),
        (quic.VERSION_1, DCID, bytes(8), False),  # another connection's keys
        (quic.VERSION_1, DCID, None, False),  # v1 packet, keys of v2 (other salt and labels)
    ],
    ids=["v1", "v2", "draft-29", "wrong-dcid", "wrong-version"],
)
def test_initial_keys_open_packets_aioquic_protected(version, packet_dcid, key_dcid, reads):
    """Packets protected by aioquic's own key schedule (tests/capture_helpers.py) open with ours."""
    frames = crypto_frames([(0, client_hello("www.youtube.com"))])
    packet = quic_initial(version, packet_dcid, frames)
    keys = (quic.client_initial_context(version, key_dcid) if key_dcid is not None
            else quic.client_initial_context(quic.VERSION_2, packet_dcid))
    assert keys is not None
    pn_offset = len(packet) - (1162 + 16) - 4  # header ends with the 4-byte packet number
    if reads:
        header, payload = keys.decrypt_packet(packet, pn_offset)
        assert (len(header), payload[:len(frames)]) == (pn_offset + 4, frames)
    else:
        with pytest.raises(ValueError):
            keys.decrypt_packet(packet, pn_offset)
