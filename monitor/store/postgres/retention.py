"""The trust's retention at the central store: whole months dropped, held sessions kept, every step logged.

Records and sessions are partitioned by the month of the session's first sighting
(UTC), so retention drops a month's two partitions (``DROP TABLE``: no row-by-row
delete, no bloat) once the whole month is older than the retention period. Three
things happen first, in the same transaction:

- sessions under an open legal hold (``holds``: a case, a device or a person, and a
  reason) are copied with all their records to ``held_sessions`` / ``held_records``, and
  so are their reviews (session-0 records naming the session in their body), in this
  month or, when a review was written later, in the month it was recorded in;
- every other record leaves a **tombstone**, its chain header without its body
  (``record_tombstones``), so each gateway's chain still verifies link by link
  after its content is gone, as a gateway's own purge leaves tombstones;
- the drop is entered in ``retention_log`` with what was dropped and what was kept.

A released hold's sessions go at the next purge once past retention (their records
become tombstones). Opening and releasing a hold are logged in ``retention_log`` too.

A gateway's own hold (`social-monitor hold`: a record of session 0 ``{"hold": ...}`` in its
chain, `monitor.store.holds`) reaches the central store with the rest of the chain; a purge
first opens a central hold for each one placed (on that gateway only) and releases it when
the chain's release record arrives (`adopt_gateway_holds`), so the central copy of evidence
a gateway keeps for a case is not dropped while the gateway keeps it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.store.chain import PURGE_SESSION
from monitor.store.reviews import LIKE, parse_review
from monitor.store.schema import Migration

MONTH = re.compile(r"^records_(\d{4})_(\d{2})$")
_CHAIN_TABLES = ("held_records", "record_tombstones")
_HEADER = "gateway_id, seq, session_id, version, recorded_at, body_sha256, prev_hash, hash"


def migration() -> Migration:
    """Central schema 3: legal holds, held copies, tombstones of dropped records, the retention log."""
    return Migration((
        """CREATE TABLE holds (
            id BIGSERIAL PRIMARY KEY,
            case_ref TEXT NOT NULL CHECK (case_ref <> ''),
            gateway_id TEXT REFERENCES gateways (gateway_id),
            device TEXT,
            owner TEXT,
            reason TEXT NOT NULL CHECK (reason <> ''),
            opened_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            opened_by TEXT NOT NULL DEFAULT session_user,
            released_at TIMESTAMPTZ,
            released_by TEXT,
            release_reason TEXT,
            CHECK ((device IS NULL) <> (owner IS NULL))
        )""",
        "CREATE INDEX holds_open ON holds (case_ref) WHERE released_at IS NULL",
        """CREATE TABLE held_sessions (LIKE sessions,
            hold_id BIGINT NOT NULL REFERENCES holds (id),
            held_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (gateway_id, session_id))""",
        "CREATE TABLE held_records (LIKE records, PRIMARY KEY (gateway_id, seq))",
        """CREATE TABLE record_tombstones (
            gateway_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            session_id BIGINT NOT NULL,
            version INTEGER NOT NULL,
            recorded_at DOUBLE PRECISION NOT NULL,
            body_sha256 TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (gateway_id, seq)
        )""",
        """CREATE TABLE retention_log (
            id BIGSERIAL PRIMARY KEY,
            at TIMESTAMPTZ NOT NULL DEFAULT now(),
            by_role TEXT NOT NULL DEFAULT session_user,
            action TEXT NOT NULL,
            detail JSONB NOT NULL
        )""",
        "REVOKE ALL ON holds, held_sessions, held_records, record_tombstones, retention_log FROM PUBLIC",
        "GRANT SELECT ON holds, held_sessions, held_records, record_tombstones, retention_log "
        "TO social_monitor_reader",
        # a gateway reads its own chain whole (verify, `verify --against central`), never another's
        "GRANT SELECT ON held_records, record_tombstones TO social_monitor_gateway",
        *(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY" for table in _CHAIN_TABLES),
        *(f"""CREATE POLICY {table}_own_read ON {table} FOR SELECT TO social_monitor_gateway USING (EXISTS (
            SELECT 1 FROM gateways g WHERE g.gateway_id = {table}.gateway_id
                AND g.role_name = current_user))"""
          for table in _CHAIN_TABLES),
        *(f"CREATE POLICY {table}_read ON {table} FOR SELECT TO social_monitor_reader USING (true)"
          for table in _CHAIN_TABLES),
    ))


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    case_ref: str
    gateway_id: str | None
    device: str | None
    owner: str | None
    reason: str
    opened_at: datetime
    opened_by: str


@dataclass(frozen=True, slots=True)
class MonthDropped:
    """What one month's drop removed and kept."""

    month: str  # YYYY_MM
    records: int  # records whose bodies went (their tombstones stay)
    sessions: int
    held: int  # sessions kept under an open hold


