"""A server's certificate after a hello with no name: real DER certificates (built with
`cryptography`) in TLS 1.2 records, fed to the sensor as scapy frames, and the shared Psiphon
capture; ordinary traffic (a hello with a name, TLS 1.3, unrelated certificates) is never marked."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitor.capture import bypass, server_cert
from monitor.capture.sensor import Sensor
from monitor.capture.sources import read_frames
from tests.capture_helpers import client_hello, observe, tcp_frame, tls_records

PSIPHON = Path(__file__).resolve().parents[3] / "shared" / "pcaps" / "bypass" / "psiphon3.pcap"
KEY = ec.generate_private_key(ec.SECP256R1())


def der_cert(names: list[str], *, critical: bool = False, san: bool = True) -> bytes:
    """A self-signed leaf certificate listing `names` as dNSNames."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "x")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(KEY.public_key()).serial_number(7).not_valid_before(now)
               .not_valid_after(now + datetime.timedelta(days=90)))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                                        critical=critical)
    return builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def server_hello(version: bytes = b"\x03\x03") -> bytes:
    body = version + bytes(32) + b"\x00" + b"\xc0\x2b" + b"\x00" + b"\x00\x00"
    return b"\x02" + len(body).to_bytes(3, "big") + body


def certificate(*certs: bytes) -> bytes:
    chain = b"".join(len(c).to_bytes(3, "big") + c for c in certs)
    body = len(chain).to_bytes(3, "big") + chain
    return b"\x0b" + len(body).to_bytes(3, "big") + body


def server_flight(names: list[str], **kw) -> bytes:
    """ServerHello and Certificate (leaf plus a second certificate), as TLS 1.2 sends them."""
    chain = certificate(der_cert(names, **kw), der_cert(["ca.example"]))
    return tls_records(server_hello()) + tls_records(chain)


CATALOG = bypass.default_catalog()


@pytest.mark.parametrize(("data", "names"), [
    (server_flight(["sni.cloudflaressl.com", "psiphon3.net", "*.psiphon3.net"]),
     ["sni.cloudflaressl.com", "psiphon3.net", "*.psiphon3.net"]),
    (server_flight(["PSIPHON3.NET"], critical=True), ["psiphon3.net"]),
    (tls_records(server_hello() + certificate(der_cert(["a.example"]))), ["a.example"]),  # one record
    (server_flight(["a.example"], san=False), []),  # no subjectAltName
    (server_flight(["psiphon3.net"])[:300], []),  # the leaf does not end in this segment
    (tls_records(certificate(der_cert(["psiphon3.net"]))), []),  # no ServerHello first
    (tls_records(server_hello(b"\x03\x04")) + b"\x14\x03\x03\x00\x01\x01"
     + b"\x17\x03\x03\x00\x20" + bytes(32), []),  # TLS 1.3: the certificate is encrypted
    (b"\x16\x03\x03\xff\xff" + b"\x02\xff\xff\xff", []),  # lengths past the end
    (b"", []),
])
def test_certificate_names(data, names):
    assert server_cert.certificate_names(data) == names


@pytest.mark.parametrize(("cert", "names"), [
    (b"\x06\x03\x55\x1d\x11\x04\x84\xff\xff\xff\xff", []),  # a DER length of four bytes: refused
    (b"\x06\x03\x55\x1d\x11\x04\x05\x30\x03\x82\x09ab", []),  # a name running past the end
    (b"\x06\x03\x55\x1d\x11\x04\x06\x30\x04\x81\x02ab", []),  # rfc822Name, not a dNSName
    (b"\x06\x03\x55\x1d\x11\x04\x06\x30\x04\x82\x02ab", ["ab"]),
])
def test_san_dns_names_on_hostile_bytes(cert, names):
    assert server_cert.san_dns_names(cert) == names


@pytest.mark.parametrize(("names", "kind"), [
    (["psiphon3.net"], "vpn"),
    (["*.psiphon3.net"], "vpn"),
    (["x.psiphon3.net"], "vpn"),
    (["cloudflare-dns.com", "one.one.one.one"], "encrypted-dns"),
    (["sni.cloudflaressl.com", "shop.example", "psiphon3.net.example"], None),  # a lookalike
    (["www.example.org"], None),
])
def test_certificate_kind(names, kind):
    assert server_cert.certificate_kind(server_flight(names), CATALOG) == kind


def flow(sni: str | None, names: list[str], sport: int = 40557) -> list[bytes]:
    return [tcp_frame(tls_records(client_hello(sni)), sport=sport),
            tcp_frame(server_flight(names), sport=sport, reverse=True)]


@pytest.mark.parametrize(("frames", "marks"), [
    (flow(None, ["sni.cloudflaressl.com", "psiphon3.net"]), ["vpn"]),  # fronting with no name
    (flow("news.example", ["news.example", "psiphon3.net"]), []),  # a name: the certificate is not read
    (flow(None, ["news.example"]), []),  # no name, an ordinary certificate
    (flow(None, ["psiphon3.net"])[1:], []),  # no hello seen for the flow
    (flow(None, ["psiphon3.net"])[:1] + flow(None, ["psiphon3.net"], sport=40558)[1:], []),  # another flow
])
def test_the_sensor_reads_the_certificate_only_after_a_nameless_hello(frames, marks):
    assert [o.obscured_by for o in observe(frames) if o.obscured_by] == marks


def test_the_mark_is_oriented_from_the_client():
    [obs] = [o for o in observe(flow(None, ["psiphon3.net"])) if o.obscured_by]
    assert (obs.client_ip, obs.client_port, obs.server_port) == ("192.168.1.10", 40557, 443)
    assert obs.protocol == "tls"


def test_nameless_hellos_are_bounded():
    pending = server_cert.NamelessHellos()
    for port in range(server_cert.MAX_PENDING + 10):
        pending.note((6, b"\x0a\0\0\1", b"\x0a\0\0\2", port, 443))
    assert len(pending) <= server_cert.MAX_PENDING


@pytest.mark.skipif(not PSIPHON.exists(), reason="shared captures not present")
def test_the_psiphon_capture_is_marked_vpn():
    out: list = []
    sensor = Sensor(out.append)
    for ts, linktype, frame in read_frames(PSIPHON):
        sensor.feed(ts, linktype, frame)
    marked = [(o.client_ip, o.client_port, o.server_ip, o.server_port) for o in out if o.obscured_by == "vpn"]
    assert marked == [("192.168.0.103", 40557, "104.18.151.190", 443)]
