"""Eighteen ways an insider could tamper with a store holding real sessions and a signed export of it.

Each attack is applied to the store file with plain SQL (as someone with the file and, for the
rewrites, the signing key would), then `social-monitor verify STORE --against EXPORT_DIR` must
fail and name it. The first twelve were caught before signed heads; the last six need the purge
records, the version rules or an anchor held off the box.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.observation import Exemption, Flag
from monitor.store import anchors
from monitor.store.chain import ChainHead, body_digest, record_hash
from monitor.store.codec import session_row
from monitor.store.schema import SESSION_COLUMNS
from monitor.store.sessions import Session, canonical_json
from monitor.store.signing import key_path_for, load_or_create_key, public_key_text
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0
FLAGGED = 3  # session 3: flagged, two versions (records 5 and 6); record 4 is the purge's
LIVE = 4  # session 4: three versions (records 7, 8, 9)


@pytest.fixture
def gateway(tmp_path, capsys):
    """The example trust's config with a store holding a purged session (a checkpoint), multi-version
    sessions and ten newer sessions; then a signed export of it. Returns (config, store, export)."""
    folder = tmp_path / "config"
    shutil.copytree(REPO / "config", folder)
    config = folder / "example.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["store"]["path"] = str(tmp_path / "store.db")
    config.write_text(yaml.safe_dump(raw))
    db = tmp_path / "store.db"
    with open_store(db) as store:
        store.write([event(T0 - 100 * DAY, device="OLD-0001", local_date="2026-06-13")], now=T0 - 100 * DAY)
        store.write([event(T0, device="OAK-0002", flags=())], now=T0 + 1)
        store.write([event(T0 + 60, device="OAK-0002", flags=(), protocol="dns")], now=T0 + 61)
        store.purge(30, now=T0 + 100)  # session 1 goes: a purge record, then a checkpoint
        store.write([event(T0 + 200)], now=T0 + 201)
        store.write([event(T0 + 260, protocol="dns")], now=T0 + 261)
        for i in range(3):
            store.write([event(T0 + 400 + i * 60, device="OAK-0003", zone="staff-room", flags=(),
                               protocol=("tls", "dns", "quic")[i])], now=T0 + 401 + i * 60)
        for i in range(10):
            store.write([event(T0 + 2000 + i * 1000, device=f"OAK-1{i:03d}")], now=T0 + 2001 + i * 1000)
        assert store.verify().ok
    capsys.readouterr()
    out = tmp_path / "export"
    assert main(["export", "--config", str(config), "--school", "oak-primary", "--from", "2026-09-01",
                 "--to", "2026-09-30", "--out", str(out), "--today", "2026-10-01"]) == 0
    return config, db, out


def layout(db: Path) -> dict[int, list[int]]:
    """session id -> its record ids, oldest first."""
    con = sqlite3.connect(db)
    found: dict[int, list[int]] = {}
    for rid, sid in con.execute("SELECT id, session_id FROM records ORDER BY id"):
        found.setdefault(sid, []).append(rid)
    con.close()
    return found


def rehash_from(con: sqlite3.Connection, first: int) -> None:
    """Recompute every record's digest and link from `first` on, as a careful forger would."""
    prev = con.execute("SELECT hash FROM records WHERE id < ? ORDER BY id DESC LIMIT 1", (first,)).fetchone()
    if prev is None:
        prev = con.execute("SELECT hash FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
    link = prev[0]
    rows = con.execute("SELECT id, session_id, version, recorded_at, body, body_sha256 FROM records "
                       "WHERE id >= ? ORDER BY id", (first,)).fetchall()
    for rid, sid, version, at, body, digest in rows:
        digest = body_digest(body) if body is not None else digest
        h = record_hash(rid, sid, version, at, digest, link)
        con.execute("UPDATE records SET body_sha256 = ?, prev_hash = ?, hash = ? WHERE id = ?",
                    (digest, link, h, rid))
        link = h


def session_of(body: dict) -> Session:
    body = dict(body)
    body["signals"], body["hostnames"] = tuple(body["signals"]), tuple(body["hostnames"])
    body["flags"] = tuple(Flag(**f) for f in body["flags"])
    body["exemption"] = Exemption(**body["exemption"]) if body["exemption"] else None
    return Session(**body)


def set_row(con: sqlite3.Connection, body: dict, record_id: int) -> None:
    s = session_of(body)
    s.record_id = record_id
    assignments = ", ".join(f"{c} = ?" for c in SESSION_COLUMNS)
    con.execute(f"UPDATE sessions SET {assignments} WHERE id = ?", (*session_row(s), s.id))


def resign(con: sqlite3.Connection, db: Path) -> None:
    """A root insider holds the key: the store's own last signed head is made to fit the forgery."""
    anchors.record_signed(con, load_or_create_key(key_path_for(db)), None, "interval", T0 + 99999)


# --- the attacks: each gets the open connection and the store's layout --------------------------------


def sql(*statements: str):
    def attack(con, _db, _ids):
        for statement in statements:
            con.execute(statement)
    return attack


def swap_records(con, _db, ids):
    a, b = ids[LIVE][0], ids[LIVE][1]
    con.execute("UPDATE records SET id = -1 WHERE id = ?", (a,))
    con.execute("UPDATE records SET id = ? WHERE id = ?", (a, b))
    con.execute("UPDATE records SET id = ? WHERE id = -1", (b,))


def edit_and_rehash_one(con, _db, ids):
    rid = ids[LIVE][0]
    body = con.execute("SELECT body FROM records WHERE id = ?", (rid,)).fetchone()[0].replace("OAK-0003",
                                                                                             "OAK-0009")
    con.execute("UPDATE records SET body = ?, body_sha256 = ? WHERE id = ?", (body, body_digest(body), rid))
    at, sid, version, prev = con.execute("SELECT recorded_at, session_id, version, prev_hash FROM records "
                                         "WHERE id = ?", (rid,)).fetchone()
    con.execute("UPDATE records SET hash = ? WHERE id = ?",
                (record_hash(rid, sid, version, at, body_digest(body), prev), rid))


def insert_session_row(con, _db, _ids):
    cols = ", ".join(c if c not in ("id", "record_id") else {"id": "99", "record_id": "999"}[c]
                     for c in SESSION_COLUMNS)
    names = ", ".join(SESSION_COLUMNS)
    con.execute(f"INSERT INTO sessions ({names}) SELECT {cols} FROM sessions WHERE id = 2")


def delete_as_if_purged(con, _db, _ids):
    con.execute("UPDATE records SET body = NULL WHERE session_id = ?", (FLAGGED,))
    con.execute("DELETE FROM sessions WHERE id = ?", (FLAGGED,))


def erase_history(con, _db, ids):
    con.execute(f"UPDATE records SET body = NULL WHERE id IN ({', '.join(map(str, ids[LIVE][:-1]))})")


def forge_unflagging_version(con, db, ids):
    """A correctly hashed newer version of the flagged session, appended at the head, with no flags."""
    last = ids[FLAGGED][-1]
    body = json.loads(con.execute("SELECT body FROM records WHERE id = ?", (last,)).fetchone()[0])
    body.update(version=body["version"] + 1, flags=[], observations=body["observations"] + 1)
    text = canonical_json(body)
    head_id, head_hash = con.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone()
    rid, at = head_id + 1, T0 + 50000.0
    con.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (rid, FLAGGED, body["version"], at, text, body_digest(text), head_hash,
                 record_hash(rid, FLAGGED, body["version"], at, body_digest(text), head_hash)))
    set_row(con, body, rid)
    resign(con, db)


