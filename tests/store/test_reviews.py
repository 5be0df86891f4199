"""Reviews in the chain: the checks on what is given, the record written, retention and `verify`."""

from __future__ import annotations

import json
import sqlite3

import pytest

from monitor.store.acks import record_acknowledged
from monitor.store.reviews import (
    OUTCOMES,
    Review,
    ReviewError,
    append_review,
    check_outcome,
    check_text,
    latest,
    parse_review,
    read_reviews,
    review_fault,
)
from monitor.store.sqlite import DAY, open_store
from tests.store_helpers import T0, event


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        ("teaching use", "teaching use"),
        ("  Personal   use: SPOKEN to ", "personal use: spoken to"),
        ("no action", "no action"),
        ("not this person", "not this person"),
    ],
)
def test_outcome_is_one_of_the_list(given, recorded):
    assert check_outcome(given) == recorded


@pytest.mark.parametrize(("given", "message"), [
    ("told off", "'told off' is not an outcome"),
    ("", "nothing is not an outcome"),
    (None, "nothing is not an outcome"),
    ("personal use", "'personal use' is not an outcome"),
])
def test_unknown_outcome_is_refused(given, message):
    with pytest.raises(ReviewError, match=message):
        check_outcome(given)


@pytest.mark.parametrize(
    ("text", "limit", "required", "lines", "result"),
    [
        ("  weekly review ", 50, True, False, "weekly review"),
        ("", 50, False, False, ""),
        ("line one\nline two", 50, False, True, "line one\nline two"),
        ("", 50, True, False, "--x: required"),
        ("x" * 51, 50, False, False, "51 characters, at most 50"),
        ("a\nb", 50, False, False, "control character U+000A"),
        ("bidi \u202e trick", 50, False, True, "control character U+202E"),
    ],
)
def test_free_text(text, limit, required, lines, result):
    try:
        assert check_text("--x", text, limit, required=required, lines=lines) == result
    except ReviewError as exc:
        assert result in str(exc) and "nothing was recorded" in str(exc)


GOOD = {"review": {"session": 3, "version": 2, "record": 9, "outcome": "no action", "note": "", "reason": "r",
                   "by": "A", "os_user": "alice", "supersedes": None}}


def body(**changes: object) -> str:
    inner = {**GOOD["review"], **changes}
    return json.dumps({"review": {k: v for k, v in inner.items() if v != "DROP"}})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not JSON"),
        ('{"purge": {}}', 'not a {"review": {...}} body'),
        (body(outcome="dismissed"), "outcome 'dismissed'"),
        (body(session="3"), "session: wrong type"),
        (body(version=True), "version: wrong type"),
        (body(note="DROP"), "fields note wrong"),
        (body(reason="  "), "reason or reviewer missing"),
        (body(session=0), "session, version"),
    ],
)
def test_a_body_social_monitor_does_not_write_is_named(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_review(10, T0, text)


def test_a_body_round_trips():
    r = parse_review(10, T0, json.dumps(GOOD))
    assert (r.record_id, r.session_id, r.version, r.session_record, r.outcome) == (10, 3, 2, 9, "no action")
    assert r.body() == GOOD


def review(rid: int, session: int) -> Review:
    return Review(rid, T0, session, 1, 1, "no action", "", "r", "A", "u", None)


@pytest.mark.parametrize(
    ("reviews", "current"),
    [
        ([], {}),
        ([review(5, 1)], {1: 5}),
        ([review(5, 1), review(9, 1)], {1: 9}),
        ([review(9, 1), review(5, 1), review(7, 2)], {1: 9, 2: 7}),
    ],
)
def test_the_latest_review_supersedes(reviews, current):
    assert {s: r.record_id for s, r in latest(reviews).items()} == current


@pytest.fixture
def store_path(tmp_path):
    """Session 1 flagged, session 2 not (exempt-free, no flag), both of staff-0001, written for real."""
    path = tmp_path / "store.db"
    with open_store(path) as store:
        store.write([event(T0)])
        store.write([event(T0 + 3600, device="OAK-0002", flags=())])
    return path


def test_a_review_is_a_session_0_record_and_the_session_is_untouched(store_path):
    with open_store(store_path, create=False) as store:
        before = store.session(1)
    done = append_review(store_path, 1, "teaching use", "Year 5 lesson", "weekly", "Mr Day", "alice", T0 + 99)
    with open_store(store_path, create=False) as store:
        assert store.session(1) == before
        assert [(r.record_id, r.session_id, r.version, r.outcome) for r in store.reviews()] == [
            (done.record_id, 1, 1, "teaching use")]
        assert store.verify().ok
    con = sqlite3.connect(store_path)
    header = con.execute("SELECT session_id, version FROM records WHERE id = ?", (done.record_id,)).fetchone()
    assert header == (0, 1)
    con.close()


@pytest.mark.parametrize(
    ("session", "message"),
    [(99, "session 99: no such session"), (2, "session 2 is not flagged")],
)
def test_what_cannot_be_reviewed_writes_nothing(store_path, session, message):
    size = store_path.stat().st_size
    with pytest.raises(ReviewError, match=message):
        append_review(store_path, session, "no action", "", "r", "A", "u", T0)
    with open_store(store_path, create=False) as store:
        assert store.reviews() == [] and store.chain_head().record_id == 2
    assert store_path.stat().st_size == size


def test_a_failing_log_entry_leaves_no_review(store_path):
    def fail(*_args):
        raise OSError("disk full")

    with pytest.raises(OSError):
        append_review(store_path, 1, "no action", "", "r", "A", "u", T0, before_commit=fail)
    with open_store(store_path, create=False) as store:
        assert store.reviews() == []


@pytest.mark.parametrize("shipped", [False, True])
def test_retention_takes_the_review_with_its_session(store_path, shipped):
    first = append_review(store_path, 1, "no action", "", "r", "A", "u", T0 + 10)
    second = append_review(store_path, 1, "teaching use", "", "r", "A", "u", T0 + 20)
    assert second.supersedes == first.record_id
    if shipped:  # the central store has the sessions but not the reviews: they wait
        record_acknowledged(store_path, 2)
    with open_store(store_path) as store:
        result = store.purge(1, now=T0 + 10 * DAY)
        assert store.verify().ok
        assert result.sessions_removed == (1 if shipped else 2)  # session 2 has no review: it goes
        assert len(store.reviews()) == (2 if shipped else 0)


def test_a_purge_never_compacts_past_a_live_review(tmp_path):
    path = tmp_path / "store.db"
    with open_store(path) as store:
        store.write([event(T0, device="OLD")])
        store.write([event(T0 + 20 * DAY, device="NEW", local_date="2026-10-11")])
    append_review(path, 2, "no action", "", "r", "A", "u", T0 + 20 * DAY)
    with open_store(path) as store:
        store.purge(10, now=T0 + 21 * DAY)
        assert [r.session_id for r in store.reviews()] == [2] and store.verify().ok


def test_review_fault_is_none_for_a_store_without_reviews(store_path):
    con = sqlite3.connect(store_path)
    assert review_fault(con) is None and read_reviews(con) == []
    con.close()


def test_outcomes_are_documented():
    assert len(OUTCOMES) >= 6 and all(meaning for meaning in OUTCOMES.values())
