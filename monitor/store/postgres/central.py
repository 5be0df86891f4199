"""The central store through psycopg 3: register gateways, take their records in, check their chains.

A gateway's shipper calls `ingest` with the next records of its chain; the
database itself (`monitor.store.postgres.schema`) refuses any that do not
continue the chain from the central cursor, so what is stored centrally was
verified on arrival whoever inserted it. `verify_gateway` walks a gateway's
whole central chain again with the same pure code the gateway uses
(`monitor.store.chain.walk`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from monitor.store.chain import ChainBreak, ChainHead, Record, walk
from monitor.store.postgres import heads
from monitor.store.postgres.retention import CHAIN_SQL
from monitor.store.postgres.schema import GATEWAY_ROLE, migrate
from monitor.store.signing import SignedHead

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_FIRST_SEEN = re.compile(r'"first_seen":(-?[0-9][0-9.eE+-]*)[,}]')
# binary COPY: no number printed by the client and parsed again by the server
_STAGING_TYPES = ["int8", "int8", "int4", "float8", "text", "text", "text", "text", "float8"]
# session_start comes from the client, computed once per record there (it needs the partitions before
# it sends); the arrival trigger checks it against the body, so a wrong one is refused, not stored
_STAGING = ("CREATE TEMP TABLE IF NOT EXISTS ship_staging (seq BIGINT, session_id BIGINT, version INTEGER, "
            "recorded_at DOUBLE PRECISION, body TEXT, body_sha256 TEXT, prev_hash TEXT, hash TEXT, "
            "session_start DOUBLE PRECISION) ON COMMIT DELETE ROWS")
_INSERT = ("INSERT INTO records (gateway_id, seq, session_id, version, recorded_at, body, body_sha256, "
           "prev_hash, hash, session_start) SELECT %s, seq, session_id, version, recorded_at, body, "
           "body_sha256, prev_hash, hash, to_timestamp(session_start) FROM ship_staging "
           "WHERE seq > coalesce((SELECT last_seq FROM gateways WHERE gateway_id = %s), 0)")
# the arrival trigger's copy of the batch (its transition table) stays in memory: at the default 4MB a
# batch of 5,000 spills to a temporary file and is read back from disk
_WORK_MEM = "SET LOCAL work_mem = '64MB'"
# one batch of a gateway at a time (a daemon's shipper and `ship --once` may overlap): the second reads
# the cursor the first left, after it, and sends only what follows (cheaper than ON CONFLICT per row)
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('social_monitor_ship'), hashtext(%s))"
_DAY = 86400.0
# records walked per round trip: a batch of a gateway's chain is all a walk holds (a few MB), however long
CHAIN_BATCH = 5000


@dataclass(frozen=True, slots=True)
class GatewayCursor:
    """How far the central store holds a gateway's chain, and from where it holds it."""

    gateway_id: str
    last: ChainHead  # the last record received (record 0 and GENESIS: nothing yet)
    anchor: ChainHead  # the chain is held from here (a checkpoint if the gateway compacted before shipping)
    last_recorded_at: float | None


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """One registered gateway as `social-monitor central status` shows it."""

    gateway_id: str
    role_name: str
    last_seq: int
    records: int  # records the central store holds for it (fewer than last_seq once it compacted first)
    last_recorded_at: float | None
    head_seq: int | None  # the chain position its last accepted signed head vouches for
    public_key: str | None