def truncate_newest_ten(con, db, _ids):
    (head,) = con.execute("SELECT MAX(id) FROM records").fetchone()
    con.execute("DELETE FROM records WHERE id > ?", (head - 10,))
    con.execute("DELETE FROM sessions WHERE record_id > ?", (head - 10,))
    con.execute("DELETE FROM store_meta WHERE name = 'signed_head'")  # and the store's own anchor


def reattribute(con, db, ids):
    """Every version of the flagged session given to another person, the chain rehashed from there."""
    for rid in ids[FLAGGED]:
        body = json.loads(con.execute("SELECT body FROM records WHERE id = ?", (rid,)).fetchone()[0])
        body["owner"] = "staff-0999"
        con.execute("UPDATE records SET body = ? WHERE id = ?", (canonical_json(body), rid))
    set_row(con, body, ids[FLAGGED][-1])
    rehash_from(con, ids[FLAGGED][0])
    resign(con, db)


def delete_renumber_rehash(con, db, ids):
    """The flagged session gone without trace: its records out, later ids closed up, links rehashed."""
    gone = ids[FLAGGED]
    con.execute("DELETE FROM sessions WHERE id = ?", (FLAGGED,))
    con.execute(f"DELETE FROM records WHERE id IN ({', '.join(map(str, gone))})")
    for rid in range(gone[-1] + 1, max(max(v) for v in ids.values()) + 1):
        con.execute("UPDATE records SET id = ? WHERE id = ?", (rid - len(gone), rid))
        con.execute("UPDATE sessions SET record_id = ? WHERE record_id = ?", (rid - len(gone), rid))
    rehash_from(con, gone[0])
    resign(con, db)


