"""The coverage ledger on a real SQLite store: in the sessions' chain, verified, purged with them, read."""

from __future__ import annotations

import json

import pytest

from monitor.store import coverage
from monitor.store.chain import GENESIS, ChainHead
from monitor.store.coverage import Interval
from monitor.store.retention import purge_before
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event

DAY = 86400.0


def interval(start: float, seconds: float = 300.0, **kw) -> Interval:
    return Interval(start, start + seconds, **kw)


@pytest.mark.parametrize(("field", "value"), [
    ("interfaces", {"lan1": {"up_seconds": 120.0, "packets": 10.0, "kernel_drops": 2.0}}),
    ("sensor", "live"),
    ("sensor_up_seconds", 299.0),
    ("proxy", True),
    ("proxy_up_seconds", 12.5),
    ("parse_errors", 3),
    ("observations", 40),
    ("refused", 7),
    ("storage_refused", True),
    ("queue_dropped", 9),
    ("obscured", {"ech": 2, "vpn": 1}),
])
def test_an_interval_survives_its_body(field, value):
    original = interval(T0, **{field: value})
    back = Interval.from_body(coverage.coverage_body(original))
    assert back is not None and getattr(back, field) == value


@pytest.mark.parametrize("body", ['{"purge":{"cutoff":1,"sessions":[]}}', "not json", '{"coverage":{}}',
                                  '{"coverage":{"start":"x","end":1}}'])
def test_a_body_that_is_not_an_interval_reads_as_none(body):
    assert Interval.from_body(body) is None


def test_a_body_is_canonical_and_names_its_kind_first():
    body = coverage.coverage_body(interval(T0, obscured={"vpn": 1, "ech": 2}))
    assert body.startswith(coverage.COVERAGE_PREFIX)
    assert list(json.loads(body)) == ["coverage"]


def test_intervals_interleave_with_sessions_and_the_chain_verifies(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        store.write([event(T0)])
        coverage.append_to_file(store.path, interval(T0), T0 + 300)
        store.write([event(T0 + 400, device="D2")])
        coverage.append_to_file(store.path, interval(T0 + 300), T0 + 600)
        result = store.verify()
        assert result.ok, result.problem
        assert result.records == 4 and result.sessions == 2


TAMPERING = [
    ("edited", "UPDATE records SET body = replace(body, '\"packets\":5', '\"packets\":6') WHERE id = 2",
     "changed"),
    ("deleted", "DELETE FROM records WHERE id = 2", "removed"),
    ("blanked", "UPDATE records SET body = NULL WHERE id = 2", "removed"),
]


@pytest.mark.parametrize(("case", "sql", "kind"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_an_interval_changed_outside_the_daemon_breaks_verify(tmp_path, case, sql, kind):
    with open_store(tmp_path / "s.db") as store:
        store.write([event(T0)])
        coverage.append_to_file(store.path, interval(T0, interfaces={"lan1": {"packets": 5.0}}), T0 + 300)
        store.write([event(T0 + 400, device="D2")])
        store._con.execute(sql)  # type: ignore[attr-defined]
        result = store.verify()
        assert not result.ok and result.kind == kind, result.problem


@pytest.mark.parametrize(("age_days", "blanked"), [(20, True), (5, False)], ids=["old", "recent"])
def test_retention_purges_intervals_with_the_sessions_of_their_time(tmp_path, age_days, blanked):
    now = T0 + 30 * DAY
    with open_store(tmp_path / "s.db") as store:
        store.write([event(now - 1 * DAY)])  # a recent session keeps the log from being compacted
        rid = coverage.append_to_file(store.path, interval(now - age_days * DAY), now - age_days * DAY)
        store.write([event(now - 0.5 * DAY, device="D2")])
        con = store._con  # type: ignore[attr-defined]
        con.execute("BEGIN IMMEDIATE")
        purge_before(con, now - 10 * DAY, ChainHead(0, GENESIS), now, "s.db")
        con.execute("COMMIT")
        body = con.execute("SELECT body FROM records WHERE id = ?", (rid,)).fetchone()
        assert (body is not None and body[0] is None) == blanked
        assert store.verify().ok


def test_a_kept_interval_is_never_compacted_away(tmp_path):
    now = T0 + 30 * DAY
    with open_store(tmp_path / "s.db") as store:
        store.write([event(now - 20 * DAY)])  # old: purged, its record compacted
        rid = coverage.append_to_file(store.path, interval(now - DAY), now - DAY)  # recent: kept
        con = store._con  # type: ignore[attr-defined]
        con.execute("BEGIN IMMEDIATE")
        result = purge_before(con, now - 10 * DAY, ChainHead(0, GENESIS), now, "s.db")
        con.execute("COMMIT")
        assert result.records_removed == 1  # the old session's tombstone: compaction stops at the interval
        assert con.execute("SELECT body IS NOT NULL FROM records WHERE id = ?", (rid,)).fetchone() == (1,)
        assert store.verify().ok


@pytest.mark.parametrize(("since", "until", "starts"), [
    (T0, T0 + 900, [T0, T0 + 300, T0 + 600]),
    (T0 + 301, T0 + 599, [T0 + 300]),
    (T0 + 900, T0 + 1200, []),
    (T0 - 600, T0 + 1, [T0]),
])
def test_the_view_holds_the_intervals_overlapping_the_period(tmp_path, since, until, starts):
    path = tmp_path / "s.db"
    with open_store(path) as store:
        store.write([event(T0)])
        for k in range(3):
            coverage.append_to_file(path, interval(T0 + 300 * k), T0 + 300 * (k + 1))
    view = coverage.open_view(path, since, until)
    assert [i.start for i in view.intervals] == starts
    assert view.history_start == T0 and view.purged_before is None


def test_the_view_knows_the_last_purge_cutoff(tmp_path):
    path = tmp_path / "s.db"
    now = T0 + 30 * DAY
    with open_store(path) as store:
        store.write([event(now - 20 * DAY)])
        coverage.append_to_file(path, interval(now - DAY), now - DAY)
        store.purge(10, now=now)
    view = coverage.open_view(path, now - 2 * DAY, now)
    assert view.purged_before == now - 10 * DAY
