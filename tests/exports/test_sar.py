"""Subject access requests: everything about one person, nothing about anyone else, logged."""

from __future__ import annotations

import stat

import pytest

from monitor.exports.log import read_log
from monitor.exports.request import ExportError
from monitor.exports.sar import run_sar, subject_sessions
from monitor.exports.verify import verify_export
from tests.export_helpers import rows


@pytest.mark.parametrize(
    ("staff", "devices", "expected"),
    [
        ("S2002", {"ASH-LT-0002"}, True),
        ("S2005", {"ASH-LT-0005"}, True),
        ("S2003", {"ASH-LT-0003"}, True),
        ("S1001", set(), False),  # owns a device with nothing recorded
        ("S0000", set(), False),  # unknown: an empty answer, still logged
    ],
)
def test_sar_contains_only_that_person(example_config, store, tmp_path, staff, devices, expected):
    result = run_sar(example_config, store, staff, tmp_path / "sar", log_path=tmp_path / "log.jsonl",
                     user="dpo")
    data = rows(result.out)
    assert bool(data) == expected
    assert {r["host.id"] for r in data} == devices
    assert all(r["user.id"] in (staff, "") for r in data)
    everything = {s.id for s in store.sessions() if s.owner == staff}
    assert {int(r["social.session_id"]) for r in data} == everything
    ok, lines = verify_export(result.out)
    assert ok, lines
    assert stat.S_IMODE((result.out / "sessions.csv").stat().st_mode) == 0o600
    entry = read_log(tmp_path / "log.jsonl").entries[-1]
    assert (entry.kind, entry.subject, entry.user, entry.sessions) == ("sar", staff, "dpo", len(data))


@pytest.mark.parametrize("staff", ["", "   "])
def test_sar_needs_a_staff_id(example_config, store, tmp_path, staff):
    with pytest.raises(ExportError, match="--staff"):
        run_sar(example_config, store, staff, tmp_path / "sar")
    assert not (tmp_path / "sar").exists()


@pytest.mark.parametrize("staff", ["S2002", "S2005"])
def test_subject_sessions_are_oldest_first_and_once_each(example_config, store, staff):
    found = list(subject_sessions(example_config, store, staff))
    assert found and len({s.id for s in found}) == len(found)
    assert [(s.first_seen, s.id) for s in found] == sorted((s.first_seen, s.id) for s in found)


# --- every form of a person's identity, and the recipients of their data ------------------------------

STAFFROOM_PC = "10.20.30.10"  # ASH-PC-0001: shared, no owner in the inventory
PATEL_LAPTOP = "10.20.10.41"  # ASH-LT-0002: S2002, whose login map entry is a.patel
OKAFOR_LAPTOP = "2001:db8:20:10::41"  # ASH-LT-0003: S2003 (m.okafor)


@pytest.fixture
def identities(tmp_path):
    """A store with a mapped login, an unmapped one under three spellings, and a laptop that changed owner."""
    from monitor.store.sqlite import open_store
    from tests.export_helpers import identity_trust, record

    before = identity_trust(tmp_path)
    store = open_store(tmp_path / "store.db")
    record(before, store, [
        (2, 12, 20, STAFFROOM_PC, "TRUST\\a.patel", "www.reddit.com"),  # mapped at tagging: S2002
        (3, 12, 20, PATEL_LAPTOP, None, "www.youtube.com"),  # S2002's laptop, no sign-in
        (4, 12, 20, STAFFROOM_PC, "TRUST\\bjones", "www.reddit.com"),  # not in logins.csv: verbatim
        (5, 12, 20, STAFFROOM_PC, "bjones@meadow-trust.example", "www.reddit.com"),
        (6, 12, 20, PATEL_LAPTOP, "BJONES", "www.facebook.com"),  # bjones signed in on S2002's laptop
        (9, 12, 30, OKAFOR_LAPTOP, None, "www.instagram.com"),  # S2003's laptop while it was theirs
    ])
    record(before, store, [(10, 12, 20, STAFFROOM_PC, "a.patel@meadow-trust.example", "www.reddit.com")],
           logins=False)  # before the login map: stored as typed
    (tmp_path / "after").mkdir()
    after = identity_trust(tmp_path / "after", {"ASH-LT-0003": "S2009"})  # the laptop moves
    record(after, store, [(16, 12, 30, OKAFOR_LAPTOP, None, "www.instagram.com")])
    yield after, store, tmp_path
    store.close()


