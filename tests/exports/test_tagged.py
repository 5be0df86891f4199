"""Tagged rows on the command line: aliases and a pseudonymised export's minimisation by default; names
only with a reason, entered in the export log with whom they included."""

from __future__ import annotations

import pytest

from monitor.config.loader import load_config
from monitor.exports.log import read_log
from monitor.exports.subjects import IdentityForms, disclosures
from monitor.exports.tagged import Inclusion, TaggedRows, check_tagged, log_tagged
from monitor.observation import Observation
from monitor.tagging.tagger import Tagger
from tests.conftest import EXAMPLE, london

SCIENCE = ("3c:52:82:20:00:02", "10.20.10.41")  # ASH-LT-0002, S2002's, in a classroom
MARKETING = ("3c:52:82:20:00:04", "10.20.40.12")  # ASH-MB-0004, S2004's: the marketing team of one
ENGLISH = ("3c:52:82:20:00:05", "10.20.10.45")  # ASH-LT-0005: S2005's own timetable frees Friday P4
MONDAY_P2, FRIDAY_P4 = london(2026, 11, 2, 10, 5), london(2026, 11, 27, 13, 20)


@pytest.fixture(scope="module")
def config():
    return load_config(EXAMPLE)


def tagged(config, device: tuple[str, str], host: str, at: float):
    mac, ip = device
    return Tagger(config).tag(Observation(at, ip, 50000, "198.51.100.7", 443, "tcp", "tls", host,
                                          client_mac=mac))


@pytest.mark.parametrize(("device", "host", "at", "field", "aliased", "named"), [
    (SCIENCE, "www.facebook.com", MONDAY_P2, "host.id", "Device ", "ASH-LT-0002"),
    (SCIENCE, "www.facebook.com", MONDAY_P2, "user.id", "Staff ", "S2002"),
    (SCIENCE, "www.facebook.com", MONDAY_P2, "source.mac", None, "3c:52:82:20:00:02"),
    (SCIENCE, "www.facebook.com", MONDAY_P2, "host.type", None, "laptop"),  # four owners of laptops at Ash
    (MARKETING, "www.linkedin.com", MONDAY_P2, "social.exemption", "exempt (clause 4.1)", "marketing-team"),
    (ENGLISH, "www.facebook.com", FRIDAY_P4, "social.period_kind", "contact", "non-contact"),
    (SCIENCE, "www.facebook.com", MONDAY_P2, "social.zone", "classrooms", "classrooms"),  # not a name
])
def test_rows_aliased_unless_identified(config, device, host, at, field, aliased, named):
    def shown(identified: bool):
        value = TaggedRows(config, identified).row(tagged(config, device, host, at)).get(field)
        return value["name"] if isinstance(value, dict) else value

    plain, ident = shown(False), shown(True)
    assert plain == aliased or (isinstance(plain, str) and aliased and plain.startswith(aliased)
                                and plain[len(aliased):].isdigit())
    assert ident == named


def test_aliases_are_stable_within_one_run_and_fresh_for_the_next(config):
    rows = TaggedRows(config, False)
    first = [rows.row(tagged(config, d, "www.facebook.com", MONDAY_P2))["host.id"]
             for d in (SCIENCE, ENGLISH, SCIENCE)]
    assert first[0] == first[2] != first[1]
    runs = {tuple(TaggedRows(config, False).row(tagged(config, d, "www.facebook.com", MONDAY_P2))["host.id"]
                  for d in (SCIENCE, ENGLISH)) for _ in range(12)}
    assert len(runs) > 1  # numbered afresh (12 runs all alike: about 1 in 10^17 for 11 devices)


@pytest.mark.parametrize(("identified", "reason", "kept"), [
    (False, None, None),
    (False, "ignored without --identified", None),
    (True, "case 7", "case 7"),
    (True, "  case 7 ", "case 7"),
])
def test_check_tagged(identified, reason, kept):
    assert check_tagged(identified, reason) == kept


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_check_tagged_refuses_names_without_a_reason(reason):
    with pytest.raises(Exception, match=r"--identified .* needs --reason"):
        check_tagged(True, reason)


@pytest.mark.parametrize(("devices", "rows", "people", "school"), [
    ([SCIENCE], 1, {"S2002"}, "ash-secondary"),
    ([SCIENCE, SCIENCE, ENGLISH], 3, {"S2002", "S2005"}, "ash-secondary"),
    ([("66:77:88:99:aa:01", "10.20.10.99")], 1, set(), "ash-secondary"),  # not a trust device: no one
    ([SCIENCE, ("3c:52:82:10:00:02", "10.10.10.31")], 2, {"S2002", "S1002"}, None),  # two schools
])
def test_log_tagged_records_whom_it_included(example_data, write_config, tmp_path, devices, rows, people,
                                             school):
    example_data["store"]["path"] = str(tmp_path / "store.db")
    live = load_config(write_config(example_data))
    inclusion = Inclusion()
    for d in devices:
        inclusion.add(tagged(live, d, "www.facebook.com", MONDAY_P2))
    entry = log_tagged(live, inclusion, command="classify", reason="case 7", shown="stdout",
                       inputs=["a.pcap"])
    [logged] = read_log(tmp_path / "store.db.exports.jsonl").entries
    assert logged == entry
    assert (entry.kind, entry.identified, entry.sessions, entry.school) == ("listing", True, rows, school)
    assert (entry.extra["command"], entry.extra["inputs"], entry.reason) == ("classify", ["a.pcap"], "case 7")
    for staff in ("S2002", "S2005", "S1002"):  # a SAR of each lists it as a recipient exactly when included
        forms = IdentityForms(staff, names={staff.lower()})
        found = disclosures(tmp_path / "store.db.exports.jsonl", forms).entries
        assert bool(found) == (staff in people), staff
