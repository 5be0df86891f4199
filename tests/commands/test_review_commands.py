"""`review` through `social-monitor`'s main(), on a real SQLite store: chain, exports, SAR, verify, purge."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store.chain import body_digest, record_hash
from monitor.store.filter import SessionFilter
from monitor.store.sqlite import open_store
from tests.export_helpers import jsonl, populate, rows

NOV = ("--from", "2026-11-02", "--to", "2026-11-29")
NOTE = "Spoke to them on Monday; agreed to keep it to the staff room."
OK = ["--outcome", "no action", "--by", "A", "--reason", "r"]


@pytest.fixture(scope="module")
def seed(example_config, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "store.db"
    populate(example_config, path).close()
    return path


@pytest.fixture
def trust(example_data, write_config, tmp_path, seed) -> Path:
    (tmp_path / "var").mkdir()
    shutil.copy(seed, tmp_path / "var" / "store.db")
    example_data["store"]["path"] = str(tmp_path / "var" / "store.db")
    return write_config(example_data)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "var" / "store.db"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def flagged_of(db: Path, owner: str) -> int:
    with open_store(db, create=False) as store:
        return next(s.id for s in store.sessions(SessionFilter(flagged=True, owner=owner)) if s.id)


def unflagged(db: Path) -> int:
    with open_store(db, create=False) as store:
        return next(s.id for s in store.sessions() if not s.flagged and s.id)


def review(capsys, trust: Path, session: int, outcome: str = "personal use: spoken to",
           note: str = NOTE) -> tuple[int, str, str]:
    return run(capsys, "review", str(session), "--config", str(trust), "--outcome", outcome, "--note", note,
               "--by", "Mrs Patel (deputy head)", "--reason", "weekly review of flags, November")


def records(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, session_id, body FROM records ORDER BY id").fetchall()
    finally:
        con.close()


def log_lines(db: Path) -> list[dict]:
    path = db.with_name(db.name + ".exports.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_review_round_trips_through_store_exports_sar_and_verify(trust, db, tmp_path, capsys):
    sid = flagged_of(db, "S2005")
    before = {rid: body for rid, session, body in records(db) if session == sid}
    code, text, err = review(capsys, trust, sid)
    assert code == 0, err
    assert f"session {sid} version 1 reviewed: personal use: spoken to" in text
    assert "logged as export 1" in text
    # the session's own records are untouched, and the chain still verifies
    assert {rid: body for rid, session, body in records(db) if session == sid} == before
    code, text, err = run(capsys, "verify", "--config", str(trust))
    assert code == 0 and "chain ok" in text, err

    code, text, _ = run(capsys, "review", "--list", "--format", "jsonl", "--config", str(trust))
    listed = [json.loads(line) for line in text.splitlines()]
    assert [(r["session"], r["outcome"], r["by"], r["current"]) for r in listed] == [
        (sid, "personal use: spoken to", "Mrs Patel (deputy head)", True)]

    entry = log_lines(db)[-1]
    assert (entry["kind"], entry["subject"], entry["reason"], entry["extra"]["session"]) == (
        "review", "S2005", "weekly review of flags, November", sid)

    named = tmp_path / "named"
    code, _, err = run(capsys, "export", "--config", str(trust), "--school", "ash-secondary", *NOV, "--out",
                       str(named), "--identify", "--reason", "INV-2026-07")
    assert code == 0, err
    row = next(r for r in rows(named) if r["social.session_id"] == str(sid))
    assert (row["social.review.status"], row["social.review.outcome"], row["social.review.note"]) == (
        "reviewed", "personal use: spoken to", NOTE)
    line = next(r for r in jsonl(named) if r["social.session_id"] == sid)
    assert line["social.review.outcome"] == "personal use: spoken to" and line["social.review.version"] == 1
    opened = [r for r in rows(named) if r["social.review.status"] == "open"]
    assert opened and all(r["social.flagged"] == "true" for r in opened)
    html = (named / "report.html").read_text()
    assert f"Reviewed: 1 of {len(opened) + 1} flagged accesses; open: {len(opened)}" in html
    assert "Personal use: spoken to: Mrs Patel (deputy head)" in html
    manifest = json.loads((named / "manifest.json").read_text())
    assert manifest["reviews"] == {"reviewed": 1, "open": len(opened)}
    assert run(capsys, "verify", str(named), "--config", str(trust))[0] == 0

    plain = tmp_path / "plain"
    assert run(capsys, "export", "--config", str(trust), "--school", "ash-secondary", *NOV, "--out",
               str(plain))[0] == 0
    reviewed = [r for r in rows(plain) if r["social.review.status"] == "reviewed"]
    assert len(reviewed) == 1 and reviewed[0]["social.review.note"].startswith("[withheld")
    assert "Spoke to them" not in (plain / "sessions.jsonl").read_text() + (plain / "report.html").read_text()

    sar = tmp_path / "sar"
    assert run(capsys, "sar", "--config", str(trust), "--staff", "S2005", "--out", str(sar))[0] == 0
    history = [json.loads(x) for x in (sar / "reviews.jsonl").read_text().splitlines()]
    assert [(h["session"], h["note"], h["current"]) for h in history] == [
        (sid, NOTE, True)]
    assert next(r for r in rows(sar) if r["social.session_id"] == str(sid))["social.review.outcome"]
    assert run(capsys, "verify", str(sar))[0] == 0


def test_a_later_review_supersedes_and_both_stay(trust, db, tmp_path, capsys):
    sid = flagged_of(db, "S2002")
    assert review(capsys, trust, sid)[0] == 0
    code, text, err = review(capsys, trust, sid, "teaching use", "Year 9 lesson on media literacy.")
    assert code == 0, err
    first = next(r["record_id"] for r in map(json.loads, run(
        capsys, "review", str(sid), "--list", "--format", "jsonl", "--config", str(trust))[1].splitlines()))
    assert f"supersedes review {first}" in text
    code, text, _ = run(capsys, "review", "--list", "--config", str(trust))
    states = [" current " in line for line in text.splitlines()[1:]], ["superseded" in line
                                                                       for line in text.splitlines()[1:]]
    assert states == ([False, True], [True, False])
    out = tmp_path / "x"
    assert run(capsys, "export", "--config", str(trust), "--school", "ash-secondary", *NOV, "--out", str(out),
               "--identify", "--reason", "check")[0] == 0
    assert next(r for r in rows(out) if r["social.session_id"] == str(sid))["social.review.outcome"] == \
        "teaching use"
    assert run(capsys, "verify", "--config", str(trust))[0] == 0


@pytest.mark.parametrize(
    ("argv", "message", "exit_code"),
    [
        (["999999", *OK], "session 999999: no such session", 1),
        (["UNFLAGGED", *OK], "is not flagged", 1),
        (["FLAGGED", *OK, "--outcome", "told off"], "--outcome: 'told off' is not an outcome", 2),
        (["FLAGGED", "--outcome", "no action", "--by", "A"], "--reason: required", 2),
        (["FLAGGED", "--outcome", "no action", "--by", "A", "--reason", "   "], "--reason: required", 2),
        (["FLAGGED", "--outcome", "no action", "--reason", "r"], "--by: required", 2),
        (["FLAGGED", "--by", "A", "--reason", "r"], "--outcome: nothing is not an outcome", 2),
        (["abc", *OK], "session 'abc': not a session id", 2),
        (["--outcome", "no action", "--by", "A", "--reason", "r"], "give the session id", 2),
        (["FLAGGED", *OK, "--by", "A\x1b[2J"], "--by: control character", 2),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(trust, db, capsys, argv, message, exit_code):
    names = {"FLAGGED": str(flagged_of(db, "S2005")), "UNFLAGGED": str(unflagged(db))}
    argv = [names.get(a, a) for a in argv]
    before, log_before = records(db), log_lines(db)
    code, text, err = run(capsys, "review", *argv, "--config", str(trust))
    problems = [line for line in err.splitlines() if not line.startswith("social-monitor: config ")]
    assert code == exit_code and len(problems) == 1 and message in problems[0], err
    assert records(db) == before and log_lines(db) == log_before and text == ""


def _last_review(db: Path) -> tuple[int, str]:
    return next((rid, body) for rid, session, body in reversed(records(db)) if session == 0 and body)


def _tamper(db: Path, sql: str, *params: object) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute(sql, params)
    con.close()


def _rehash(db: Path, rid: int, body: str) -> None:
    """Rewrite one record's body, digest and hash consistently (what a careful forger does)."""
    con = sqlite3.connect(db)
    with con:
        _id, sid, version, at, prev = con.execute(
            "SELECT id, session_id, version, recorded_at, prev_hash FROM records WHERE id = ?", (rid,)
        ).fetchone()
        digest = body_digest(body)
        con.execute("UPDATE records SET body = ?, body_sha256 = ?, hash = ? WHERE id = ?",
                    (body, digest, record_hash(rid, sid, version, at, digest, prev), rid))
    con.close()