@pytest.mark.parametrize(
    ("asked", "subject", "owners", "days", "devices_now"),
    [
        # mapped login: the staff id, the login map's a.patel, and a.patel stored verbatim before the map
        ("S2002", "S2002", ["S2002", "a.patel@meadow-trust.example"], [2, 3, 10], ["ASH-LT-0002"]),
        ("a.patel", "S2002", ["S2002", "a.patel@meadow-trust.example"], [2, 3, 10], ["ASH-LT-0002"]),
        # unmapped login: every spelling that normalises to bjones, whichever was asked for
        ("bjones", "bjones", ["BJONES", "TRUST\\bjones", "bjones@meadow-trust.example"], [4, 5, 6], []),
        ("TRUST\\bjones", "TRUST\\bjones", ["BJONES", "TRUST\\bjones", "bjones@meadow-trust.example"],
         [4, 5, 6], []),
        # the laptop that changed owner: S2003 keeps their sessions on it, S2009 gets only theirs
        ("S2003", "S2003", ["S2003"], [9], []),
        ("S2009", "S2009", ["S2009"], [16], ["ASH-LT-0003"]),
    ],
)
def test_sar_finds_every_form_of_a_person(identities, asked, subject, owners, days, devices_now):
    config, store, tmp = identities
    result = run_sar(config, store, asked, tmp / "sar", log_path=tmp / "log.jsonl", user="dpo")
    data = rows(result.out)
    assert sorted(int(r["social.local_date"][-2:]) for r in data) == days
    searched = result.manifest["searched"]
    assert (result.manifest["subject"], searched["stored_owners"], searched["devices"]) == (
        subject, owners, devices_now)
    readme = (result.out / "README.txt").read_text()
    assert all(f"recorded as {o}" in readme for o in owners if o != subject)


def test_sar_lists_recipients_from_the_export_log(identities):
    """Identified and pseudonymised exports that held the person are listed; others and SARs are not."""
    config, store, tmp = identities
    log_path = tmp / "log.jsonl"
    from monitor.exports.export import run_export
    from monitor.exports.request import ExportRequest

    def export_of(days: tuple[int, int], identify: bool, reason: str | None) -> None:
        from datetime import date

        request = ExportRequest(school="ash-secondary", first_day=date(2026, 11, days[0]),
                                last_day=date(2026, 11, days[1]), out=tmp / f"x{days}{identify}",
                                identify=identify, reason=reason)
        run_export(config, store, request, log_path=log_path, user="head")

    export_of((2, 3), True, "case 7")  # S2002's days only
    export_of((4, 5), False, None)  # bjones only, under aliases
    export_of((16, 16), True, "laptop audit")  # S2009's session on the moved laptop
    seen = {}
    for asked in ("S2002", "bjones", "S2003", "S2009", "S2005"):
        result = run_sar(config, store, asked, tmp / f"sar-{asked}", log_path=log_path, user="dpo")
        seen[asked] = [(r["by"], r["reason"], r["identified"]) for r in result.manifest["recipients"]]
    assert seen == {
        "S2002": [("head", "case 7", True)],
        "bjones": [("head", None, False)],
        "S2003": [],
        "S2009": [("head", "laptop audit", True)],
        "S2005": [],
    }
    assert "head (school ash-secondary, 2026-11-02 to 2026-11-03; identified): case 7" in (
        tmp / "sar-S2002" / "README.txt").read_text()


def test_sar_counts_log_entries_that_did_not_record_whom_they_held(identities):
    from monitor.exports.log import LogEntry, append

    config, store, tmp = identities
    append(tmp / "log.jsonl", LogEntry(kind="export", at="2026-01-01T00:00:00Z", user="old", out="/x",
                                       manifest_sha256="0" * 64, sessions=3, school="ash-secondary"))
    result = run_sar(config, store, "S2002", tmp / "sar", log_path=tmp / "log.jsonl", user="dpo")
    assert result.manifest["recipients_unrecorded"] == 1
    readme = (result.out / "README.txt").read_text()
    assert "1 earlier log entries did not record whom they included" in readme