@dataclass(frozen=True, slots=True)
class PurgeReport:
    cutoff: datetime
    months: list[MonthDropped]
    released: int  # sessions of released holds that went this time


def _log(con: Any, action: str, detail: dict[str, Any]) -> None:
    con.execute("INSERT INTO retention_log (action, detail) VALUES (%s, %s)",
                (action, json.dumps(detail, sort_keys=True)))


def open_hold(con: Any, case_ref: str, reason: str, *, device: str | None = None, owner: str | None = None,
              gateway_id: str | None = None) -> int:
    """Hold one device's or one person's sessions (on one gateway, or all) past retention; returns its id."""
    if (device is None) == (owner is None):
        raise ValueError("a hold names a device or a person, not both")
    with con.transaction():
        hold_id = int(con.execute(
            "INSERT INTO holds (case_ref, gateway_id, device, owner, reason) VALUES (%s, %s, %s, %s, %s) "
            "RETURNING id", (case_ref, gateway_id, device, owner, reason)).fetchone()[0])
        _log(con, "hold", {"hold": hold_id, "case": case_ref, "gateway": gateway_id, "device": device,
                           "owner": owner, "reason": reason})
    return hold_id


def release_hold(con: Any, case_ref: str, reason: str) -> int:
    """Release every open hold of a case; returns how many. Their sessions go at the next purge."""
    with con.transaction():
        released = [r[0] for r in con.execute(
            "UPDATE holds SET released_at = now(), released_by = session_user, release_reason = %s "
            "WHERE case_ref = %s AND released_at IS NULL RETURNING id", (reason, case_ref))]
        if released:
            _log(con, "release", {"case": case_ref, "holds": released, "reason": reason})
    return len(released)


def open_holds(con: Any) -> list[Hold]:
    rows = con.execute("SELECT id, case_ref, gateway_id, device, owner, reason, opened_at, opened_by "
                       "FROM holds WHERE released_at IS NULL ORDER BY id").fetchall()
    return [Hold(*row) for row in rows]


def months(con: Any) -> list[str]:
    """The months (YYYY_MM) that have partitions, oldest first."""
    rows = con.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE i.inhparent = 'records'::regclass").fetchall()
    found = (MONTH.match(name) for (name,) in rows)
    return sorted(f"{m[1]}_{m[2]}" for m in found if m)


def month_end(month: str) -> datetime:
    year, mon = (int(part) for part in month.split("_"))
    return datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)


def purge(con: Any, retention_days: int, now: datetime) -> PurgeReport:
    """Drop every month wholly older than `retention_days` before `now`, keeping what open holds cover."""
    cutoff = now - timedelta(days=retention_days)
    adopt_gateway_holds(con)
    dropped = [drop_month(con, month) for month in months(con) if month_end(month) <= cutoff]
    return PurgeReport(cutoff, dropped, _release_expired(con, cutoff))


_ADOPTED = "gateway {gateway} record {seq}"  # holds.opened_by of a hold a gateway placed in its chain


