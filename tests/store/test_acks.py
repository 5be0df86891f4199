"""The central store's acknowledgement, noted in a real SQLite store's store_meta."""

from __future__ import annotations

import sqlite3

import pytest

from monitor.store.acks import META_NAME, acknowledged, mark_shipped, record_acknowledged
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event


def note(path) -> int | None:
    con = sqlite3.connect(path)
    try:
        return acknowledged(con)
    finally:
        con.close()


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "s.db"
    with open_store(path) as store:
        store.write([event(T0)])
    return path


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ((), None),  # never shipped: no note, retention as before
        ((("mark",),), 0),  # shipping configured: nothing acknowledged yet
        ((("ack", 7),), 7),
        ((("ack", 7), ("mark",)), 7),  # marking again keeps what was acknowledged
        ((("mark",), ("ack", 3), ("ack", 9)), 9),  # each batch moves it on
    ],
    ids=["none", "marked", "acknowledged", "mark keeps ack", "batches"],
)
def test_note_after_steps(store_path, steps, expected):
    for step in steps:
        if step[0] == "mark":
            mark_shipped(store_path)
        else:
            record_acknowledged(store_path, step[1])
    assert note(store_path) == expected


@pytest.mark.parametrize(("value", "expected"), [("12", 12), ("0", 0), ("twelve", 0)],
                         ids=["number", "zero", "unreadable holds everything"])
def test_unreadable_note_holds_everything_back(store_path, value, expected):
    con = sqlite3.connect(store_path)
    con.execute("INSERT INTO store_meta (name, value) VALUES (?, ?)", (META_NAME, value))
    con.commit()
    con.close()
    assert note(store_path) == expected