def month_of(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y_%m")


def session_start(record: Record) -> float:
    """The record's partition time, as the arrival check computes it: its session's first sighting,
    else (a purged body, or a record of session 0, which names no session) when it was recorded.

    A session's body names ``first_seen`` once, at its top level, so that one is read without parsing
    the whole body (a fifth of the shipper's time otherwise); anything else is parsed. Either way the
    central store checks the result against the body and refuses a batch it does not match."""
    body = record[4]
    if body is None:
        return float(record[3])
    if record[1] != 0 and body.count('"first_seen":') == 1 and (found := _FIRST_SEEN.search(body)):
        with contextlib.suppress(ValueError):  # not a number after all: parsed below, as any other body
            return float(found.group(1))
    first_seen = json.loads(body).get("first_seen")
    return float(first_seen) if first_seen is not None else float(record[3])


class CentralStore:
    """One connection to the central database (autocommit between the transactions it opens)."""

    def __init__(self, params: Mapping[str, Any] | str):
        if isinstance(params, str):
            self.con = psycopg.connect(params, autocommit=True)
        else:
            self.con = psycopg.connect(**params, autocommit=True)
        self._months: set[str] = set()  # partitions known to exist
        self._walks = itertools.count(1)  # names of server-side cursors, one per walk of a chain
        self.chain_batch = CHAIN_BATCH

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> CentralStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- administration (the database owner) ------------------------------------------------

    def migrate(self) -> list[int]:
        return migrate(self.con)

    def register_gateway(self, gateway_id: str, role: str, password: str | None = None,
                         public_key: str | None = None) -> None:
        """A login role for one gateway, member of the gateway group, and its row in ``gateways``
        (with the public key its signed heads are checked with: `social-monitor signing-key` prints it)."""
        if not ROLE_NAME.match(role):
            raise ValueError(f"role {role!r}: lowercase letters, digits and _ only")
        with self.con.transaction():
            exists = self.con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if not exists:
                self.con.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                    sql.Identifier(role), sql.Identifier(GATEWAY_ROLE)))
            if password is not None:
                self.con.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)))
            self.con.execute("INSERT INTO gateways (gateway_id, role_name, public_key) VALUES (%s, %s, %s)",
                             (gateway_id, role, public_key))

    def set_public_key(self, gateway_id: str, public_key: str) -> None:
        """Register (or replace, after a lost key) the key a gateway's signed heads must be signed with."""
        if self.con.execute("UPDATE gateways SET public_key = %s WHERE gateway_id = %s",
                            (public_key, gateway_id)).rowcount != 1:
            raise LookupError(f"gateway {gateway_id!r} is not registered with the central store")

    # --- a gateway's side ----------------------------------------------------------------------

    def cursor(self, gateway_id: str) -> GatewayCursor:
        row = self.con.execute(
            "SELECT last_seq, last_hash, anchor_seq, anchor_hash, last_recorded_at FROM gateways "
            "WHERE gateway_id = %s", (gateway_id,)).fetchone()
        if row is None:
            raise LookupError(f"gateway {gateway_id!r} is not registered with the central store "
                              "(or this role may not read it)")
        return GatewayCursor(gateway_id, ChainHead(row[0], row[1]), ChainHead(row[2], row[3]), row[4])

    def anchor(self, gateway_id: str, start: ChainHead) -> None:
        """Hold the gateway's chain from its checkpoint `start` (only before anything was shipped)."""
        self.con.execute("SELECT central_anchor(%s, %s, %s)", (gateway_id, start.record_id, start.hash))

    def ensure_months(self, starts: Iterable[float]) -> None:
        """Create the monthly partitions these session starts fall in (each in its own short transaction)."""
        # by day first (a month is a run of whole UTC days): one datetime per day, not per record
        days = {int((t + d) // _DAY) for t in starts for d in (-0.001, 0.0, 0.001)}
        wanted = {month_of(day * _DAY) for day in days} - self._months
        for month in sorted(wanted):
            first = datetime.strptime(month + "_01", "%Y_%m_%d").replace(tzinfo=UTC)
            self.con.execute("SELECT central_ensure_month(%s)", (first,))
            self._months.add(month)

    def ingest(self, gateway_id: str, records: Sequence[Record]) -> ChainHead:
        """Send records of the gateway's chain in one transaction; returns the central cursor after it.

        Idempotent: records the central store already holds (up to its cursor, read under a lock per
        gateway) are skipped, so a batch sent again after a lost acknowledgement adds nothing. A batch
        that does not continue the chain raises psycopg.errors.RaiseException with the database's reason,
        and nothing is kept."""
        starts = [session_start(r) for r in records]
        self.ensure_months(starts)
        with self.con.transaction():
            cur = self.con.cursor()
            cur.execute(_STAGING)
            cur.execute(_WORK_MEM)
            cur.execute(_LOCK, (gateway_id,))
            with cur.copy("COPY ship_staging FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_STAGING_TYPES)
                for r, start in zip(records, starts, strict=True):
                    copy.write_row((r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], start))
            cur.execute(_INSERT, (gateway_id, gateway_id))
        return self.cursor(gateway_id).last

    def receive_head(self, gateway_id: str, head: SignedHead) -> bool:
        """Check and keep the gateway's signed head (`monitor.store.postgres.heads`); False if held."""
        return heads.receive_head(self.con, gateway_id, head)

    # --- reading and checking (the trust) ----------------------------------------------------

    def latest_head(self, gateway_id: str) -> tuple[SignedHead, str] | None:
        """The gateway's last head accepted, and the registered key it is to be checked with."""
        return heads.latest_head(self.con, gateway_id)

    def records(self, gateway_id: str, after: int = 0) -> Iterator[Record]:
        """The gateway's central chain after record `after`, in order, with held copies and dropped
        months' tombstones: streamed through a server-side cursor, `chain_batch` records per round trip.

        A client-side cursor would hold the whole result (millions of records for a gateway) in memory
        before the first was walked. The cursor lives in a transaction: the caller's if it has one (one
        snapshot for all it reads), else one of its own, open until the chain is read or left."""
        if self.con.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            yield from self._stream(gateway_id, after)
            return
        with self.con.transaction():
            yield from self._stream(gateway_id, after)

    def _stream(self, gateway_id: str, after: int) -> Iterator[Record]:
        with self.con.cursor(name=f"social_monitor_chain_{next(self._walks)}") as cur:
            cur.itersize = self.chain_batch
            cur.execute(CHAIN_SQL, (gateway_id, after))
            yield from cur

    def verify_gateway(self, gateway_id: str) -> tuple[int, ChainBreak | None]:
        """Walk the gateway's central chain from its anchor: how many records held, and the first break."""
        with self.con.transaction():
            anchor = self.cursor(gateway_id).anchor
            start = anchor if anchor.record_id else None
            return walk(self.records(gateway_id, anchor.record_id), start, lambda *_: False)

    def gateway_status(self) -> list[GatewayStatus]:
        rows = self.con.execute(
            "SELECT g.gateway_id, g.role_name, g.last_seq, g.last_seq - g.anchor_seq, g.last_recorded_at, "
            "(SELECT h.record_id FROM chain_heads h WHERE h.gateway_id = g.gateway_id ORDER BY h.seq DESC "
            "LIMIT 1), g.public_key FROM gateways g ORDER BY g.gateway_id").fetchall()
        return [GatewayStatus(*row) for row in rows]

    def gateways(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT gateway_id FROM gateways ORDER BY gateway_id")]

    def count(self, table: str, gateway_id: str | None = None) -> int:
        """Rows of ``records`` or ``sessions``, of one gateway or all."""
        if table not in ("records", "sessions"):
            raise ValueError(table)
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        if gateway_id is None:
            return int(self.con.execute(query).fetchall()[0][0])
        query = query + sql.SQL(" WHERE gateway_id = %s")
        return int(self.con.execute(query, (gateway_id,)).fetchall()[0][0])


__all__ = ["CentralStore", "GatewayCursor", "GatewayStatus", "month_of", "session_start"]
