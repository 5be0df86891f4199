"""evidence.jsonl: each record recomputed without the gateway; any edit to one is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.exports.evidence import EVIDENCE, check_evidence, record_problem, write_evidence
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event


@pytest.fixture
def export_dir(tmp_path) -> tuple[Path, dict]:
    """A directory holding evidence.jsonl and sessions.jsonl for three sessions of a real store."""
    with open_store(tmp_path / "s.db") as store:
        store.write([event(T0 + i * 1000, device=f"OAK-{i}") for i in range(3)])
        head = store.chain_head()
        d = tmp_path / "out"
        d.mkdir()
        with (d / EVIDENCE).open("w") as fh:
            assert write_evidence(fh, store.evidence()) == 3
        (d / "sessions.jsonl").write_text("".join(line + "\n" for line in store.ecs_json()))
    return d, {"chain_head": {"record_id": head.record_id, "hash": head.hash}}


def edit(d: Path, index: int, change) -> None:
    lines = [json.loads(x) for x in (d / EVIDENCE).read_text().splitlines()]
    change(lines[index])
    (d / EVIDENCE).write_text("".join(json.dumps(x) + "\n" for x in lines))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (None, None),
        (lambda r: r.update(body=r["body"].replace("OAK-1", "OAK-9")), "content does not match its digest"),
        (lambda r: r.update(recorded_at=r["recorded_at"] + 1), "its hash does not match its fields"),
        (lambda r: r.update(body_sha256="0" * 64), "content does not match its digest"),
        (lambda r: r.update(record_id=99), "its hash does not match its fields"),
        (lambda r: r.pop("hash"), "not an evidence record"),
    ],
    ids=["untouched", "content-edited", "time-edited", "digest-edited", "id-edited", "field-missing"],
)
def test_record_problems(export_dir, change, message):
    d, manifest = export_dir
    if change is not None:
        edit(d, 1, change)
    ok, line = check_evidence(d, manifest)
    assert ok is (message is None), line
    if message:
        assert line.startswith(f"{EVIDENCE}:2: ") and message in line


def test_a_record_after_the_manifests_head_is_named(export_dir):
    d, _manifest = export_dir
    line = json.loads((d / EVIDENCE).read_text().splitlines()[-1])
    assert record_problem(line, line["record_id"]) is None
    assert "after the chain head the manifest names" in (record_problem(line, line["record_id"] - 1) or "")


def test_records_must_match_the_sessions_exported(export_dir):
    d, manifest = export_dir
    lines = (d / "sessions.jsonl").read_text().splitlines()
    (d / "sessions.jsonl").write_text("\n".join(lines[:2]) + "\n")  # one session fewer than records
    ok, line = check_evidence(d, manifest)
    assert not ok and "3 records for 2 sessions exported" in line
