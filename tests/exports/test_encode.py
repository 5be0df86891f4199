"""sessions.csv and sessions.jsonl: one pass, the same records as the store's own encoders."""

from __future__ import annotations

import json

import pytest

from monitor.exports.encode import write_sessions
from monitor.exports.pseudonyms import Pseudonymiser, alias_labeller, identity
from monitor.exports.sealed import ExportWriter
from monitor.store.ecs import ECS_FIELDS
from tests.export_helpers import rows


def test_export_encoder_matches_the_sessions_own_encoders(store):
    """On a realistic month: each JSON line is json.dumps of `to_ecs()`, each CSV row is `to_csv_row()`."""
    from monitor.exports.encode import session_encoder
    from monitor.store.ecs import labelled_ecs_dict

    checked = 0
    encode = session_encoder()
    for s in store.sessions():
        record = labelled_ecs_dict(s, s.device, s.device_mac, s.owner, s.id)
        assert record == s.to_ecs() and list(record) == list(ECS_FIELDS)
        line, row = encode(s, s.device, s.device_mac, s.owner, s.id)
        assert line == json.dumps(record, ensure_ascii=False) + "\n"
        expected = s.to_csv_row()
        assert ["" if v is None else str(v) for v in row] == [expected[k] for k in ECS_FIELDS]
        checked += 1
    assert checked > 50


@pytest.mark.parametrize(("labeller", "ids_shown"), [("identity", True), ("aliases", False)])
def test_session_ids_only_in_identified_exports(store, tmp_path, labeller, ids_shown):
    sessions = list(store.sessions())[:20]
    labels = identity if labeller == "identity" else alias_labeller(Pseudonymiser({}))
    writer = ExportWriter(tmp_path / "out")
    seen = []
    n = write_sessions(writer, sessions, labels=labels, observe=lambda s, d, o: seen.append((s.id, d, o)))
    out, _ = writer.seal({})
    data = rows(out)
    assert n == len(data) == len(seen) == 20
    assert [r["social.session_id"] != "" for r in data] == [ids_shown] * 20
    lines = (out / "sessions.jsonl").read_text().splitlines()
    assert [list(json.loads(line)) for line in lines] == [list(ECS_FIELDS)] * 20
    assert [d for _, d, _ in seen] == [r["host.id"] for r in data]


def test_csv_header_is_the_field_table(tmp_path):
    writer = ExportWriter(tmp_path / "out")
    assert write_sessions(writer, []) == 0
    out, _ = writer.seal({})
    assert (out / "sessions.csv").read_text() == ",".join(ECS_FIELDS) + "\n"
    assert (out / "sessions.jsonl").read_text() == ""
