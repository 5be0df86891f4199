"""Listings: refused without a reason when they identify, aliases by default, logged when named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.exports.listing import check_listing, listing_labels, log_listing
from monitor.exports.log import read_log
from monitor.exports.pseudonyms import identity
from monitor.exports.request import ExportError
from monitor.store.filter import SessionFilter


@pytest.mark.parametrize(
    ("identified", "reason", "selects_one", "kept"),
    [
        (False, None, None, None),
        (True, "case 7", None, "case 7"),
        (True, "  case 7 ", "--user", "case 7"),
        (True, "case 7", "--device", "case 7"),
    ],
)
def test_check_listing_allows(identified, reason, selects_one, kept):
    assert check_listing(identified, reason, selects_one) == kept


@pytest.mark.parametrize(
    ("identified", "reason", "selects_one", "message"),
    [
        (True, None, None, "needs --reason"),
        (True, "   ", "--device", "needs --reason"),
        (False, "case 7", "--user", "--user selects one person"),
        (False, None, "--device", "--device selects one person"),
    ],
)
def test_check_listing_refuses(identified, reason, selects_one, message):
    with pytest.raises(ExportError, match=message):
        check_listing(identified, reason, selects_one)


@pytest.mark.parametrize(("identified", "named"), [(True, True), (False, False)])
def test_listing_labels(store, identified, named):
    labels = listing_labels(store, SessionFilter(school="ash-secondary"), identified)
    assert (labels is identity) is named
    device, mac, owner = labels(next(s for s in store.sessions() if s.owner == "S2002"))
    assert (device == "ASH-LT-0002", mac is not None, owner == "S2002") == (named, named, named)
    if not named:
        assert device.startswith("Device ") and owner and owner.startswith("Staff ")


@pytest.mark.parametrize(
    ("where", "criteria"),
    [
        (SessionFilter(owner="S2002"), {"one_owner": True}),
        (SessionFilter(device="ASH-LT-0005", flagged=True), {"one_device": True, "flagged": True}),
        (SessionFilter(school="ash-secondary", since=datetime(2026, 11, 2, tzinfo=UTC)),
         {"school": "ash-secondary", "since": "2026-11-02T00:00:00Z"}),
    ],
)
def test_log_listing_records_criteria_not_names(store, tmp_path, where, criteria):
    entry = log_listing(store, where, tmp_path / "log.jsonl", reason="case 7", shown="stdout", user="it",
                        now=0)
    [logged] = read_log(tmp_path / "log.jsonl").entries
    assert logged == entry and entry.at == "1970-01-01T00:00:00Z" and entry.kind == "listing"
    assert entry.extra["filter"] == criteria and entry.sessions == store.count(where)
    assert "S2002" not in str(entry.extra) and "ASH-LT" not in str(entry.extra)
