"""A gateway's term end to end, through the real CLI: sessions over months, coverage intervals, reviews, a
legal hold, shipping to a real central PostgreSQL store, local and central purges, subject access requests
(the gateway's and the trust's), the hold's release, and `verify` everywhere after each step.

The features were built apart (monitor.store.reviews, .holds, .coverage, .retention, .postgres.*); this
module holds them to each other. It mirrors no module, so it drives `monitor.cli` (every command here)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime

import pytest

from monitor.cli import main
from monitor.store.coverage import Interval, append_to_file
from monitor.store.postgres.central import CentralStore
from monitor.store.signing import key_path_for, load_or_create_key, public_key_text
from monitor.store.sqlite import SQLiteSessionStore
from tests import pg_server as pg
from tests.central_helpers import central_db, reader_role
from tests.store_helpers import event

pytestmark = pytest.mark.integration


def ts(day: str, hour: int = 9) -> float:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=UTC).timestamp()


# (session id, day, device, owner); every session is flagged (contact time); the store numbers them 1..
PLAN = [(1, "2026-09-22", "OAK-LT-0001", "S1001"), (2, "2026-09-23", "OAK-LT-0002", "S1002"),
        (3, "2026-10-06", "OAK-LT-0001", "S1001"), (4, "2026-10-07", "OAK-LT-0002", "S1002"),
        (5, "2026-12-08", "OAK-IP-0003", "S1003")]
COVERED = ["2026-09-22", "2026-10-06", "2026-12-08"]  # one hour of coverage each


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    text = out + "".join(x for x in err.splitlines(keepends=True) if "(from --config)" not in x)
    assert "Traceback" not in text
    return code, text


def records(path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT id, session_id, body FROM records ORDER BY id").fetchall()
    finally:
        con.close()


def kinds(path) -> dict[int, tuple[str, bool]]:
    """Record id -> (its kind: 'session N' or the body's key, whether its content is still there)."""
    out = {}
    for rid, sid, body in records(path):
        kind = f"session {sid}" if sid else (next(iter(json.loads(body))) if body else "?")
        out[rid] = (kind, body is not None)
    return out


def purge_record(path, rid: int) -> dict:
    return json.loads(dict((r, b) for r, _, b in records(path))[rid])["purge"]


def forge(note: str):
    def edit(con: sqlite3.Connection, rid: int) -> None:
        body = json.loads(con.execute("SELECT body FROM records WHERE id = ?", (rid,)).fetchone()[0])
        body["review"]["note"] = note
        con.execute("UPDATE records SET body = ? WHERE id = ?", (json.dumps(body, sort_keys=True), rid))
    return edit


def blank(con: sqlite3.Connection, rid: int) -> None:
    con.execute("UPDATE records SET body = NULL WHERE id = ?", (rid,))


def restore(con: sqlite3.Connection, rid: int) -> None:  # a blanked review given a body again
    con.execute("UPDATE records SET body = ? WHERE id = ?", ('{"review":{"note":"nothing found"}}', rid))


# what an insider does to the store at the end of term, and what `verify` must say (record 10: the released
# session's review, blanked by the second purge; 11: session 5's review, kept; 8: December's coverage, kept)
TAMPERS = [
    ("kept review edited", 11, forge("nothing to see"), "record 11 changed (content of the review"),
    ("kept coverage blanked", 8, blank, "record 8 blanked: a review or other chain entry erased"),
    ("purged review restored", 10, restore, "record 10 changed"),
    ("kept review blanked", 11, blank, "record 11 blanked"),
]


# reviews, holds and their releases are stamped with the clock when recorded: the term below is planned for
# a clock in late November 2026, so the clock runs from there, whatever day the suite runs on
TERM_CLOCK = ts("2026-11-30", 12)


def test_a_gateways_term_end_to_end(pg_server, write_config, example_data, tmp_path, capsys, monkeypatch):
    import time

    started, real_time = time.time(), time.time
    monkeypatch.setattr(time, "time", lambda: TERM_CLOCK + (real_time() - started))
    name, roles = central_db(pg_server, ["oak"])
    owner = pg_server.url(pg.SUPERUSER, name)
    store = tmp_path / "oak.db"
    example_data["store"] = {"path": "oak.db", "central": pg_server.url(roles["oak"], name),
                             "central_reader": pg_server.url(reader_role(pg_server, name), name)}
    example_data["gateway"] = {"id": "oak"}
    config = str(write_config(example_data))
    key = load_or_create_key(key_path_for(store))
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        admin.set_public_key("oak", public_key_text(key.public_key()))

    # the term: five flagged sessions over four months, an hour of coverage in three of them
    with SQLiteSessionStore(store) as local:
        for _, day, device, who in PLAN:
            local.write([event(ts(day), device=device, owner=who, local_date=day)])
    for day in COVERED:
        append_to_file(store, Interval(ts(day), ts(day, 10), sensor="live", observations=1), ts(day, 10))
    for sid in (1, 2, 5):
        code, out = run(capsys, "review", str(sid), "--outcome", "no action", "--note", f"looked at {sid}",
                        "--by", "dpo", "--reason", "weekly review", "--config", config)
        assert code == 0 and f"session {sid} version 1 reviewed: no action (record {sid // 2 + 9}" in out
    code, out = run(capsys, "hold", "--case", "C-1", "--device", "OAK-LT-0002", "--reason", "grievance",
                    "--config", config)
    assert code == 0 and "holding device OAK-LT-0002 (2 sessions stored now" in out and "record 12" in out
    assert kinds(store) == {**{i: (f"session {i}", True) for i in range(1, 6)},
                            6: ("coverage", True), 7: ("coverage", True), 8: ("coverage", True),
                            9: ("review", True), 10: ("review", True), 11: ("review", True),
                            12: ("hold", True)}
    code, out = run(capsys, "ship", "--once", "--config", config)
    assert code == 0 and "shipped 12 records" in out and "holds through record 12 of 12" in out

    # the gateway's purge at the end of January: S1001's old sessions go with their review and the old
    # coverage; S1002's laptop is held, so its sessions and their review stay
    code, out = run(capsys, "purge", "--now", "2027-01-20T00:00:00+00:00", "--config", config)
    assert code == 0 and "removed 2 sessions" in out and "(case C-1: 2)" in out and "chain head 13" in out
    assert purge_record(store, 13) == {"cutoff": ts("2026-10-22", 0), "sessions": [[1, 1], [3, 3]],
                                       "entries": [[6, 7], [9, 9]], "held": {"C-1": 2}}
    assert kinds(store) == {2: ("session 2", True), 3: ("session 3", False), 4: ("session 4", True),
                            5: ("session 5", True), 6: ("?", False), 7: ("?", False), 8: ("coverage", True),
                            9: ("?", False), 10: ("review", True), 11: ("review", True), 12: ("hold", True),
                            13: ("purge", True)}
    code, out = run(capsys, "ship", "--once", "--config", config)
    assert code == 0 and "shipped 1 records" in out and "holds through record 13 of 13" in out
    code, out = run(capsys, "verify", "--config", config)
    assert code == 0 and "chain ok: 12 records, 3 sessions, head 13, verified from checkpoint at record 1 (" \
        in out
    code, out = run(capsys, "verify", "--against", "central", "--config", config)
    assert code == 0 and "holds the central store's signed head 3 (record 11)" in out

    # the trust's purge in February: September and October go, but for what a hold keeps: S1001 under the
    # trust's own hold, S1002's laptop under the gateway's hold C-1, which reached the centre in the chain
    code, out = run(capsys, "central", "hold", "--case", "C-2", "--staff", "S1001", "--reason", "appeal",
                    "--url", owner)
    assert code == 0 and "case C-2: hold 1 on staff S1001" in out
    code, out = run(capsys, "central", "purge", "--retention-days", "90", "--now", "2027-02-15",
                    "--url", owner)
    assert code == 0 and "2026-09: dropped 0 sessions (1 records" in out and "kept 2 under legal hold" in out
    assert "2026-10: dropped 0 sessions (1 records" in out and "2 month(s) before 2026-11-17 dropped" in out
    code, out = run(capsys, "central", "verify", "--url", owner)
    assert code == 0 and "oak: 13 records verified, chain intact" in out

    # the held person asks for their data: the gateway and the trust both still have it, with the review
    sars = [((), "2 sessions about S1002 (searched"),
            (("--central",), "2 sessions about S1002 from the central store, recorded by 1 of 1")]
    for where, said in sars:
        out_dir = tmp_path / f"sar{len(where)}"
        code, out = run(capsys, "sar", "--staff", "S1002", *where, "--out", str(out_dir), "--config", config)
        assert code == 0 and said in out
        sessions = [json.loads(x) for x in (out_dir / "sessions.jsonl").read_text().splitlines()]
        assert sorted(x["social.session_id"] for x in sessions) == [2, 4]
        reviews = [json.loads(x) for x in (out_dir / "reviews.jsonl").read_text().splitlines()]
        assert [(x["session"], x["note"]) for x in reviews] == [(2, "looked at 2")]

    # the case closes: the next purge takes the laptop's sessions and their review, everywhere
    code, out = run(capsys, "hold", "--case", "C-1", "--release", "--reason", "closed", "--config", config)
    assert code == 0 and "released device OAK-LT-0002 (chain record 14)" in out
    code, out = run(capsys, "purge", "--now", "2027-01-21T00:00:00+00:00", "--config", config)
    assert code == 0 and "removed 2 sessions" in out and "legal hold" not in out and "chain head 15" in out
    assert purge_record(store, 15) == {"cutoff": ts("2026-10-23", 0), "sessions": [[2, 2], [4, 4]],
                                       "entries": [[10, 10]]}
    assert kinds(store) == {5: ("session 5", True), 6: ("?", False), 7: ("?", False), 8: ("coverage", True),
                            9: ("?", False), 10: ("?", False), 11: ("review", True), 12: ("hold", True),
                            13: ("purge", True), 14: ("hold", True), 15: ("purge", True)}
    code, out = run(capsys, "ship", "--once", "--config", config)
    assert code == 0 and "shipped 2 records" in out and "holds through record 15 of 15" in out
    code, out = run(capsys, "central", "purge", "--retention-days", "90", "--now", "2027-02-16",
                    "--url", owner)
    assert code == 0 and "0 month(s)" in out and "2 session(s) of released holds removed" in out
    code, out = run(capsys, "sar", "--staff", "S1002", "--central", "--out", str(tmp_path / "sar-after"),
                    "--config", config)
    assert code == 0 and "0 sessions about S1002 from the central store" in out
    code, out = run(capsys, "verify", "--config", config)
    assert code == 0 and "chain ok: 11 records, 1 sessions, head 15, verified from checkpoint at record 4 (" \
        in out
    code, out = run(capsys, "verify", "--against", "central", "--config", config)
    assert code == 0 and "holds the central store's signed head 4 (record 13)" in out
    code, out = run(capsys, "central", "verify", "--url", owner)
    assert code == 0 and "oak: 15 records verified, chain intact" in out

    # ... and an insider's edit to any session-0 entry, kept or blanked, is caught
    for what, rid, tamper, said in TAMPERS:
        copy = tmp_path / f"{what.replace(' ', '-')}.db"
        shutil.copy(store, copy)
        shutil.copy(key_path_for(store), key_path_for(copy))
        con = sqlite3.connect(copy)
        with con:
            tamper(con, rid)
        con.close()
        code, out = run(capsys, "verify", str(copy), "--config", config)
        assert code == 1 and said in out, (what, out)