def adopt_gateway_holds(con: Any) -> int:
    """Open a central hold for each hold placed in a gateway's chain, release it with the chain's release
    record; returns how many were opened. The place record's key (`_ADOPTED`, kept as ``opened_by``)
    makes this idempotent: a hold whose place record has since become a tombstone stays as it was."""
    adopted = {by: [hid, case, gw, is_open] for by, hid, case, gw, is_open in con.execute(
        "SELECT opened_by, id, case_ref, gateway_id, released_at IS NULL FROM holds "
        "WHERE opened_by LIKE 'gateway % record %'")}
    opened = 0
    with con.transaction():
        for gateway, seq, body in con.execute(
                f"SELECT gateway_id, seq, body FROM records WHERE session_id = {PURGE_SESSION} AND body "
                "LIKE %s ORDER BY gateway_id, seq", ('{"hold":%',)).fetchall():
            try:
                h = json.loads(body)["hold"]
                action, case, reason = h["action"], str(h["case"]), str(h["reason"])
            except (ValueError, KeyError, TypeError):
                continue  # not a hold body a gateway writes: `central verify` judges the record
            key = _ADOPTED.format(gateway=gateway, seq=seq)
            if action == "place" and h.get("scope") in ("device", "staff") and key not in adopted:
                column = "device" if h["scope"] == "device" else "owner"
                hid = int(con.execute(
                    f"INSERT INTO holds (case_ref, gateway_id, {column}, reason, opened_by) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id", (case, gateway, str(h.get("target")), reason,
                                                                 key)).fetchone()[0])
                adopted[key] = [hid, case, gateway, True]
                opened += 1
                _log(con, "hold", {"hold": hid, "case": case, "gateway": gateway, column: h.get("target"),
                                   "reason": reason, "chain_record": seq})
            elif action == "release":
                ids = [row[0] for row in adopted.values() if row[3] and row[1:3] == [case, gateway]]
                for row in adopted.values():
                    row[3] = row[3] and row[0] not in ids
                if ids:
                    con.execute("UPDATE holds SET released_at = now(), released_by = %s, release_reason = %s "
                                "WHERE id = ANY(%s)", (key, reason, ids))
                    _log(con, "release", {"case": case, "holds": ids, "reason": reason, "chain_record": seq})
    return opened


def drop_month(con: Any, month: str) -> MonthDropped:
    """Copy held sessions out, leave tombstones for the rest, drop the month's partitions, log it."""
    records, sessions = f"records_{month}", f"sessions_{month}"
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(hashtext('social_monitor_partitions'))")
        held = con.execute(
            f"""INSERT INTO held_sessions
                SELECT s.*, h.id FROM {sessions} s CROSS JOIN LATERAL (
                    SELECT id FROM holds h WHERE h.released_at IS NULL
                      AND (h.gateway_id IS NULL OR h.gateway_id = s.gateway_id)
                      AND (h.device = s.device OR h.owner = s.owner) ORDER BY id LIMIT 1) h
                ON CONFLICT DO NOTHING""").rowcount
        con.execute(f"""INSERT INTO held_records SELECT r.* FROM {records} r JOIN held_sessions hs
                        ON hs.gateway_id = r.gateway_id AND hs.session_id = r.session_id
                        ON CONFLICT DO NOTHING""")
        _keep_reviews(con, records)
        gone = con.execute(
            f"""INSERT INTO record_tombstones SELECT {_HEADER} FROM {records} r WHERE NOT EXISTS (
                    SELECT 1 FROM held_records k WHERE k.gateway_id = r.gateway_id AND k.seq = r.seq)
                ON CONFLICT DO NOTHING""").rowcount
        total = int(con.execute(f"SELECT count(*) FROM {sessions}").fetchone()[0])
        con.execute(f"DROP TABLE {records}")
        con.execute(f"DROP TABLE {sessions}")
        result = MonthDropped(month, gone, total - held, held)
        _log(con, "drop-month", {"month": month, "records": gone, "sessions": total - held, "held": held})
    return result


