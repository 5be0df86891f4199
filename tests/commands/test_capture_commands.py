"""`social-monitor classify`: JSON lines out, one-line errors for files that are not captures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scapy.utils import wrpcap

from monitor.cli import main
from tests.capture_helpers import client_hello, tcp_frame, tls_records
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
