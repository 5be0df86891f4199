"""Traffic that hides its destination: byte fixtures per kind (built with scapy), the shared bypass
captures end to end through `classify`, no mark on the ordinary captures, and a live replay through
the kernel filter into a network namespace."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from scapy.contrib.ikev2 import IKEv2, IKEv2_SA
from scapy.contrib.wireguard import (
    Wireguard,
    WireguardInitiation,
    WireguardResponse,
    WireguardTransport,
)
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.ipsec import ESP
from scapy.layers.isakmp import ISAKMP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from monitor import cli
from monitor.capture import bypass
from monitor.capture.sensor import Sensor
from tests.capture_helpers import (
    CLIENT4,
    SERVER4,
    client_hello,
    crypto_frames,
    observe,
    quic_initial,
    tcp_frame,
    tls_records,
    udp_frame,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "pcaps"
BYPASS = SHARED / "bypass"
SID = bytes.fromhex("334857703d96db39")  # an OpenVPN session id
SID2 = bytes.fromhex("d31c3a6964602fa0")


def wg(layer) -> bytes:
    return bytes(Wireguard() / layer)


def ovpn_client_reset(auth: int = 0, opcode: int = 7) -> bytes:
    return bytes([opcode << 3]) + SID + bytes(range(auth)) + b"\0" + b"\0\0\0\0"


def ovpn_server_reset(auth: int = 0) -> bytes:
    return bytes([8 << 3]) + SID2 + bytes(range(auth)) + b"\x01" + b"\0\0\0\0" + SID + b"\0\0\0\0"


def ike_v2() -> bytes:
    return bytes(IKEv2(init_SPI=b"\x12" * 8, exch_type=34, flags="Initiator") / IKEv2_SA())


def esp_frame() -> bytes:
    return bytes(Ether(src="00:11:22:33:44:55") / IP(src=CLIENT4, dst=SERVER4)
                 / ESP(spi=0x1234, seq=1, data=bytes(48)))


def pack(name: bytes, count: int = 3) -> bytes:
    """SoftEther's UDP Pack: element count, the first name's length (+1), the name, its type."""
    return count.to_bytes(4) + (len(name) + 1).to_bytes(4) + name + (2).to_bytes(4) + bytes(24)


def tls(sni: str | None, port: int = 443, **kw) -> bytes:
    return tcp_frame(tls_records(client_hello(sni, **kw)), dport=port)


def quic(sni: str | None, port: int = 443, **kw) -> bytes:
    hello = client_hello(sni, **kw)
    return udp_frame(quic_initial(1, b"\x83\x94\xc8\xf0\x3e\x51\x57\x08", crypto_frames([(0, hello)])),
                     dport=port)


MARKED = [  # (id, frames, protocol, obscured_by, hostname)
    ("wireguard-initiation", [udp_frame(wg(WireguardInitiation(sender_index=5)), dport=51820)],
     "wireguard", "vpn", ""),
    ("wireguard-response", [udp_frame(wg(WireguardResponse(sender_index=5, receiver_index=6)), sport=51820,
                                      dport=40000)], "wireguard", "vpn", ""),
    ("wireguard-data-odd-port", [udp_frame(wg(WireguardTransport(receiver_index=6, counter=9,
                                                                 encrypted_encapsulated_packet=bytes(48))),
                                           dport=12345)], "wireguard", "vpn", ""),
    ("openvpn-udp-reset", [udp_frame(ovpn_client_reset(), dport=1194)], "openvpn", "vpn", ""),
    ("openvpn-udp-reset-v3", [udp_frame(ovpn_client_reset(opcode=10), dport=1194)], "openvpn", "vpn", ""),
    ("openvpn-tls-auth-sha1", [udp_frame(ovpn_client_reset(28), dport=443)], "openvpn", "vpn", ""),
    ("openvpn-tls-auth-sha512", [udp_frame(ovpn_client_reset(72), dport=1234)], "openvpn", "vpn", ""),
    ("openvpn-tls-crypt", [udp_frame(b"\x38" + SID + b"\0\0\0\1" + bytes(41), dport=1194)], "openvpn", "vpn",
     ""),
    ("openvpn-server-reset", [udp_frame(ovpn_server_reset(), sport=1194, dport=40000)], "openvpn", "vpn", ""),
    ("openvpn-tcp", [tcp_frame((14).to_bytes(2) + ovpn_client_reset(), dport=443)], "openvpn",
     "vpn", ""),
    ("openvpn-tcp-server", [tcp_frame((26).to_bytes(2) + ovpn_server_reset(), reverse=True, dport=1194)],
     "openvpn", "vpn", ""),
    ("ikev2-500", [udp_frame(ike_v2(), sport=500, dport=500)], "ipsec", "vpn", ""),
    ("ikev1-500", [udp_frame(bytes(ISAKMP(init_cookie=b"\x34" * 8, exch_type=2)), sport=500, dport=500)],
     "ipsec", "vpn", ""),
    ("ike-nat-t-4500", [udp_frame(b"\0\0\0\0" + ike_v2(), sport=4500, dport=4500)], "ipsec", "vpn", ""),
    ("esp-in-udp", [udp_frame(bytes(ESP(spi=0x1234, seq=7, data=bytes(32))), dport=4500)], "ipsec", "vpn",
     ""),
    ("esp-ip-proto-50", [esp_frame()], "ipsec", "vpn", ""),
    ("softether-pack", [udp_frame(pack(b"host_name"), dport=5004)], "softether", "vpn", ""),
    ("softether-ip-port", [udp_frame(b"IP=192.0.2.7,PORT=51381", dport=5004)], "softether", "vpn", ""),
    ("dot-no-sni", [tls(None, 853)], "tls", "encrypted-dns", ""),
    ("dot-alpn", [tls("resolver.example", 4443, alpn=("dot",))], "tls", "encrypted-dns", "resolver.example"),
    ("doh-by-name", [tls("mozilla.cloudflare-dns.com", alpn=("h2",))], "tls", "encrypted-dns",
     "mozilla.cloudflare-dns.com"),
    ("doq-alpn", [quic(None, 8853, alpn=("doq",))], "quic", "encrypted-dns", ""),
    ("doq-port", [quic("dns.example", 853)], "quic", "encrypted-dns", "dns.example"),
    ("private-relay-quic", [quic("mask.icloud.com")], "quic", "vpn", "mask.icloud.com"),
    ("private-relay-tls", [tls("mask-h2.icloud.com")], "tls", "vpn", "mask-h2.icloud.com"),
    ("softether-ddns-http", [tcp_frame(b"POST /ddns/ddns.aspx HTTP/1.1\r\n"
                                       b"Host: x.ddns.softether-network.net\r\n\r\n", dport=80)],
     "http", "vpn", "x.ddns.softether-network.net"),
    ("tor", [tls("www.q4cyamnc6mtokjurvdclt.com")], "tls", "tor", "www.q4cyamnc6mtokjurvdclt.com"),
    ("ech", [tls("cloudflare-ech.com", ech=True)], "tls", "ech", "cloudflare-ech.com"),
]


@pytest.mark.parametrize(("frames", "protocol", "kind", "hostname"), [r[1:] for r in MARKED],
                         ids=[r[0] for r in MARKED])
def test_each_kind_is_marked(frames, protocol, kind, hostname):
    seen = observe(frames)
    assert [(o.protocol, o.obscured_by, o.obscured, o.hostname) for o in seen] == [
        (protocol, kind, True, hostname)]


UNMARKED = [  # frames that look a little like the above, and are not
    ("tls-ordinary", [tls("www.instagram.com")]),
    ("quic-ordinary", [quic("www.youtube.com")]),
    ("tls-plain-word-www", [tls("www.strengths.com")]),  # a www.<base32>.com name made of words
    ("tls-no-sni-443", [tls(None)]),
    ("wireguard-wrong-size", [udp_frame(wg(WireguardInitiation(sender_index=5))[:140], dport=51820)]),
    ("wireguard-zero-index", [udp_frame(b"\x04" + bytes(47), dport=51820)]),
    ("openvpn-wrong-length", [udp_frame(ovpn_client_reset() + b"\0", dport=1194)]),
    ("openvpn-nonzero-tail", [udp_frame(ovpn_client_reset()[:-1] + b"\x05", dport=1194)]),
    ("quic-short-header-0x40", [udp_frame(b"\x40" + bytes(range(60)), dport=443)]),
    ("stun", [udp_frame(bytes.fromhex("000100002112a442") + bytes(12), dport=3478)]),
    ("ike-length-wrong", [udp_frame(ike_v2() + b"\0", sport=500, dport=500)]),
    ("ike-shape-off-port", [udp_frame(ike_v2(), sport=40000, dport=40001)]),
    ("tcp-length-prefixed-other", [tcp_frame((16).to_bytes(2) + b"\x39" + bytes(15), dport=9000)]),
    ("dns-question-for-a-resolver", [udp_frame(bytes(DNS(rd=1, qd=DNSQR(qname="dns.google"))), dport=53)]),
]


@pytest.mark.parametrize("frames", [r[1] for r in UNMARKED], ids=[r[0] for r in UNMARKED])
def test_lookalikes_are_not_marked(frames):
    assert [o for o in observe(frames) if o.obscured_by] == []


def test_a_tor_shaped_name_the_client_looked_up_is_not_tor():
    name = "www.web2shop.com"
    answer = udp_frame(bytes(DNS(qr=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata=SERVER4))),
                       sport=53, dport=50001)
    seen = observe([answer, tls(name)])
    assert [(o.protocol, o.obscured_by) for o in seen] == [("dns", None), ("tls", None)]


def test_both_directions_of_a_tunnel_are_one_observation():
    def data(index: int) -> bytes:
        return wg(WireguardTransport(receiver_index=index, counter=1,
                                     encrypted_encapsulated_packet=bytes(16)))

    out = udp_frame(data(6), sport=40000, dport=51820)
    back = bytes(Ether() / IP(src=SERVER4, dst=CLIENT4) / UDP(sport=51820, dport=40000) / Raw(data(7)))
    seen = observe([back, out, back])
    assert [(o.client_ip, o.client_port, o.server_ip, o.server_port) for o in seen] == [
        (CLIENT4, 40000, SERVER4, 51820)]


@pytest.mark.parametrize(
    ("name", "tor"),
    [("www.ct7ctrgb6cr7.com", True), ("www.gfu7hbxpfp.com", True), ("www.t3i3ru.net", True),
     ("www.gfxqhbpfp.com", True),  # no digit, but six consonants in a row
     ("www.strengths.com", False),  # five, from a word
     ("www.google.com", False), ("www.bbc.com", False), ("www.web0.com", False),  # 0 is not base32
     ("www.example.org", False), ("mail.ct7ctrgb6cr7.com", False), ("www.abc.com", False)],
)
def test_tor_shaped(name, tor):
    assert bypass.tor_shaped(name) is tor


@pytest.mark.parametrize(
    ("src", "sport", "dst", "dport", "client"),
    [("198.51.100.1", 51820, "192.168.0.14", 36116, False),  # the server's port says
     ("192.168.0.14", 36116, "198.51.100.1", 51820, True),
     ("198.51.100.1", 1234, "192.168.12.156", 37383, False),  # no server port: the private end
     ("10.9.0.1", 43462, "10.9.0.2", 43000, True),  # both private: the higher port
     ("10.9.0.1", 0, "10.9.0.2", 0, True)],  # ESP: the lower address
)
def test_sender_is_client(src, sport, dst, dport, client):
    import socket

    assert bypass.sender_is_client(socket.inet_aton(src), sport, socket.inet_aton(dst), dport) is client


@pytest.mark.parametrize(
    ("name", "kind"),
    [("dns.google", "encrypted-dns"), ("mozilla.cloudflare-dns.com", "encrypted-dns"),
     ("mask.icloud.com", "vpn"), ("eu0.sec-tunnel.com", "vpn"), ("icloud.com", None),
     ("google.com", None), ("notcloudflare-dns.com", None), ("", None)],
)
def test_catalog_kind_of(name, kind):
    assert bypass.default_catalog().kind_of(name) == kind


def test_the_catalog_can_be_extended_without_changing_the_default():
    extended = bypass.default_catalog().extended({"vpn": ["VPN.Example.NET."], "encrypted-dns": ["doh.lan"]})
    assert (extended.kind_of("a.vpn.example.net"), extended.kind_of("doh.lan")) == ("vpn", "encrypted-dns")
    assert bypass.default_catalog().kind_of("a.vpn.example.net") is None


@pytest.mark.parametrize(
    ("text", "error"),
    [("proxies: [a.example]", "top-level keys"), ("vpn: [a.example, A.example.]", "listed twice"),
     ("- a.example", "top-level keys")],
)
def test_load_catalog_refuses_bad_data(text, error):
    with pytest.raises(ValueError, match=error):
        bypass.load_catalog(text)


def test_the_catalog_names_its_sources():
    text = (Path(bypass.__file__).parents[1] / "data" / "bypass.yaml").read_text()
    for source in ("github.com/curl/curl/wiki/DNS-over-HTTPS", "dnscrypt-resolvers", "mask.icloud.com"):
        assert source in text


# --- the shared captures, end to end through `classify` ------------------------------------------


def classify(pcap: Path) -> list[dict]:
    """`social-monitor classify --format jsonl PCAP`, in this process (the CLI's own entry point)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["classify", "--format", "jsonl", str(pcap)]) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.integration
@pytest.mark.skipif(not (BYPASS / "wireguard.pcap").exists(), reason="shared captures not present")
def test_the_classify_command_prints_obscured_by():
    proc = subprocess.run([sys.executable, "-m", "monitor", "classify", "--format", "jsonl",
                           str(BYPASS / "wireguard.pcap")],
                          capture_output=True, text=True, timeout=300, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {(r["network.protocol"], r["social.obscured_by"]) for r in rows} == {("wireguard", "vpn")}
    first = [r for r in rows if not r.get("social.continuation")]
    assert len(first) == 2  # two flows, one observation each (and continuations while they live)


def ends(row: dict) -> frozenset:
    return frozenset({(row["source.ip"], row["source.port"]),
                      (row["destination.ip"], row["destination.port"])})


needs_shared = pytest.mark.skipif(not BYPASS.is_dir(), reason="shared captures not present")
EXPECTED = [json.loads(line) for line in (BYPASS / "expected-bypass.jsonl").read_text().splitlines()] \
    if BYPASS.is_dir() else []
ACCEPT = {"vpn": {"vpn", "tor"}, "tor": {"tor", "vpn"}, "encrypted-dns": {"encrypted-dns"}, "ech": {"ech"}}


@needs_shared
def test_the_shared_bypass_captures_are_marked_with_the_right_kind():
    found = total = 0
    for pcap in sorted({row["pcap"] for row in EXPECTED}):
        marks: dict[frozenset, set] = {}
        for row in classify(BYPASS / pcap):
            if row.get("social.obscured_by"):
                marks.setdefault(ends(row), set()).add(row["social.obscured_by"])
        for want in (r for r in EXPECTED if r["pcap"] == pcap):
            total += 1
            key = frozenset({tuple(want["a"]), tuple(want["b"])})
            hit = bool(marks.get(key, set()) & ACCEPT[want["kind"]])
            found += hit
            assert hit, (pcap, want)  # Psiphon too: its server's certificate (server_cert.py)
    assert total == found == 48


@needs_shared
@pytest.mark.parametrize("pcap", sorted(p.name for p in SHARED.glob("*.pcap*")) if SHARED.is_dir() else [])
def test_no_ordinary_capture_is_marked(pcap):
    assert [r for r in classify(SHARED / pcap) if r.get("social.obscured_by")] == []


# --- live: the kernel filter lets ESP and WireGuard through ---------------------------------------


@pytest.fixture
def netns_veth():
    """A veth pair: one end captured on here, the other in a namespace tcpreplay writes to."""
    tag = uuid.uuid4().hex[:6]
    ns, a, b = f"smns{tag}", f"smC{tag}", f"smR{tag}"
    run = lambda *args: subprocess.run(args, check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        run("ip", "link", "set", b, "netns", ns)
        run("ip", "link", "set", a, "up")
        run("ip", "netns", "exec", ns, "ip", "link", "set", b, "up")
        yield ns, a, b
    finally:
        subprocess.run(["ip", "link", "del", a], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@pytest.mark.integration
@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpreplay")
                    or not BYPASS.is_dir(), reason="needs root, iproute2, tcpreplay and the shared captures")
def test_esp_and_wireguard_reach_the_sensor_through_the_kernel_filter(netns_veth, tmp_path):
    from monitor.capture.live import LiveCapture

    ns, capture_on, replay_on = netns_veth
    esp = tmp_path / "esp.pcap"  # the shared IPsec capture has ESP in UDP only: ESP itself from scapy
    wrpcap(str(esp), [Ether(esp_frame())])
    seen = []
    capture = LiveCapture(Sensor(seen.append), [capture_on], stats_interval=0.2)  # with the kernel filter
    capture.start()
    try:
        time.sleep(0.5)
        for pcap in (BYPASS / "wireguard.pcap", BYPASS / "ipsec_isakmp_esp.pcap", esp):
            subprocess.run(["ip", "netns", "exec", ns, "tcpreplay", "-q", "--topspeed", "-i", replay_on,
                            str(pcap)], check=True, capture_output=True, timeout=120)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not {"wireguard", "ipsec"} <= {o.protocol for o in seen}:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        capture.stop()
    assert capture.error is None
    marked = {(o.transport, o.protocol) for o in seen if o.obscured_by == "vpn"}
    assert {("udp", "wireguard"), ("udp", "ipsec"), ("esp", "ipsec")} <= marked
