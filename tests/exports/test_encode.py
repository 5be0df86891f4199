"""sessions.csv and sessions.jsonl: one pass, the same records as the store's own encoders."""

from __future__ import annotations

import json

import pytest

from monitor.exports.encode import write_sessions
from monitor.exports.pseudonyms import Pseudonymiser, alias_labeller, identity
from monitor.exports.sealed import ExportWriter
from monitor.store.ecs import ECS_FIELDS
from tests.export_helpers import rows


def test_ecs_and_csv_match_session_encoders(store):
    import random

    from monitor.exports.encode import session_encoder
    from monitor.observation import iso_utc
    from monitor.store.ecs import ECS_FIELDS, iso_ms, labelled_ecs_dict

    checked = 0
    encode = session_encoder()
    for s in store.sessions():
        ecs = labelled_ecs_dict(s, s.device, s.device_mac, s.owner, s.id)
        assert ecs == s.to_ecs() and list(ecs) == list(ECS_FIELDS)
        line, row = encode(s, s.device, s.device_mac, s.owner, s.id)
        assert line.endswith("\n") and line.count("\n") == 1
        assert json.loads(line) == ecs and list(json.loads(line)) == list(ECS_FIELDS)
        assert line == json.dumps(ecs, ensure_ascii=False) + "\n"
        expected = s.to_csv_row()
        got = ["" if v is None else str(v) for v in row]
        assert got == [expected[k] for k in ECS_FIELDS]
        checked += 1
    assert checked > 50
    rnd = random.Random(3)
    edges = [0.0, 1.0005, 1790000000.9995, 1790000000.9999996, -1.5, 86400.0, 86399.9999996, -0.0000004]
    for ts in [*edges, *(rnd.uniform(0, 2e9) for _ in range(3000))]:
        assert iso_ms(ts) == iso_utc(ts), ts


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
