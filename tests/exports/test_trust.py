"""Exports from the central store: every school at once, or one school, with each gateway's cursor named."""

from __future__ import annotations

from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.exports.log import read_log
from monitor.exports.request import ExportError, ExportRequest
from monitor.exports.trust import GATEWAY_COLUMN, GatewayReviewColumns, SourcesAnchor, run_trust_export
from monitor.exports.verify import verify_export
from monitor.store.postgres.reader import CentralReader, body_session
from monitor.store.reviews import Review
from monitor.store.sessions import session_from_event
from monitor.store.sqlite import SQLiteSessionStore
from tests.central_helpers import two_schools
from tests.export_helpers import jsonl, rows
from tests.store_helpers import event

KEYS = {"oak": Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
        "elm": Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))}
WEEK = (date(2026, 9, 21), date(2026, 9, 27))


@pytest.fixture(scope="module")
def trust(pg_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trust")
    name, _, reader = two_schools(pg_server, tmp, KEYS)
    return pg_server.dsn(reader, name), tmp


def _export(example_config, trust, tmp_path, school="trust", **kw):
    dsn, _ = trust
    request = ExportRequest(school, *WEEK, tmp_path / "out", **kw)
    with CentralReader(dsn) as reader:
        return run_trust_export(example_config, reader, request, log_path=tmp_path / "log.jsonl", user="ceo")


@pytest.mark.parametrize(
    ("school", "gateways", "schools"),
    [
        ("trust", {"oak": 4, "elm": 3}, ["ash-secondary", "oak-primary"]),
        ("", {"oak": 4, "elm": 3}, ["ash-secondary", "oak-primary"]),
        ("ash-secondary", {"elm": 3}, ["ash-secondary"]),
        ("oak-primary", {"oak": 4}, ["oak-primary"]),
        ("central-office", {}, []),
    ],
)
def test_an_export_from_the_central_store_covers_its_scope(example_config, trust, tmp_path, school, gateways,
                                                           schools):
    result = _export(example_config, trust, tmp_path, school)
    data = rows(result.out)
    counted: dict[str, int] = {}
    for r in data:
        counted[r[GATEWAY_COLUMN]] = counted.get(r[GATEWAY_COLUMN], 0) + 1
    assert counted == gateways
    assert result.manifest["schools"] == schools
    assert set(result.manifest["sources"]) == {"oak", "elm"}  # every cursor, whatever the scope
    ok, lines = verify_export(result.out, log_path=tmp_path / "log.jsonl")
    assert ok, lines


def test_the_manifest_names_each_gateways_cursor_and_signed_head(example_config, trust, tmp_path):
    _, tmp = trust
    result = _export(example_config, trust, tmp_path)
    for gateway in ("oak", "elm"):
        with SQLiteSessionStore(tmp / f"{gateway}.db", create=False) as local:
            head = local.chain_head()
        source = result.manifest["sources"][gateway]
        assert source["cursor"] == {"record_id": head.record_id, "hash": head.hash}
        assert source["signed_head"]["hash"] == head.hash
    entry = read_log(tmp_path / "log.jsonl").entries[-1]
    assert (entry.kind, entry.school, entry.user, entry.sessions) == ("export", "trust", "ceo", 7)
    assert entry.extra["sources"] == {g: s["cursor"] for g, s in result.manifest["sources"].items()}
    report = (result.out / "report.html").read_text()
    assert SourcesAnchor.of(result.manifest["sources"]).hash in report


@pytest.mark.parametrize(
    ("identify", "user_ids", "session_ids"),
    [
        (False, {"Staff 01", "Staff 02", "Staff 03", "Staff 04", "Staff 05", ""}, {""}),
        (True, {"S1001", "S1002", "S2002", "TRUST\\jsmith", "jsmith@trust.example", ""},
         {"1", "2", "3", "4"}),
    ],
    ids=["pseudonymised by default", "identified"],
)
def test_pseudonymised_unless_identified(example_config, trust, tmp_path, identify, user_ids, session_ids):
    result = _export(example_config, trust, tmp_path, identify=identify,
                     reason="clause 6.1 review" if identify else None)
    data = rows(result.out)
    assert {r["user.id"] for r in data} == user_ids
    assert {r["social.session_id"] for r in data} == session_ids
    assert result.manifest["pseudonymised"] is not identify


def test_a_review_belongs_to_its_own_gateways_session(example_config, trust, tmp_path):
    """Session 1 exists at both gateways; only elm's was reviewed."""
    result = _export(example_config, trust, tmp_path, identify=True, reason="check")
    status = {(r[GATEWAY_COLUMN], r["social.session_id"]): r["social.review.status"]
              for r in rows(result.out)}
    assert status[("elm", "1")] == "reviewed" and status[("oak", "1")] == "open"
    assert result.manifest["reviews"] == {"reviewed": 1, "open": 6}
    lines = jsonl(result.out)
    assert all(line[GATEWAY_COLUMN] in ("oak", "elm") for line in lines)


@pytest.mark.parametrize(
    ("school", "first", "message"),
    [
        ("elm", WEEK[0], "'elm' is not a configured school"),
        ("trust", date(2026, 9, 28), "is before --from"),
    ],
)
def test_mistakes_write_nothing(example_config, trust, tmp_path, school, first, message):
    dsn, _ = trust
    request = ExportRequest(school, first, WEEK[1], tmp_path / "out")
    with CentralReader(dsn) as reader, pytest.raises(ExportError, match=message):
        run_trust_export(example_config, reader, request, log_path=tmp_path / "log.jsonl")
    assert not (tmp_path / "out").exists() and not (tmp_path / "log.jsonl").exists()


# --- pure parts ----------------------------------------------------------------------------------------


def _session(gateway: str, sid: int, flagged: bool = True):
    s = session_from_event(event(flags=event().flags if flagged else ()))
    s.id, s.version = sid, 1
    return body_session(s.body(), gateway, 10)


def _review(sid: int, record: int) -> Review:
    return Review(record, 0.0, sid, 1, 10, "no action", "", "why", "dpo", "root", None)


@pytest.mark.parametrize(
    ("gateway", "sid", "flagged", "status"),
    [
        ("elm", 1, True, "reviewed"),
        ("oak", 1, True, "open"),  # the same id at another gateway is another session
        ("oak", 2, True, "reviewed"),
        ("elm", 2, True, "open"),
        ("elm", 1, False, None),
    ],
)
def test_gateway_review_columns(gateway, sid, flagged, status):
    columns = GatewayReviewColumns({"elm": [_review(1, 5)], "oak": [_review(2, 7)]}, identified=False)
    line, row = columns.add(_session(gateway, sid, flagged), '{"a": 1}\n', ("x",))
    assert row[:3] == ("x", gateway, status or "")
    assert line.startswith(f'{{"a": 1, "{GATEWAY_COLUMN}": "{gateway}", "social.review.status": ')
    assert columns.columns[0] == GATEWAY_COLUMN


@pytest.mark.parametrize(
    ("sources", "named"),
    [
        ({}, "no gateway"),
        ({"elm": {"cursor": {"record_id": 3, "hash": "h"}}}, "elm 3"),
        ({"elm": {"cursor": {"record_id": 3, "hash": "h"}}, "oak": {"cursor": {"record_id": 9, "hash": "i"}}},
         "elm 3; oak 9"),
    ],
)
def test_sources_anchor(sources, named):
    anchor = SourcesAnchor.of(sources)
    assert anchor.record_id == named and len(anchor.hash) == 64


SOURCES = {"gw-oak": {"cursor": {"record_id": 7}, "head": "h1"}, "gw-ash": {"cursor": {"record_id": 0}}}


@pytest.mark.parametrize(("helper", "expected"), [
    ("central_provenance", {"central": {"store": "pg://central", "gateways": ["gw-ash", "gw-oak"]},
                            "sources": SOURCES}),
    ("central_log_extra", {"central": "pg://central",
                           "sources": {"gw-oak": {"record_id": 7}, "gw-ash": {"record_id": 0}}}),
], ids=["manifest", "log-entry"])
def test_where_a_central_export_was_read(helper, expected):
    from types import SimpleNamespace

    from monitor.exports import trust

    reader = SimpleNamespace(where="pg://central", gateways=["gw-ash", "gw-oak"])
    assert getattr(trust, helper)(reader, SOURCES) == expected