ATTACKS = [
    # caught before signed heads
    ("record body edited",
     sql("UPDATE records SET body = replace(body, 'facebook', 'linkedin') WHERE id = 7"),
     "record 7 changed (content of session 4"),
    ("record timestamp edited", sql("UPDATE records SET recorded_at = recorded_at + 60 WHERE id = 7"),
     "record 7 changed"),
    ("record hash overwritten", sql(f"UPDATE records SET hash = '{'f' * 64}' WHERE id = 7"),
     "record 7 changed"),
    ("record deleted", sql("DELETE FROM records WHERE id = 8"), "record 8 removed"),
    ("record inserted with a wrong hash",
     sql("INSERT INTO records SELECT MAX(id) + 1, 3, 9, 1.0, NULL, 'x', 'y', 'z' FROM records"), "inserted"),
    ("records reordered", swap_records, "record 7"),
    ("record edited and its own hash recomputed", edit_and_rehash_one,
     "record 7 changed (record 8 no longer"),
    ("checkpoint altered", sql(f"UPDATE checkpoints SET hash = '{'d' * 64}'"), "checkpoint at record 1 was"),
    ("session row edited", sql("UPDATE sessions SET observations = 99 WHERE id = 4"),
     "session 4 changed (it differs from record 9)"),
    ("flagged column cleared", sql("UPDATE sessions SET flagged = 0 WHERE id = 3"),
     "session 3 changed (its index columns"),
    ("session row deleted", sql("DELETE FROM sessions WHERE id = 3"), "session 3 removed"),
    ("session row inserted", insert_session_row, "session 99 inserted (its record 999 does not exist)"),
    # the six of issue 20
    ("flagged session deleted as if purged", delete_as_if_purged,
     "session 3 removed (record 5 was blanked, but no purge recorded in the chain removed that session)"),
    ("older versions of a live session blanked", erase_history,
     "record 7 blanked: session 4 is still recorded"),
    ("forged newer version that unflags", forge_unflagging_version,
     "it drops the flag contact_time the version before had"),
    ("newest ten records truncated", truncate_newest_ten, "is not in the store (its chain ends at record"),
    ("chain rewritten to re-attribute a session", reattribute, "the chain was rewritten at or before record"),
    ("session deleted, ids renumbered, chain rehashed", delete_renumber_rehash,
     "is not in the store (its chain ends at record"),
]


