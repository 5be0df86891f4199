"""`social-monitor classify`: JSON lines out, one-line errors for files that are not captures;
`social-monitor sense`: which interfaces it captures, said once per change."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from scapy.utils import wrpcap

from monitor.cli import main
from tests.capture_helpers import client_hello, tcp_frame, tls_records
from tests.conftest import REPO
from tests.pcapgen import dns_query_frame, write_pcapng

SHARED_PCAPS = Path(__file__).resolve().parents[2].parent / "shared" / "pcaps"


@pytest.fixture
def capture(tmp_path) -> Path:
    path = tmp_path / "hello.pcap"
    wrpcap(str(path), [tcp_frame(tls_records(client_hello("www.instagram.com")))])
    return path


def test_classify_jsonl(capture, capsys):
    assert main(["classify", str(capture)]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["tls.client.server_name"] == "www.instagram.com"
    assert row["network.protocol"] == "tls" and row["network.transport"] == "tcp"
    assert (row["social.platform"], row["destination.port"]) == ("instagram", 443)
    assert row["@timestamp"].endswith("Z")


def test_classify_table(capture, capsys):
    assert main(["classify", "--format", "table", str(capture)]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].startswith("TIME") and "www.instagram.com" in out[1]
    assert "instagram" in out[1].split() and captured.err == ""


def test_classify_with_config_tags_through_the_core(capture, capsys):
    config = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
    assert main(["classify", "--config", str(config), str(capture)]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["social.platform"] == "instagram"


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot open"),
    (b"this is not a capture", "not a pcap or pcapng capture"),
])
def test_classify_bad_file_is_one_line_naming_it(tmp_path, capsys, content, message):
    path = tmp_path / "x.pcap"
    if content is not None:
        path.write_bytes(content)
    assert main(["classify", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and message in err[0]


def test_truncated_capture_exits_zero_with_a_summary(capture, tmp_path, capsys):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(capture.read_bytes()[:-10])
    assert main(["classify", str(cut)]) == 0
    assert "truncated" in capsys.readouterr().err


@pytest.mark.parametrize(("tsresol", "units"), [(0x80, 1_700_000_000_000_000), (None, 0xFFFF_FFFF_FFFF_FFFF)],
                         ids=["resolution-0x80", "all-ones-timestamp"])
def test_a_file_with_times_out_of_range_is_skipped_and_the_next_read(capture, tmp_path, capsys, tsresol,
                                                                     units):
    bad = tmp_path / "a-bad.pcapng"
    write_pcapng(bad, [(units, dns_query_frame("10.0.0.5", "10.0.0.1", 40000, "www.tiktok.com"))], tsresol)
    assert main(["classify", str(bad), str(capture)]) == 0
    captured = capsys.readouterr()
    names = [json.loads(line)["tls.client.server_name"] for line in captured.out.splitlines()]
    assert names == ["www.instagram.com"]
    assert f"{bad}: 1 frames with a time out of range skipped" in captured.err


@pytest.mark.skipif(not SHARED_PCAPS.exists(), reason="shared captures not present")
def test_malformed_capture_reports_parse_errors(capsys):
    assert main(["classify", str(SHARED_PCAPS / "malformed_dns.pcap")]) == 0
    assert "parse errors" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs CAP_NET_RAW")
@pytest.mark.parametrize(
    ("interfaces", "said"),
    [
        (["lo"], ["lo capturing"]),
        (["lo", "smnosuch0"],
         ["lo capturing", "smnosuch0 not capturing (missing: no such interface), retrying"]),
        (["bad/name"], ["bad/name not capturing (invalid_name: not an interface name), retrying"]),
    ],
    ids=["present", "one-missing", "invalid"],
)
def test_sense_says_which_interfaces_it_captures_and_keeps_going(interfaces, said):
    """`sense -i lo -i typo` captures lo and says, once, that the other is missing (then SIGTERM: exit 0)."""
    args = [a for name in interfaces for a in ("-i", name)]
    process = subprocess.Popen([sys.executable, "-m", "monitor", "sense", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while not any("capturing on" in line for line in lines) and time.monotonic() < deadline:
            line = process.stderr.readline() if process.stderr else ""
            if not line:
                break
            lines.append(line)
        time.sleep(1.5)  # a few retries of a missing interface: still said once
    finally:
        process.send_signal(signal.SIGTERM)
        out = process.communicate(timeout=20)[1]
    lines += out.splitlines()
    states = [line.removeprefix("social-monitor sense: ").strip() for line in lines
              if line.rstrip().endswith((" capturing", ", retrying"))]
    assert states == said
    assert process.returncode == 0


@pytest.mark.parametrize(
    ("idle_gap", "rows", "last"),
    [(None, 21, 1200.0), (300, 21, 1200.0), (60, 41, 1200.0), (20, 121, 1200.0)],
    ids=["no-config", "default-gap", "one-minute-gap", "twenty-second-gap"],
)
def test_classify_continues_a_long_flow_until_the_file_ends(tmp_path, capsys, write_config, example_data,
                                                           idle_gap, rows, last):
    """A TLS connection with a server record every 10 s for 20 minutes: one observation, then a
    continuation at least every half idle gap (a minute at most), the last at the end of the file."""
    from tests.pcapgen import write_pcap

    t0 = 1_790_000_000.0
    frames = [(t0, tcp_frame(tls_records(client_hello("www.instagram.com"))))]
    reply = tcp_frame(b"\x17\x03\x03\x00\x01\x00", reverse=True)
    frames += [(t0 + t, reply) for t in range(10, 1201, 10)]
    path = tmp_path / "long.pcap"
    write_pcap(path, frames)
    args = ["classify", str(path)]
    if idle_gap is not None:
        example_data["store"]["idle_gap_seconds"] = idle_gap
        args[1:1] = ["--config", str(write_config(example_data))]
    assert main(args) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row.get("social.continuation", False) for row in out] == [False] + [True] * (rows - 1)
    assert {row["tls.client.server_name"] for row in out} == {"www.instagram.com"}
    times = [datetime.fromisoformat(row["@timestamp"].replace("Z", "+00:00")).timestamp() - t0 for row in out]
    assert times[-1] == last
    assert max(b - a for a, b in itertools.pairwise(times)) == min(60.0, (idle_gap or 300) / 2)


@pytest.mark.parametrize(("argv", "message"), [
    (["--identified", "--reason", "case 7"], "--identified names the devices and people the config's"),
    (["--config", "{config}", "--identified"], "--identified shows asset tags and staff ids and needs"),
])
def test_classify_identified_needs_a_config_and_a_reason(tmp_path, capsys, example_data, write_config,
                                                         argv, message):
    from tests.capture_helpers import inventory_hello

    example_data["store"]["path"] = str(tmp_path / "store.db")
    config = write_config(example_data)
    path = tmp_path / "laptop.pcap"
    wrpcap(str(path), [inventory_hello("3c:52:82:20:00:02", "10.20.10.41", "www.facebook.com")])
    argv = [str(config) if a == "{config}" else a for a in argv]
    assert main(["classify", *argv, str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err
    assert not (tmp_path / "store.db.exports.jsonl").exists()


@pytest.mark.parametrize(("extra", "field", "shown"), [
    ([], "host.id", "Device "),
    ([], "user.id", "Staff "),
    ([], "source.mac", None),
    (["--identified", "--reason", "case 7"], "host.id", "ASH-LT-0002"),
    (["--identified", "--reason", "case 7"], "user.id", "S2002"),
    (["--identified", "--reason", "case 7"], "source.mac", "3c:52:82:20:00:02"),
])
def test_classify_with_config_names_only_for_a_reason(tmp_path, capsys, example_data, write_config, extra,
                                                      field, shown):
    """The tagged rows of a capture name the inventory's device and owner only with --identified --reason,
    which is entered in the export log before the rows are printed; the rows of both runs agree."""
    from monitor.exports.log import read_log
    from tests.capture_helpers import inventory_hello

    example_data["store"]["path"] = str(tmp_path / "store.db")
    config = write_config(example_data)
    path = tmp_path / "laptop.pcap"
    wrpcap(str(path), [inventory_hello("3c:52:82:20:00:02", "10.20.10.41", "www.facebook.com")] * 2)
    assert main(["classify", "--config", str(config), *extra, str(path)]) == 0
    captured = capsys.readouterr()
    [row] = [json.loads(line) for line in captured.out.splitlines()]
    value = row.get(field)
    assert value == shown or (shown and value.startswith(shown) and value[len(shown):].isdigit())
    assert row["social.zone"] == "classrooms" and row["social.platform"] == "facebook"
    entries = read_log(tmp_path / "store.db.exports.jsonl").entries
    assert len(entries) == (1 if extra else 0)
    if extra:
        assert (entries[0].sessions, entries[0].extra["command"]) == (1, "classify")
        assert "logged as export 1" in captured.err


def test_classify_without_config_is_unchanged_by_naming(capture, capsys):
    """The scorers' command: no tagging, no inventory, so nothing to alias or log."""
    assert main(["classify", str(capture)]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "host.id" not in row and "user.id" not in row and row["source.mac"] == "00:11:22:33:44:55"


@pytest.mark.parametrize(("argv", "message"), [
    (["--identified", "--reason", "case 7"], "sense --identified names the devices and people the config's"),
    (["--config", "{config}", "--identified"], "sense --identified prints asset tags and staff ids as they"),
    (["--config", "{config}", "--identified", "--reason", "  "], "needs --reason TEXT"),
], ids=["no-config", "no-reason", "blank-reason"])
def test_sense_identified_is_refused_without_a_reason_before_capturing(tmp_path, capsys, example_data,
                                                                       write_config, argv, message):
    """Refused before any interface is opened (this runs without CAP_NET_RAW), nothing logged."""
    example_data["store"]["path"] = str(tmp_path / "store.db")
    config = write_config(example_data)
    argv = [str(config) if a == "{config}" else a for a in argv]
    assert main(["sense", "-i", "lo", *argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err
    assert not (tmp_path / "store.db.exports.jsonl").exists()


def _dns_query(name: str) -> bytes:
    from scapy.layers.dns import DNS, DNSQR

    return bytes(DNS(id=7, rd=1, qd=DNSQR(qname=name)))


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs CAP_NET_RAW")
def test_sense_identified_is_logged_at_start_and_completed_at_stop(tmp_path, example_data, write_config):
    """`sense --config --identified --reason` on lo: the start is in the export log before the first row;
    SIGTERM completes it with the rows printed and whom they named (the example inventory's loopback
    laptop DEMO-0001 of S9001), and a SAR for S9001 lists it."""
    import selectors
    import socket

    from monitor.exports.log import read_log
    from monitor.exports.subjects import IdentityForms, disclosures

    example_data["store"]["path"] = str(tmp_path / "store.db")
    config = write_config(example_data)
    log = tmp_path / "store.db.exports.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "monitor", "sense", "--config", str(config), "-i", "lo",
                                "--identified", "--reason", "INV-7: loopback demo"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    rows: list[str] = []
    try:
        err: list[str] = []
        deadline = time.monotonic() + 30
        while not any("logged as export" in line for line in err) and time.monotonic() < deadline:
            line = process.stderr.readline() if process.stderr else ""
            if not line:
                break
            err.append(line)
        assert any("identified live stream logged as export 1" in line for line in err), err
        [started] = read_log(log).entries  # before any row
        assert started.extra["live"] == "started" and "included" not in started.extra
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        watch = selectors.DefaultSelector()
        assert process.stdout is not None
        watch.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        n = 0
        while len(rows) < 3 and time.monotonic() < deadline:  # the ring may take a moment to see lo
            sender.sendto(_dns_query(f"www{n}.facebook.com"), ("127.0.0.1", 53))  # a new name: a new row
            n += 1
            if watch.select(timeout=0.5):
                rows.append(process.stdout.readline())
        sender.close()
    finally:
        process.send_signal(signal.SIGTERM)
        out, tail = process.communicate(timeout=30)
    rows += [line for line in out.splitlines() if line.strip()]
    assert process.returncode == 0, tail
    assert rows and all(json.loads(r)["user.id"] == "S9001" for r in rows), tail
    started, done = read_log(log).entries
    assert (done.extra["live"], done.extra["completes"], done.extra["rows"]) == ("completed", started.seq,
                                                                               len(rows))
    assert (done.extra["people"], done.extra["interfaces"], done.reason) == (1, ["lo"],
                                                                            "INV-7: loopback demo")
    assert f"completed as export {done.seq}: {len(rows)} rows naming 1 staff and 0 devices" in tail
    sar = disclosures(log, IdentityForms("S9001", names={"s9001"}))
    assert ([e.seq for e in sar.entries], sar.unrecorded) == ([done.seq], 0)


GOLDEN = json.loads((REPO / "tests" / "data" / "capture" / "classify-golden.json").read_text())


@pytest.mark.parametrize("fmt", ["jsonl", "table"])
@pytest.mark.parametrize("name", sorted(k for k in GOLDEN if not k.startswith("_")))
def test_classify_output_is_byte_for_byte_the_recorded_one(name, fmt, capsys):
    """The ECS field names, order and values are a contract (../shared/DESIGN.md): any changed byte fails."""
    import hashlib

    path = SHARED_PCAPS / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    assert main(["classify", "--format", fmt, str(path)]) == 0
    out = capsys.readouterr().out
    want = GOLDEN[name]
    if fmt == "jsonl":
        assert out.splitlines()[:2] == want["first_rows"]
        assert out.count("\n") == want["rows"]
    assert hashlib.sha256(out.encode()).hexdigest() == want[f"{fmt}_sha256"]