def _release_expired(con: Any, cutoff: datetime) -> int:
    """Held sessions no open hold covers any more and past retention: tombstones for their records."""
    with con.transaction():
        free = """SELECT gateway_id, session_id FROM held_sessions s WHERE s.first_seen < %(cutoff)s
                  AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.released_at IS NULL
                      AND (h.gateway_id IS NULL OR h.gateway_id = s.gateway_id)
                      AND (h.device = s.device OR h.owner = s.owner))"""
        con.execute(f"""INSERT INTO record_tombstones SELECT {_HEADER} FROM held_records r
                        WHERE (r.gateway_id, r.session_id) IN ({free}) ON CONFLICT DO NOTHING""",
                    {"cutoff": cutoff})
        con.execute(f"DELETE FROM held_records WHERE (gateway_id, session_id) IN ({free})",
                    {"cutoff": cutoff})
        released = con.execute(f"DELETE FROM held_sessions WHERE (gateway_id, session_id) IN ({free})",
                               {"cutoff": cutoff}).rowcount
        _free_reviews(con)
        if released:
            _log(con, "release-expired", {"sessions": released, "cutoff": cutoff.isoformat()})
    return released


def _reviews_of_held(con: Any, table: str) -> list[tuple[str, int]]:
    """(gateway, record) of every review in `table` whose session is in ``held_sessions``.

    A review is a session-0 record: its session is named only in its body, which is parsed here
    (`parse_review`), not cast in SQL, so one malformed body cannot stop a purge; it is left out."""
    found: dict[tuple[str, int], list[int]] = {}
    for gateway, seq, at, body in con.execute(
            f"SELECT gateway_id, seq, recorded_at, body FROM {table} WHERE session_id = {PURGE_SESSION} "
            "AND body LIKE %s", (LIKE,)):
        try:
            found.setdefault((gateway, parse_review(seq, at, body).session_id), []).append(seq)
        except ValueError:
            continue
    if not found:
        return []
    gateways, sessions = zip(*found, strict=True)
    held = con.execute("SELECT gateway_id, session_id FROM held_sessions WHERE (gateway_id, session_id) IN "
                       "(SELECT * FROM unnest(%s::text[], %s::bigint[]))", (list(gateways), list(sessions)))
    return [(g, seq) for g, sid in held for seq in found[(g, sid)]]


def _keep_reviews(con: Any, records: str) -> None:
    """Copy the month's reviews of held sessions (held now, or in an earlier month) to ``held_records``."""
    if kept := _reviews_of_held(con, records):
        gateways, seqs = (list(x) for x in zip(*kept, strict=True))
        con.execute(f"""INSERT INTO held_records SELECT r.* FROM {records} r WHERE (r.gateway_id, r.seq) IN (
                            SELECT * FROM unnest(%s::text[], %s::bigint[])) ON CONFLICT DO NOTHING""",
                    (gateways, seqs))


def _free_reviews(con: Any) -> None:
    """Held reviews whose session is no longer held become tombstones, as their session's records did."""
    kept = set(_reviews_of_held(con, "held_records"))
    rows = con.execute(f"SELECT gateway_id, seq FROM held_records WHERE session_id = {PURGE_SESSION}")
    free = [(g, seq) for g, seq in rows if (g, seq) not in kept]
    if not free:
        return
    gateways, seqs = (list(x) for x in zip(*free, strict=True))
    match = "(gateway_id, seq) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))"
    con.execute(f"INSERT INTO record_tombstones SELECT {_HEADER} FROM held_records WHERE {match} "
                "ON CONFLICT DO NOTHING", (gateways, seqs))
    con.execute(f"DELETE FROM held_records WHERE {match}", (gateways, seqs))


# the chain as the central store holds it: live records, held copies, and tombstones of dropped ones
CHAIN_SQL = f"""SELECT seq, session_id, version, recorded_at, body, body_sha256, prev_hash, hash FROM (
    SELECT {_HEADER}, body FROM records
    UNION ALL SELECT {_HEADER}, body FROM held_records
    UNION ALL SELECT {_HEADER}, NULL FROM record_tombstones
) chain WHERE gateway_id = %s AND seq > %s ORDER BY seq"""

__all__ = ["CHAIN_SQL", "Hold", "MonthDropped", "PurgeReport", "adopt_gateway_holds", "drop_month",
           "migration", "month_end", "months", "open_hold", "open_holds", "purge", "release_hold"]
