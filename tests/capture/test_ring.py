"""The TPACKET_V3 receive ring: its request, the VLAN tag put back, and, in a network namespace
made by the test, frames sent through a veth pair arriving through the ring, kernel drops counted
when the ring is full, and a link flap recovered from."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from monitor.capture.packets import LINKTYPE_ETHERNET
from monitor.capture.ring import (
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    RingSize,
    link_type_of,
    with_vlan_tag,
)
from tests.conftest import REPO

STATS = re.compile(r"(\d+) packets, (\d+) kernel drops")
FRAME = bytes.fromhex("ffffffffffff" "001122334455" "0800") + b"payload"


@pytest.mark.parametrize(
    ("size", "fields"),
    [
        (RingSize(), (1 << 20, 64, 2048, 32768, 20, 0, 0)),
        (RingSize(block_bytes=4096, blocks=2, retire_ms=1), (4096, 2, 2048, 4, 1, 0, 0)),
        (RingSize(block_bytes=1 << 22, blocks=8, frame_bytes=4096), (1 << 22, 8, 4096, 8192, 20, 0, 0)),
    ],
    ids=["default", "tiny", "large-blocks"],
)
def test_ring_request_is_a_tpacket_req3(size, fields):
    assert struct.unpack("IIIIIII", size.request()) == fields


@pytest.mark.parametrize(("megabytes", "blocks"), [(64, 64), (128, 128), (1, 2), (0, 2)],
                         ids=["default", "larger", "at-least-two-blocks", "zero-is-two-blocks"])
def test_ring_of_megabytes_is_that_many_one_mib_blocks(megabytes, blocks):
    size = RingSize.of_megabytes(megabytes)
    assert (size.blocks, size.block_bytes) == (blocks, 1 << 20)


@pytest.mark.parametrize(
    ("status", "tci", "tpid", "expected"),
    [
        (0, 0, 0, FRAME),
        (TP_STATUS_VLAN_VALID, 77, 0, FRAME[:12] + b"\x81\x00\x00\x4d" + FRAME[12:]),
        (TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID, 5, 0x88A8,
         FRAME[:12] + b"\x88\xa8\x00\x05" + FRAME[12:]),
        (0, 12, 0, FRAME[:12] + b"\x81\x00\x00\x0c" + FRAME[12:]),  # a tag with no status bit still counts
    ],
    ids=["untagged", "802.1q", "802.1ad-tpid-given", "tci-without-status"],
)
def test_the_stripped_vlan_tag_is_put_back(status, tci, tpid, expected):
    assert with_vlan_tag(FRAME, status, tci, tpid) == expected


@pytest.mark.parametrize(("name", "linktype"),
                         [("lo", LINKTYPE_ETHERNET), ("smNoSuchIf0", LINKTYPE_ETHERNET)],
                         ids=["loopback", "missing"])
def test_link_type_of(name, linktype):
    assert link_type_of(name) == linktype


# --- in a network namespace ----------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=30, capture_output=True)


@pytest.fixture
def netns():
    """A namespace holding one end of a veth pair (captured on); the other end stays here (sent on)."""
    tag = uuid.uuid4().hex[:6]
    ns, outside, inside = f"smring{tag}", f"smRo{tag}", f"smRi{tag}"
    ip("netns", "add", ns)
    try:
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", ns)
        ip("link", "set", outside, "up")
        ip("netns", "exec", ns, "ip", "link", "set", inside, "up")
        yield ns, outside, inside
    finally:
        subprocess.run(["ip", "link", "del", outside], check=False, capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=30)


def dns_frame(name: str) -> bytes:
    return bytes(Ether(src="00:11:22:33:44:66") / IP(src="10.7.0.9", dst="10.7.0.1")
                 / UDP(sport=5555, dport=53) / DNS(rd=1, qd=DNSQR(qname=name)))


def send(interface: str, frames: list[bytes]) -> None:
    import socket

    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out:
        out.bind((interface, 0))
        for frame in frames:
            out.send(frame)


def in_netns(ns: str, *argv: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, *argv], env=env, cwd=REPO,
                            text=True, **kwargs)


def wait_for(path: Path, text: str, timeout: float, count: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while path.read_text().count(text) < count:
        assert time.monotonic() < deadline, f"timed out waiting for {text!r}: {path.read_text()[-400:]}"
        time.sleep(0.05)


@pytest.fixture
def sense(netns, tmp_path):
    """`social-monitor sense` on the namespace's end: (its stderr file, its stdout file, the pair)."""
    ns, _outside, inside = netns
    err, out = tmp_path / "sense.err", tmp_path / "sense.out"
    with open(err, "w") as e, open(out, "w") as o:
        proc = in_netns(ns, "-m", "monitor", "sense", "-i", inside, "--stats-interval", "0.2",
                        stdout=o, stderr=e)
    try:
        wait_for(err, "capturing on", 60)
        yield err, out, netns
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.integration
@pytest.mark.netns
@needs_root
def test_frames_sent_through_veth_arrive_through_the_ring(sense):
    err, out, (_ns, outside, _inside) = sense
    assert "read by ring" in err.read_text()
    names = [f"n{i}.instagram.com" for i in range(200)]
    send(outside, [dns_frame(n) for n in names])
    wait_for(out, names[-1], 10)
    time.sleep(0.5)  # a stats line after the last frame
    seen = {json.loads(line).get("dns.question.name") for line in out.read_text().splitlines()} - {None}
    assert seen == set(names)
    wait_for(err, "kernel drops", 10)
    packets, drops = map(int, STATS.findall(err.read_text())[-1])
    assert packets >= 200 and drops == 0  # (the link's own IPv6 chatter passes the pre-filter too)


