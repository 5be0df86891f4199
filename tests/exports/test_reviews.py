"""The review columns of exports and SARs, the report's counts, a SAR's history, the export-log entry."""

from __future__ import annotations

import json

import pytest

from monitor.exports.reviews import COLUMNS, WITHHELD, ReviewColumns, log_entry, sar_reviews, subject_of
from monitor.exports.sealed import ExportWriter
from monitor.observation import Exemption
from monitor.store.reviews import Review, ReviewedSession
from monitor.store.sessions import Session
from tests.store_helpers import CONTACT, T0

REVIEW = Review(50, T0, 7, 2, 40, "personal use: spoken to", "Spoke to J.", "weekly review", "Mrs Patel",
                "alice", None)


SHOWN = ("reviewed", "personal use: spoken to", "2026-09-21T14:13:20Z", "Mrs Patel", "alice", 2)


def session(sid: int = 7, *, flagged: bool = True, version: int = 2, exempt: bool = False) -> Session:
    return Session("LAP-1", "facebook", "oak", "classrooms", "P1", "2026-09-21", T0, T0 + 60,
                   flags=(CONTACT,) if flagged else (),
                   exemption=Exemption("marketing", "4.1", "school accounts") if exempt else None,
                   id=sid, version=version)


@pytest.mark.parametrize(
    ("s", "identified", "values"),
    [
        (session(flagged=False), True, (None,) * 8),
        (session(exempt=True), True, (None,) * 8),
        (session(8), True, ("open",) + (None,) * 7),
        (session(), True, (*SHOWN, "Spoke to J.", "weekly review")),
        (session(), False, (*SHOWN, WITHHELD, WITHHELD)),
    ],
)
def test_review_values(s, identified, values):
    assert ReviewColumns([REVIEW], identified).values(s) == values


@pytest.mark.parametrize(
    ("sessions", "reviewed", "open_", "extended"),
    [
        ([], 0, 0, 0),
        ([session(), session(8), session(9, flagged=False)], 1, 1, 0),
        ([session(version=3)], 1, 0, 1),
    ],
)
def test_counts(sessions, reviewed, open_, extended):
    columns = ReviewColumns([REVIEW], identified=False)
    for s in sessions:
        columns.add(s, '{"a": 1}\n', ())
    assert (columns.reviewed, columns.open, columns.extended) == (reviewed, open_, extended)


def test_add_keeps_the_json_line_valid_and_the_csv_row_in_step():
    line, row = ReviewColumns([REVIEW], identified=True).add(session(), '{"social.session_id": 7}\n', ("7",))
    parsed = json.loads(line)
    assert line.endswith("}\n") and parsed["social.session_id"] == 7
    assert ["" if parsed[c] is None else parsed[c] for c in COLUMNS] == list(row[1:])
    assert row[0] == "7" and len(row) == 1 + len(COLUMNS)


@pytest.mark.parametrize(
    ("s", "cell"),
    [
        (session(flagged=False), ""),
        (session(8), "Open"),
        (session(), "Personal use: spoken to: Mrs Patel, 2026-09-21"),
        (session(version=4), "Personal use: spoken to: Mrs Patel, 2026-09-21 (session extended after "
                             "review)"),
    ],
)
def test_report_cell(s, cell):
    assert ReviewColumns([REVIEW], identified=False).cell(s) == cell


def test_summary_names_reviewed_open_and_outcomes_escaped():
    columns = ReviewColumns([REVIEW], identified=False)
    assert columns.summary_html() == ""
    for s in (session(), session(8), session(9)):
        columns.add(s, "{}\n", ())
    html = columns.summary_html()
    assert "Reviewed: 1 of 3 flagged accesses; open: 2." in html and "personal use: spoken to (1)" in html


def test_a_sar_lists_every_review_of_the_subject_superseded_too(tmp_path):
    later = Review(60, T0 + 5, 7, 2, 40, "teaching use", "", "r", "B", "bob", 50)
    other = Review(61, T0 + 6, 8, 1, 41, "no action", "", "r", "B", "bob", None)
    writer = ExportWriter(tmp_path / "sar")
    assert sar_reviews(writer, [REVIEW, later, other], {7}) == 2
    lines = [json.loads(x) for x in (writer.tmp / "reviews.jsonl").read_text().splitlines()]
    writer.abort()
    assert [(x["record_id"], x["current"], x["supersedes"]) for x in lines] == [(50, False, None),
                                                                              (60, True, 50)]


@pytest.mark.parametrize(
    ("owner", "device", "subject"),
    [("S1", "LAP-1", "S1"), (None, "LAP-1", "S9"), (None, "SHARED-PC", None)],
)
def test_subject_of_a_reviewed_session(owner, device, subject):
    assert subject_of(ReviewedSession(7, owner, device, "oak"), {"LAP-1": "S9"}) == subject


def test_log_entry_names_who_whose_and_why_not_the_outcome():
    entry = log_entry(REVIEW, ReviewedSession(7, "S1", "LAP-1", "oak"), "S1", "/var/store.db", "ab" * 32, T0)
    assert (entry.kind, entry.subject, entry.reason, entry.user, entry.identified) == (
        "review", "S1", "weekly review", "alice", True)
    assert entry.extra == {"record": 50, "session": 7, "version": 2, "by": "Mrs Patel"}
    assert "spoken" not in json.dumps(entry.extra)
