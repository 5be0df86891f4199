"""Write v1-store.db: a small store as gateways in the field hold it (schema version 1).

The file must come from the release that wrote schema 1 (commit 7000616), not from the
code beside this script, so run it with that release on the path:

    git worktree add --detach /tmp/sm-old 7000616
    PYTHONPATH=/tmp/sm-old python tests/data/store/make_v1_store.py tests/data/store
    git worktree remove /tmp/sm-old

It holds a purged session (compacted into a checkpoint), a flagged session extended by a
later write (version 2), an exempt one, an unflagged one with no owner, unicode and quotes
in hostnames and the exemption, a second school, and a write after the purge.
Beside it, v1-store.expected.json records what that release read back (chain head,
verify summary, every session as its ECS JSON line); tests/store/test_schema.py holds
today's code to it.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

from monitor.observation import Exemption
from monitor.store.sqlite import open_store
from tests.store_helpers import CONTACT, PUPILS, T0, event

DAY = 86400.0


def build(out_dir: Path) -> None:
    db = out_dir / "v1-store.db"
    for stale in out_dir.glob("v1-store.db*"):
        stale.unlink()
    exempt = Exemption("marketing-team", 'posts "for" the school — ünïcode', "4.1")
    with open_store(db, idle_gap=300) as store:
        # an old session, extended once: both its records are purged into the checkpoint below
        old = T0 - 40 * DAY
        store.write([event(old, device="OAK-0009", local_date="2026-08-12")], now=old + 1)
        store.write([event(old + 60, device="OAK-0009", local_date="2026-08-12", protocol="dns")],
                    now=old + 61)
        # flagged in a classroom, then extended by the proxy in a later batch: version 2
        store.write([event(T0), event(T0 + 1, protocol="dns")], now=T0 + 10)
        store.write([event(T0 + 100, source="proxy", hostname="m.facebook.com", flags=(CONTACT, PUPILS))],
                    now=T0 + 200)
        # exempt (4.1), with quotes and unicode in the exemption text
        store.write([event(T0 + 1000, device="OAK-0003", zone="school-office", exemption=exempt,
                           hostname="www.linkedin.com", platform="linkedin")], now=T0 + 1001)
        # allowed: staff room at lunch, no owner, an IDN-ish hostname with a quote and a comma
        store.write([event(T0 + 2000, device="OAK-0002", zone="staff-room", period="Lunch",
                           period_kind="non-contact", flags=(), owner=None, platform="youtube",
                           hostname='ünï,"code".youtube.com')], now=T0 + 2001)
        # another school
        store.write([event(T0 + 3000, device="ASH-LT-0002", school="ash-secondary", platform="tiktok",
                           protocol="quic")], now=T0 + 3001)
        result = store.purge(30, now=T0 + 4000)
        assert result.sessions_removed == 1 and result.checkpoint is not None, result
        # the chain carries on past the checkpoint
        store.write([event(T0 + 5000, platform="instagram", period=None, period_kind="closed")],
                    now=T0 + 5001)
        check = store.verify()
        assert check.ok, check.summary()
        head = store.chain_head()
        expected = {
            "made_by": "commit 7000616 (schema 1), tests/data/store/make_v1_store.py",
            "chain_head": {"record_id": head.record_id, "hash": head.hash},
            "verify": check.summary(),
            "records": check.records,
            "sessions": check.sessions,
            "checkpoint": check.checkpoint,
            "ecs_json": list(store.ecs_json()),
        }
    con = sqlite3.connect(db)  # fold the WAL into the file and shrink it: one small file to commit
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("VACUUM")
    con.close()
    text = json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    (out_dir / "v1-store.expected.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent))
