"""An identified live stream in the export log: refused without a reason, one entry at start (whom
unknown), one at stop (rows, whom they named), and a SAR that reads the start through its completion."""

from __future__ import annotations

import pytest

from monitor.config.loader import load_config
from monitor.errors import UserError
from monitor.exports.live_tagged import LIVE, LiveStream, check_live
from monitor.exports.log import read_log
from monitor.exports.subjects import IdentityForms, disclosures
from monitor.observation import Observation
from tests.store_helpers import T0

# (client IP, MAC) -> whom the example inventory gives it: the loopback demo laptop, a class teacher's
# laptop, and a device the trust does not own
DEMO = ("127.0.0.1", "3c:52:82:99:00:01")  # DEMO-0001, S9001
OAK = ("10.10.10.31", "3c:52:82:10:00:02")  # OAK-LT-0002, S1002
VISITOR = ("10.10.10.99", "aa:bb:cc:00:00:01")


def seen(client: tuple[str, str], n: int = 0) -> Observation:
    return Observation(T0 + n, client[0], 40000 + n, "157.240.1.35", 53, "udp", "dns", "www.facebook.com",
                       client_mac=client[1])


@pytest.fixture
def stream(write_config, example_data, tmp_path):
    example_data["store"]["path"] = str(tmp_path / "store.db")
    config = load_config(write_config(example_data))
    return LiveStream(config, ["eth1", "eth2"], "INV-2026-07: the seized laptop", "stdout (sense)",
                      user="dpo")


@pytest.mark.parametrize(
    ("identified", "reason", "config", "expected"),
    [
        (False, None, None, None),  # aliases: nothing to log
        (False, "why", "trust.yaml", None),
        (True, " INV-7:   watching ", "trust.yaml", "INV-7: watching"),
        (True, None, "trust.yaml", "needs --reason TEXT"),
        (True, "   ", "trust.yaml", "needs --reason TEXT"),
        (True, "why", None, "add --config PATH"),
    ],
    ids=["aliases", "reason-without-identified", "identified", "no-reason", "blank-reason", "no-config"],
)
def test_check_live(identified, reason, config, expected):
    if expected is None or not expected.startswith(("needs", "add")):
        assert check_live(identified, reason, config) == expected
    else:
        with pytest.raises(UserError, match=expected):
            check_live(identified, reason, config)


@pytest.mark.parametrize(
    ("clients", "rows", "people", "devices"),
    [
        ([], 0, 0, 0),
        ([DEMO], 1, 1, 0),
        ([DEMO, DEMO, OAK], 3, 2, 0),
        ([VISITOR], 1, 0, 0),  # a device the trust does not own names no one
    ],
    ids=["nothing", "one-person", "two-people", "visitor"],
)
def test_one_entry_at_start_and_one_at_stop(stream, clients, rows, people, devices):
    row, _tagger = stream.row_maker()
    started = stream.start(now=T0)
    printed = [row(seen(c, i)) for i, c in enumerate(clients)]
    done = stream.complete(now=T0 + 600)
    entries = read_log(stream.log_path).entries
    assert [e.seq for e in entries] == [started.seq, done.seq]
    assert (started.kind, started.identified, started.reason, started.user) == (
        "listing", True, "INV-2026-07: the seized laptop", "dpo")
    assert started.extra == {"command": "sense", "scope": LIVE, "interfaces": ["eth1", "eth2"],
                             "live": "started", "started_at": "2026-09-21T14:13:20Z"}  # whom: not known yet
    assert (done.extra["completes"], done.extra["started_at"], done.extra["stopped_at"]) == (
        started.seq, "2026-09-21T14:13:20Z", "2026-09-21T14:23:20Z")
    assert (done.sessions, done.extra["rows"], done.extra["people"], done.extra["devices"]) == (
        rows, rows, people, devices)
    assert len(done.extra["included"]) == people + devices
    assert len(printed) == rows


@pytest.mark.parametrize(
    ("client", "host", "user"),
    [(DEMO, "DEMO-0001", "S9001"), (OAK, "OAK-LT-0002", "S1002"), (VISITOR, None, None)],
    ids=["demo", "teacher", "visitor"],
)
def test_rows_name_devices_and_people(stream, client, host, user):
    row, _ = stream.row_maker()
    printed = row(seen(client))
    assert (printed.get("host.id"), printed.get("user.id")) == (host, user)


@pytest.mark.parametrize(
    ("staff", "completed", "found", "unrecorded"),
    [
        ("S9001", False, 0, 1),  # killed before it stopped: the log cannot say whom it held
        ("S9001", True, 1, 0),  # read through its completion
        ("S1002", True, 0, 0),  # not seen by this stream
    ],
    ids=["killed", "seen", "not-seen"],
)
def test_a_sar_reads_the_start_through_its_completion(stream, staff, completed, found, unrecorded):
    row, _ = stream.row_maker()
    stream.start(now=T0)
    row(seen(DEMO))
    if completed:
        done = stream.complete(now=T0 + 60)
    result = disclosures(stream.log_path, IdentityForms(staff, names={staff.lower()}))
    assert (len(result.entries), result.unrecorded) == (found, unrecorded)
    if found:
        assert result.entries[0].seq == done.seq


def test_completed_once_and_only_after_start(stream):
    with pytest.raises(RuntimeError, match="only after it started"):
        stream.complete()
    stream.start(now=T0)
    first = stream.complete(now=T0 + 1)
    assert stream.complete(now=T0 + 2) is first
    assert len(read_log(stream.log_path).entries) == 2
    with pytest.raises(RuntimeError, match="started already"):
        stream.start()