@pytest.mark.parametrize(("attack", "named"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_verify_against_the_export_names_each_attack(gateway, capsys, attack, named):
    _config, db, out = gateway
    ids = layout(db)
    assert ids[FLAGGED] == [5, 6] and ids[LIVE] == [7, 8, 9]  # the layout the table's numbers assume
    assert main(["verify", str(db), "--against", str(out)]) == 0
    con = sqlite3.connect(db)
    attack(con, db, ids)
    con.commit()
    con.close()
    capsys.readouterr()
    assert main(["verify", str(db), "--against", str(out)]) == 1
    err = capsys.readouterr().err
    assert named in err, err


@pytest.mark.parametrize("needs_anchor", ["newest ten records truncated", "chain rewritten to re-attribute a "
                                          "session", "session deleted, ids renumbered, chain rehashed"])
def test_the_rewrites_pass_without_an_anchor(gateway, capsys, needs_anchor):
    """Why --against exists: these three leave a store that is whole in itself."""
    _config, db, _out = gateway
    attack = next(a[1] for a in ATTACKS if a[0] == needs_anchor)
    con = sqlite3.connect(db)
    attack(con, db, layout(db))
    con.commit()
    con.close()
    assert main(["verify", str(db)]) == 0


def test_contains_head_compacted_by_retention_is_not_a_fault(gateway):
    _config, db, _out = gateway
    con = sqlite3.connect(db)
    cp = ChainHead(*con.execute("SELECT through_record, hash FROM checkpoints").fetchone())
    assert anchors.contains(con, cp, cp, "x") is None
    assert anchors.contains(con, ChainHead(cp.record_id, "0" * 64), cp, "x").kind == "changed"
    assert anchors.contains(con, ChainHead(10_000, "0" * 64), cp, "x").kind == "removed"
    con.close()


def test_check_heads_refuses_a_head_under_another_key(gateway):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _config, db, _out = gateway
    con = sqlite3.connect(db)
    head = anchors.last_signed(con)
    held, fault = anchors.check_heads(con, [head], None, Ed25519PrivateKey.generate().public_key())
    assert held == 0 and "not the expected key" in str(fault)
    own = load_or_create_key(key_path_for(db)).public_key()
    assert anchors.check_heads(con, [head], None, own) == (1, None)
    assert head.key == public_key_text(own)
    con.close()


def test_whole_chain_rewrite_is_caught_against_a_journal_line(gateway, capsys, tmp_path):
    """The head as the journal keeps it (journalctl's prefix included) is an anchor on its own."""
    import sys

    from monitor import logsetup

    _config, db, _out = gateway
    logsetup.configure(sys.stderr)
    capsys.readouterr()
    with open_store(db, create=False) as store:
        store.sign_head(load_or_create_key(key_path_for(db)), "interval")
    [line] = [x for x in capsys.readouterr().err.splitlines() if "chain_head_signed" in x]
    journal = tmp_path / "journal.txt"
    journal.write_text(f"Nov 30 09:52:21 gw social-monitor[812]: {line}\nNov 30 09:52:22 gw other: hello\n")
    assert main(["verify", str(db), "--against", str(journal)]) == 0
    con = sqlite3.connect(db)
    reattribute(con, db, layout(db))
    con.commit()
    con.close()
    capsys.readouterr()
    assert main(["verify", str(db)]) == 0  # whole in itself, re-signed with the gateway's own key
    assert main(["verify", str(db), "--against", str(journal)]) == 1
    err = capsys.readouterr().err
    assert f"chain broken against {journal}: changed: record 19 is not the one signed head 2" in err, err


def _forge_csv(out: Path) -> None:
    """A CSV edit with the manifest's hash fixed to match: consistent, but not re-signed."""
    import hashlib

    forged = (out / "sessions.csv").read_text().replace("classrooms", "staff-room", 1)
    (out / "sessions.csv").write_text(forged)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["sessions.csv"] = {"sha256": hashlib.sha256(forged.encode()).hexdigest(),
                                         "bytes": len(forged.encode())}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


@pytest.mark.integration
@pytest.mark.parametrize(("forge", "code", "said"), [
    (None, 0, "manifest.json: signed by key"),
    (_forge_csv, 1, "manifest.json: SIGNATURE DOES NOT MATCH"),
], ids=["as exported", "csv edited, manifest hash fixed"])
def test_an_export_verifies_on_a_machine_with_only_the_public_key(gateway, tmp_path, forge, code, said):
    """No config, no store, no key file: a fresh HOME and working folder, and the key as text."""
    import os
    import subprocess
    import sys

    _config, db, out = gateway
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    copy = elsewhere / "export"
    shutil.copytree(out, copy)
    (elsewhere / "gateway.pub").write_text(public_key_text(load_or_create_key(key_path_for(db)).public_key()))
    if forge is not None:
        forge(copy)
    env = {"PATH": os.environ["PATH"], "HOME": str(elsewhere), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "monitor", "verify", str(copy), "--public-key",
                           str(elsewhere / "gateway.pub")], capture_output=True, text=True, timeout=60,
                          cwd=elsewhere, env=env)
    assert done.returncode == code, done.stderr
    assert said in done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "social-monitor: config" not in done.stderr  # none was read
