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
