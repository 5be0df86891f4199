"""The investigator's report.html, parsed: the case, the sessions in local time, flags, reviews, proof.

Made through the real command line (`export --device … --case … --reason …`) on a real store with a
review recorded by `social-monitor review`, and checked by structure (tables by id, cells by column),
not by the look of the page."""

from __future__ import annotations

import json
from datetime import datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from monitor.cli import main
from monitor.config.loader import load_config
from monitor.exports.investigation_report import CaseFacts, InvestigationReport
from monitor.store.sqlite import open_store
from tests.export_helpers import populate
from tests.store_helpers import T0, event

LONDON = ZoneInfo("Europe/London")


class Page(HTMLParser):
    """Tables by id (rows of cell texts), section ids, and every tag met."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.sections: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        elif tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, table_id: str) -> list[dict[str, str]]:
        """A table with a header row, as dicts by column title."""
        head, *rows = self.tables[table_id]
        return [dict(zip(head, row, strict=True)) for row in rows]

    def pairs(self, table_id: str) -> dict[str, str]:
        return dict(self.tables[table_id])


# --- through the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def case(tmp_path_factory, request):
    """An investigation of ASH-LT-0002 on the example trust's four weeks, one flagged session reviewed."""
    import shutil

    import yaml

    from tests.conftest import EXAMPLE

    tmp = tmp_path_factory.mktemp("case")
    for name in ("devices.csv", "staff-timetable.csv", "logins.csv"):
        shutil.copy(EXAMPLE.parent / name, tmp / name)
    data = yaml.safe_load(EXAMPLE.read_text())
    data["store"]["path"] = str(tmp / "store.db")
    (tmp / "trust.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(tmp / "trust.yaml")
    store = populate(config, config.store_path)
    flagged = [s for s in store.sessions() if s.device == "ASH-LT-0002" and s.flagged]
    store.close()
    cfg = ["--config", str(tmp / "trust.yaml")]
    assert main(["review", str(flagged[0].id), "--outcome", "personal use: spoken to", "--by", "Mrs Patel",
                 "--reason", "weekly review", "--note", "Agreed <b>not</b> to", *cfg]) == 0
    assert main(["review", str(flagged[0].id), "--outcome", "teaching use", "--by", "Mr Okafor",
                 "--reason", "second look", *cfg]) == 0
    out = tmp / "INV-7"
    assert main(["export", "--device", "ASH-LT-0002", "--case", "INV-2026-07", "--reason",
                 "laptop seized <script>alert(1)</script>", "--out", str(out), *cfg]) == 0
    assert main(["verify-export", str(out), *cfg]) == 0  # report.html is in the manifest, and checks out
    manifest = json.loads((out / "manifest.json").read_text())
    sessions = [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]
    return Page((out / "report.html").read_text()), manifest, sessions, flagged[0].id


def test_report_has_each_part(case):
    page, *_ = case
    assert page.sections == ["case", "sessions", "reviews", "proof"]
    assert "script" not in page.tags  # the reason's <script> is text, escaped


@pytest.mark.parametrize(("field", "shown"), [
    ("Case", "INV-2026-07"),
    ("Reason given", "laptop seized <script>alert(1)</script>"),
    ("Scope", "device ASH-LT-0002"),
    ("Period", "the whole history still stored (times are local to Europe/London)"),
    ("Devices in it", "ASH-LT-0002"),
    ("Staff ids in it", "S2002"),
])
def test_case_table(case, field, shown):
    page, *_ = case
    assert page.pairs("case-table")[field] == shown


def test_every_session_is_a_row_in_local_time_with_minutes(case):
    page, manifest, sessions, _ = case
    rows = page.table("sessions-table")
    assert len(rows) == len(sessions) == manifest["sessions"] > 3
    for row, s in zip(rows, sorted(sessions, key=lambda s: s["event.start"]), strict=True):
        start = datetime.fromisoformat(s["event.start"].replace("Z", "+00:00")).astimezone(LONDON)
        assert row["When (local time)"].startswith(start.strftime("%a %d %b %Y %H:%M")), (row, s)
        assert float(row["Minutes"]) == pytest.approx(float(s["social.minutes"]), abs=0.01)
        assert row["Device / owner"] == "ASH-LT-0002S2002"  # the owner on its own line
        if s["social.flagged"]:
            assert "(4.3)" in row["Flags (policy clause)"]


def test_reviews_are_listed_current_and_superseded(case):
    page, _, _, reviewed = case
    reviews = page.table("reviews-table")
    assert [(r["Session"], r["Outcome"], r["Status"]) for r in reviews] == [
        (str(reviewed), "personal use: spoken to", "superseded"), (str(reviewed), "teaching use", "current")]
    assert reviews[0]["Note"] == "Agreed <b>not</b> to" and reviews[0]["By"].startswith("Mrs Patel")
    shown = [r["Review"] for r in page.table("sessions-table") if r["Review"].startswith("Teaching use")]
    assert shown == ["Teaching use: Mr Okafor, " + reviews[1]["Reviewed (local time)"][:10]]


@pytest.mark.parametrize(("field", "expected"), [
    ("Chain head at export",
     lambda m: f"record {m['chain_head']['record_id']}, hash {m['chain_head']['hash']}"),
    ("Signed head", lambda m: f"number {m['signed_head']['seq']}, record {m['signed_head']['record_id']}"),
    ("Gateway's public key", lambda m: m["signed_head"]["key"]),
    ("evidence.jsonl", lambda m: f"{m['sessions']} chain records, one per session"),
])
def test_proof_names_the_manifests_anchors(case, field, expected):
    page, manifest, *_ = case
    assert page.pairs("proof-table")[field].startswith(expected(manifest))


# --- the page alone, fed by hand -------------------------------------------------------------------


def facts(**kw) -> CaseFacts:
    values = dict(trust="Trust", case="C-1", reason="r", scope="staff", target="S1", period="p",
                  timezone="Europe/London", created_at="now", created_by="dpo",
                  chain_head={"record_id": 9, "hash": "ab"}, signed_head=None, public_key=None,
                  evidence_records=0)
    return CaseFacts(**{**values, **kw})


@pytest.mark.parametrize(("sessions", "table", "summary"), [
    ([], "no-sessions", "0 sessions in scope (0 minutes), of which 0 flagged"),
    ([event(T0, owner="S1")], "sessions-table", "1 session in scope"),
    ([event(T0, owner="S1"), event(T0 + 86400, owner="S1")], "sessions-table", "2 sessions in scope"),
])
def test_sessions_and_summary(tmp_path, sessions, table, summary):
    with open_store(tmp_path / "s.db") as store:
        store.write(sessions)
        report = InvestigationReport(LONDON, [])
        for s in store.sessions():
            report.add(s)
    html = report.render(facts())
    page = Page(html)
    assert (table in page.tables) or f'id="{table}"' in html
    assert " ".join(page.pairs("case-table").keys())  # the case is always stated
    assert summary in "".join(page.text)


@pytest.mark.parametrize(("tz", "shown"), [
    (LONDON, "Mon 21 Sep 2026 15:13"),  # T0 is 14:13 UTC: British Summer Time
    (ZoneInfo("UTC"), "Mon 21 Sep 2026 14:13"),
])
def test_times_are_the_trusts_local_time(tmp_path, tz, shown):
    with open_store(tmp_path / "s.db") as store:
        store.write([event(T0, owner="S1")])
        report = InvestigationReport(tz, [])
        for s in store.sessions():
            report.add(s)
    [row] = Page(report.render(facts())).table("sessions-table")
    assert row["When (local time)"].startswith(shown)


@pytest.mark.parametrize(("signed", "shown"), [
    (None, "none (this export is not signed)"),
    ({"seq": 3, "record_id": 9, "signed_at": "t", "key": "ed25519:K"},
     "number 3, record 9, signed t by ed25519:K"),
])
def test_unsigned_and_signed_heads(signed, shown):
    page = Page(InvestigationReport(LONDON, []).render(facts(signed_head=signed)))
    assert page.pairs("proof-table")["Signed head"] == shown


def test_rows_are_capped_and_the_rest_counted(tmp_path, monkeypatch):
    import monitor.exports.investigation_report as module

    monkeypatch.setattr(module, "MAX_ROWS", 2)
    with open_store(tmp_path / "s.db") as store:
        store.write([event(T0 + k * 86400, owner="S1") for k in range(5)])
        report = InvestigationReport(LONDON, [])
        for s in store.sessions():
            report.add(s)
    page = Page(report.render(facts()))
    assert len(page.table("sessions-table")) == 2 and report.sessions == 5
    assert "3 more are in sessions.csv" in "".join(page.text)


def test_no_file_is_fetched():
    html = InvestigationReport(LONDON, []).render(facts())
    assert "default-src 'none'" in html and not [t for t in Page(html).tags if t in ("script", "img", "link")]