@pytest.mark.integration
@pytest.mark.netns
@needs_root
def test_a_link_flap_is_recovered_from_on_the_ring(sense):
    err, out, (ns, outside, inside) = sense
    send(outside, [dns_frame("before.tiktok.com")])
    wait_for(out, "before.tiktok.com", 10)
    ip("netns", "exec", ns, "ip", "link", "set", inside, "down")
    wait_for(err, "not capturing (link_down", 10)
    ip("netns", "exec", ns, "ip", "link", "set", inside, "up")
    wait_for(err, f"{inside} capturing", 15, count=2)
    send(outside, [dns_frame("after.tiktok.com")])
    wait_for(out, "after.tiktok.com", 10)


FULL_RING = """
import json, sys, time
from monitor.capture.ring import RingInterface, RingSize
from monitor.capture.sensor import Sensor
from monitor.capture.triage import Triage
ring = RingInterface(sys.argv[1], "udp port 53", size=RingSize(block_bytes=4096, blocks=2, retire_ms=1))
sensor = Sensor(lambda obs: None)
print("open", flush=True)
sys.stdin.readline()  # sent: nothing was read meanwhile, so the two blocks filled up
time.sleep(0.2)
received, dropped = ring.statistics()
handed = ring.drain(Triage(sensor), 10_000)
print(json.dumps({"received": received, "dropped": dropped, "freezes": ring.freezes, "fed": sensor.packets,
                  "handed": handed}))
ring.close()
"""


@pytest.mark.integration
@pytest.mark.netns
@needs_root
def test_frames_that_find_the_ring_full_are_counted_as_kernel_drops(netns):
    ns, outside, inside = netns
    proc = in_netns(ns, "-c", FULL_RING, inside, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "open"
        send(outside, [dns_frame(f"n{i}.youtube.com") for i in range(300)])
        proc.stdin.write("sent\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait(timeout=20)
    assert result["received"] == 300
    assert result["dropped"] > 0 and result["freezes"] > 0
    assert result["fed"] + result["dropped"] == result["received"]  # each frame read or counted
    assert result["handed"] == result["fed"]


SAME_THROUGH_THE_RING = """
import json, sys, time
from monitor.capture.ring import RingInterface
from monitor.capture.sensor import Sensor
from monitor.capture.triage import TP_STATUS_VLAN_VALID, TPACKET3_HDR, Triage
ring = RingInterface(sys.argv[1], None, promisc=True)
expected = int(sys.argv[2])
every, triaged = [], []
full, fast = Sensor(every.append), Sensor(triaged.append)
triage = Triage(fast)


class Both:  # each block to the triage, which reads its frames in place, and each frame copied to `feed`

    def block(self, ring, at, count, linktype, retag):
        first = at
        for _ in range(count):
            next_offset, sec, nsec, snaplen, _len, status, mac, _net, _hash, tci, tpid = \
                TPACKET3_HDR.unpack_from(ring, at)
            frame = ring[at + mac:at + mac + snaplen]
            if status & TP_STATUS_VLAN_VALID or tci:
                frame = retag(frame, status, tci, tpid)
            full.feed(sec + nsec * 1e-9, linktype, frame)
            at += next_offset
        triage.block(ring, first, count, linktype, retag)


print("open", flush=True)
deadline = time.monotonic() + 60
while full.packets < expected and time.monotonic() < deadline:
    ring.drain(Both(), 100_000)
    time.sleep(0.01)
full.close()
fast.close()
rows = lambda out: [repr(o) for o in out]
print(json.dumps({"packets": [full.packets, fast.packets], "every": rows(every), "triaged": rows(triaged),
                  "errors": [full.error_counts, fast.error_counts]}))
ring.close()
"""

RING_CAPTURES = ["instagram.pcap", "quic.pcap", "dns.pcap", "facebook.pcap", "bypass/openvpn.pcap"]


@pytest.mark.integration
@pytest.mark.netns
@needs_root
def test_frames_triaged_in_the_ring_give_what_feeding_every_frame_gives(netns):
    """Real captures sent through a veth pair: the triage reading each frame in place in the kernel's
    blocks gives the same observations, errors and packet count as `feed` given every frame."""
    from monitor.capture.sources import read_frames

    ns, outside, inside = netns
    ip("link", "set", outside, "mtu", "65000")
    ip("netns", "exec", ns, "ip", "link", "set", inside, "mtu", "65000")
    shared = REPO.parent / "shared" / "pcaps"
    frames = [frame for name in RING_CAPTURES for _ts, linktype, frame in read_frames(shared / name)
              if linktype == LINKTYPE_ETHERNET]
    proc = in_netns(ns, "-c", SAME_THROUGH_THE_RING, inside, str(len(frames)), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "open"
        send(outside, frames)
        result = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait(timeout=20)
    assert result["packets"][0] >= len(frames)
    assert result["packets"][1] == result["packets"][0]
    assert result["errors"][1] == result["errors"][0]
    assert len(result["every"]) > 20  # names found: the comparison is not between two empty lists
    assert result["triaged"] == result["every"]
