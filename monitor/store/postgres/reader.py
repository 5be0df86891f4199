"""The trust's sessions read from the central store: one read-only snapshot across every gateway.

`CentralReader` is a `SessionReader` over the central ``sessions`` table (each
session's latest version, its ``body`` the session exactly as the gateway's
chain holds it) and ``held_sessions`` (sessions kept under a legal hold after
their month was dropped), so trust-wide listings, exports and subject access
requests run through the same code as a gateway's own. It connects as a role
in ``social_monitor_reader`` and reads inside one ``REPEATABLE READ, READ ONLY``
transaction: every answer, and each gateway's cursor and signed head that a
manifest records (`sources`), comes from one moment, and nothing can be written
through it whatever the role.

Session ids are per gateway, so they repeat across the trust: every session
comes back as a `CentralSession` that names its gateway, and reviews are kept
per gateway (`reviews_by_gateway`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from monitor.errors import UserError
from monitor.observation import Exemption, Flag
from monitor.store.base import SessionReader
from monitor.store.chain import GENESIS, PURGE_SESSION, ChainHead, Record
from monitor.store.filter import EVERY_SESSION, SessionFilter, epoch
from monitor.store.postgres.connect import shown
from monitor.store.reviews import LIKE, Review, parse_review
from monitor.store.sessions import Session

FETCH = 2000  # rows per round trip of a server-side cursor: memory stays bounded on a trust's year
_COLUMNS = "gateway_id, session_id, seq, first_seen, school, device, owner, platform, flagged, body"
# live sessions, and held copies of sessions whose month was dropped (never both: a copy is made as the
# month goes, and the NOT EXISTS keeps a copy from doubling a row should both ever be present)
_SESSIONS = f"""(SELECT {_COLUMNS} FROM sessions
    UNION ALL SELECT {_COLUMNS} FROM held_sessions h WHERE NOT EXISTS (
        SELECT 1 FROM sessions s WHERE s.gateway_id = h.gateway_id AND s.session_id = h.session_id)) t"""
_REVIEWS = f"""SELECT gateway_id, seq, recorded_at, body FROM (
    SELECT gateway_id, seq, session_id, recorded_at, body FROM records
    UNION ALL SELECT gateway_id, seq, session_id, recorded_at, body FROM held_records) r
    WHERE session_id = {PURGE_SESSION} AND body LIKE %s AND gateway_id = ANY(%s) ORDER BY gateway_id, seq"""
_RECORD = "seq, session_id, version, recorded_at, body, body_sha256, prev_hash, hash"
# the record of each session's latest version, live or held (`evidence`)
_EVIDENCE = f"""SELECT s.gateway_id, {', '.join('r.' + c for c in _RECORD.split(', '))}
    FROM (SELECT gateway_id, seq, first_seen, session_id FROM {_SESSIONS}{{clause}}) s
    JOIN (SELECT gateway_id, {_RECORD} FROM records
          UNION ALL SELECT gateway_id, {_RECORD} FROM held_records) r
      ON r.gateway_id = s.gateway_id AND r.seq = s.seq
    ORDER BY s.first_seen, s.gateway_id, s.session_id"""
_SOURCES = """SELECT g.gateway_id, g.last_seq, g.last_hash, g.last_recorded_at, g.public_key,
    (SELECT h.head FROM chain_heads h WHERE h.gateway_id = g.gateway_id ORDER BY h.seq DESC LIMIT 1)
    FROM gateways g WHERE g.gateway_id = ANY(%s) ORDER BY g.gateway_id"""


@dataclass(slots=True)
class CentralSession(Session):
    """A session as the central store holds it: which gateway's chain it belongs to."""

    gateway: str = ""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a trust-wide output came from, per gateway: the central cursor and the last signed head."""

    gateway_id: str
    cursor: ChainHead  # the last record of its chain the central store held at the snapshot
    last_recorded_at: float | None
    signed_head: dict[str, Any] | None  # its latest signed head accepted centrally, as the gateway signed it
    public_key: str | None  # the key registered for it

    def to_dict(self) -> dict[str, Any]:
        return {"cursor": {"record_id": self.cursor.record_id, "hash": self.cursor.hash},
                "last_recorded_at": self.last_recorded_at, "signed_head": self.signed_head,
                "public_key": self.public_key}


def body_session(body: Mapping[str, Any], gateway: str, record_id: int | None) -> CentralSession:
    """The session a record body holds (`Session.body()`, as the gateway wrote and hashed it)."""
    exemption = body.get("exemption")
    return CentralSession(
        device=body["device"], platform=body["platform"], school=body["school"], zone=body["zone"],
        period=body.get("period"), local_date=body["local_date"], first_seen=float(body["first_seen"]),
        last_seen=float(body["last_seen"]), observations=int(body.get("observations", 1)),
        signals=tuple(body.get("signals") or ()), hostnames=tuple(body.get("hostnames") or ()),
        flags=tuple(Flag(**f) for f in body.get("flags") or ()),
        exemption=Exemption(**exemption) if exemption else None,
        period_kind=body.get("period_kind") or "closed", week=body.get("week"),
        pupil_area=body.get("pupil_area"), owner=body.get("owner"), asset_tag=body.get("asset_tag"),
        device_mac=body.get("device_mac"), device_kind=body.get("device_kind"),
        platform_name=body.get("platform_name"), category=body.get("category"),
        zone_kind=body.get("zone_kind"), roles=tuple(body.get("roles") or ()),
        probably_teaching=bool(body.get("probably_teaching", False)), id=body.get("id"),
        version=int(body.get("version", 0)), record_id=record_id, gateway=gateway,
    )


def where_sql(where: SessionFilter, gateways: Sequence[str]) -> tuple[str, list[Any]]:
    """`where` over the central columns (psycopg placeholders), limited to `gateways`."""
    clauses = ["gateway_id = ANY(%s)"]
    params: list[Any] = [list(gateways)]
    for column, value in (("school", where.school), ("flagged", where.flagged), ("device", where.device),
                          ("owner", where.owner), ("platform", where.platform)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    for op, bound in ((">=", epoch(where.since)), ("<", epoch(where.until))):
        if bound is not None:
            clauses.append(f"first_seen {op} to_timestamp(%s)")
            params.append(bound)
    return " WHERE " + " AND ".join(clauses), params


class CentralReaderError(UserError):
    """The central store cannot be read as asked: one line naming the server and the reason."""


class CentralReader(SessionReader):
    """A read-only snapshot of the central store, across `gateways` (default: every registered one)."""

    def __init__(self, params: Mapping[str, Any] | str, gateways: Sequence[str] | None = None):
        self.where = shown(params) if isinstance(params, Mapping) else "central store"
        try:
            if isinstance(params, str):
                self.con = psycopg.connect(params, autocommit=False)
            else:
                self.con = psycopg.connect(**params, autocommit=False)
        except psycopg.Error as exc:
            raise self.error(exc) from None
        self._names = itertools.count(1)
        try:
            self.con.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self.con.read_only = True
            allowed = self.con.execute("SELECT has_table_privilege('sessions', 'SELECT') AND "
                                       "has_table_privilege('held_sessions', 'SELECT')").fetchone()
            if not (allowed and allowed[0]):
                raise CentralReaderError(f"central store {self.where}: this role may not read the trust's "
                                         "sessions (make it a member of social_monitor_reader)")
            known = [r[0] for r in self.con.execute("SELECT gateway_id FROM gateways ORDER BY gateway_id")]
        except psycopg.Error as exc:
            self.con.close()
            raise self.error(exc) from None
        except BaseException:
            self.con.close()
            raise
        unknown = sorted(set(gateways or ()) - set(known))
        if unknown:
            self.con.close()
            raise CentralReaderError(f"central store {self.where}: gateway {unknown[0]!r} is not registered "
                                     f"({', '.join(known) or 'none yet'})")
        self.gateways: list[str] = sorted(gateways) if gateways else known

    def error(self, exc: BaseException) -> CentralReaderError:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        return CentralReaderError(f"central store {getattr(self, 'where', 'central store')}: {first}")

    def close(self) -> None:
        self.con.close()  # the snapshot is read-only: nothing to commit

    def __enter__(self) -> CentralReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- SessionReader ------------------------------------------------------------------------

    def sessions(self, where: SessionFilter = EVERY_SESSION) -> Iterator[CentralSession]:
        clause, params = where_sql(where, self.gateways)
        query = f"SELECT gateway_id, seq, body FROM {_SESSIONS}{clause} ORDER BY first_seen, gateway_id, " \
                "session_id"
        if where.limit is not None:
            query += " LIMIT %s"
            params.append(where.limit)
        cur = self.con.cursor(name=f"sessions_{next(self._names)}")
        cur.itersize = FETCH
        try:
            cur.execute(query, params)
            for gateway, seq, body in cur:
                yield body_session(body, gateway, seq)
        finally:
            cur.close()

    def count(self, where: SessionFilter = EVERY_SESSION) -> int:
        clause, params = where_sql(where, self.gateways)
        row = self.con.execute(f"SELECT count(*) FROM {_SESSIONS}{clause}", params).fetchone()
        n = int(row[0]) if row else 0
        return n if where.limit is None else min(n, where.limit)

    def devices_and_owners(self, where: SessionFilter = EVERY_SESSION) -> tuple[set[str], set[str]]:
        if where.limit is not None:
            return super().devices_and_owners(where)
        clause, params = where_sql(where, self.gateways)
        rows = self.con.execute(f"SELECT DISTINCT device, owner FROM {_SESSIONS}{clause}", params).fetchall()
        return {d for d, _ in rows}, {o for _, o in rows if o}

    def session(self, session_id: int) -> CentralSession | None:
        """The session with this id, when only one gateway is read (ids repeat across gateways)."""
        found = [s for gateway in self.gateways for s in self.gateway_sessions(gateway, session_id)]
        if len(found) > 1:
            raise CentralReaderError(f"session {session_id} is held for gateways "
                                     f"{', '.join(s.gateway for s in found)}: name the gateway")
        return found[0] if found else None

    def gateway_sessions(self, gateway: str, session_id: int) -> list[CentralSession]:
        rows = self.con.execute(f"SELECT gateway_id, seq, body FROM {_SESSIONS} WHERE gateway_id = %s AND "
                                "session_id = %s", (gateway, session_id)).fetchall()
        return [body_session(body, gw, seq) for gw, seq, body in rows]

    def gateway_evidence(self, where: SessionFilter = EVERY_SESSION) -> Iterator[tuple[str, Record]]:
        """The chain record of each session's latest version, as the central store holds it, with its
        gateway, in the order of `sessions` (an investigation export's evidence)."""
        clause, params = where_sql(where, self.gateways)
        cur = self.con.cursor(name=f"evidence_{next(self._names)}")
        cur.itersize = FETCH
        try:
            cur.execute(_EVIDENCE.format(clause=clause), params)
            for gateway, *record in cur:
                yield gateway, tuple(record)
        finally:
            cur.close()

    def reviews(self) -> list[Any]:
        """The reviews of the one gateway read; across several, `reviews_by_gateway` (ids repeat)."""
        if len(self.gateways) != 1:
            raise CentralReaderError("reviews across several gateways: use reviews_by_gateway()")
        return self.reviews_by_gateway().get(self.gateways[0], [])

    def reviews_by_gateway(self) -> dict[str, list[Review]]:
        """Each gateway's reviews in its chain, oldest first; one that does not parse is left out (its
        gateway's `verify` names it)."""
        found: dict[str, list[Review]] = {}
        for gateway, seq, at, body in self.con.execute(_REVIEWS, (LIKE, self.gateways)):
            try:
                found.setdefault(gateway, []).append(parse_review(seq, at, body))
            except ValueError:
                continue
        return found

    def chain_head(self) -> ChainHead:
        """The central cursor of the one gateway read; a trust-wide read has one per gateway (`sources`)."""
        if len(self.gateways) != 1:
            raise CentralReaderError("a trust-wide read has one chain per gateway: see sources()")
        return self.sources()[0].cursor

    # --- where it came from -------------------------------------------------------------------

    def sources(self) -> list[Source]:
        """Each gateway's central cursor and latest signed head, in this snapshot."""
        out = []
        for gateway, seq, hashed, at, key, head in self.con.execute(_SOURCES, (self.gateways,)):
            out.append(Source(gateway, ChainHead(int(seq), hashed or GENESIS), at,
                              json.loads(head) if head else None, key))
        return out


__all__ = ["FETCH", "CentralReader", "CentralReaderError", "CentralSession", "Source", "body_session",
           "where_sql"]