def _append_forged(db: Path, body: str) -> None:
    con = sqlite3.connect(db)
    with con:
        rid, prev, at = con.execute(
            "SELECT id, hash, recorded_at FROM records ORDER BY id DESC LIMIT 1").fetchone()
        digest = body_digest(body)
        con.execute("INSERT INTO records VALUES (?, 0, 1, ?, ?, ?, ?, ?)", (
            rid + 1, at, body, digest, prev, record_hash(rid + 1, 0, 1, at, digest, prev)))
    con.close()


def _unflagged_review(db: Path, rid: int, body: str, other: tuple[int, int]) -> None:
    forged = json.loads(body)
    forged["review"].update(session=other[0], record=other[1])
    _append_forged(db, json.dumps(forged, sort_keys=True, separators=(",", ":")))


# how the review record is altered, and what `verify` says
TAMPERING = {
    "outcome edited in place": (lambda db, rid, body, other: _tamper(
        db, "UPDATE records SET body = ? WHERE id = ?", body.replace("spoken to", "formal action"), rid),
        "changed (content of the review does not match its digest)"),
    "outcome edited and rehashed": (lambda db, rid, body, other: _rehash(
        db, rid, body.replace("spoken to", "formal action")),
        "is not the one the store's own last signed head"),
    "review blanked as if purged": (lambda db, rid, body, other: _tamper(
        db, "UPDATE records SET body = NULL WHERE id = ?", rid),
        "blanked: a review or other chain entry erased"),
    "forged review of an unflagged session": (_unflagged_review, "which was not flagged"),
    "forged review naming a version the session never had": (lambda db, rid, body, other: _append_forged(
        db, body.replace('"version":1', '"version":7').replace('"supersedes":null', f'"supersedes":{rid}')),
        "which is not that version"),
    "forged review skipping the one before": (lambda db, rid, body, other: _append_forged(db, body),
                                               "supersedes review None"),
    "forged review with an unknown outcome": (lambda db, rid, body, other: _append_forged(
        db, body.replace("personal use: spoken to", "dismissed")), "a review social-monitor does not write"),
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_verify_catches_an_altered_review(trust, db, capsys, how):
    assert review(capsys, trust, flagged_of(db, "S2005"))[0] == 0
    assert run(capsys, "verify", "--config", str(trust))[0] == 0
    rid, body = _last_review(db)
    with open_store(db, create=False) as store:
        other = store.session(unflagged(db))
        assert other is not None and other.id and other.record_id
    tamper, message = TAMPERING[how]
    tamper(db, rid, body, (other.id, other.record_id))
    code, _, err = run(capsys, "verify", "--config", str(trust))
    assert code == 1 and message in err, err


def test_a_review_goes_with_its_session_when_purged(trust, db, capsys):
    sid = flagged_of(db, "S2005")
    assert review(capsys, trust, sid)[0] == 0
    rid, _ = _last_review(db)
    code, _text, err = run(capsys, "purge", "--config", str(trust), "--now", "2027-12-01T00:00")
    assert code == 0, err
    purge = json.loads(next(body for _, session, body in reversed(records(db)) if session == 0 and body))
    assert [rid, rid] in purge["purge"]["entries"]
    assert run(capsys, "verify", "--config", str(trust))[0] == 0
    assert run(capsys, "review", "--list", "--format", "jsonl", "--config", str(trust))[1] == ""
    code, _, err = review(capsys, trust, sid)
    assert code == 1 and "no such session" in err
