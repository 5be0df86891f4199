"""The check every batch of records meets on arrival at the central store, and how ``sessions`` follows.

`central_records_arrived` (a statement trigger on ``records``, SECURITY DEFINER)
refuses a batch that does not continue the gateway's chain from the central
cursor (consecutive ids, each link, each hash recomputed from its header, each
body against its digest, each partition time against the body's first sighting)
and keeps ``gateways`` (the cursor) and ``sessions`` (one row per session, its
latest version) in step, in the inserting transaction. Schema 4 rewrote it so
its cost per batch does not grow with the history the store already holds:

- each body is parsed once: as jsonb for a session's newest version in the batch
  (``sessions`` needs it), as json (cheaper) for the others;
- ``sessions`` is kept by its primary key, partition key included: new sessions
  by ``INSERT … ON CONFLICT DO NOTHING``, the rest by ``ON CONFLICT DO UPDATE``, each
  row one index probe in its own month, never a scan of a gateway's history. A
  session whose first sighting moved earlier (a late observation merged into it)
  lands in its new month and its old row, found by id, goes;
- the insert policy names the role's one gateway once per statement, not per row.
"""

from __future__ import annotations

from monitor.store.schema import Migration


# Python's repr of a float, from float8's shortest round-trip text (extra_float_digits = 1, PG 12+):
# the two agree for every timestamp (an integral value gains ".0"); anything else is refused.
def py_float_sql(v: str) -> str:
    return f"(CASE WHEN {v}::text ~ '^-?[0-9]+$' THEN {v}::text || '.0' ELSE {v}::text END)"


def record_hash_sql(seq: str, session_id: str, version: str, recorded_at: str, body_sha256: str,
                    prev_hash: str) -> str:
    """`monitor.store.chain.record_hash`, byte for byte, as an SQL expression over the named columns:
    spelled out inline in the arrival trigger (a function call per row, with its own SET, cost more
    than the hash itself); needs extra_float_digits = 1."""
    return (f"encode(sha256(convert_to('{{\"body_sha256\":\"' || {body_sha256} || '\",\"id\":' || {seq} "
            f"|| ',\"prev\":\"' || {prev_hash} || '\",\"recorded_at\":' || {py_float_sql(recorded_at)} "
            f"|| ',\"session_id\":' || {session_id} || ',\"version\":' || {version} "
            "|| '}', 'UTF8')), 'hex')")


def _row_columns(b: str) -> str:
    """``sessions``' columns taken from a version's body (jsonb expression `b`), after the key columns."""
    return (f"to_timestamp(({b}->>'last_seen')::float8), {b}->>'school', {b}->>'device', {b}->>'owner', "
            f"{b}->>'platform', {b}->>'zone', jsonb_array_length({b}->'flags') > 0 "
            f"AND jsonb_typeof({b}->'exemption') IS DISTINCT FROM 'object', {b}")


_SESSION_COLUMNS = ("gateway_id, session_id, version, seq, first_seen, last_seen, school, device, owner, "
                    "platform, zone, flagged, body")

# One pass over the gateway's part of the batch: every check, and the sessions it brings that the store
# does not hold yet inserted (only when no record is refused). Parameters: the gateway, the cursor's hash.
CHECK_AND_INSERT = """WITH parsed AS MATERIALIZED (
    SELECT r.*, lag(r.hash) OVER (ORDER BY r.seq) AS before,
           CASE WHEN r.newest AND r.digest_ok THEN r.body::jsonb END AS b
    FROM (
        SELECT a.seq, a.session_id, a.version, a.recorded_at, a.body, a.body_sha256, a.prev_hash, a.hash,
               a.session_start,
               a.body IS NOT NULL AND a.session_id <> 0 AND row_number() OVER (
                   PARTITION BY a.session_id, a.body IS NULL ORDER BY a.version DESC) = 1 AS newest,
               min(a.version) OVER (PARTITION BY a.session_id) AS first_version,
               a.body IS NULL OR a.body_sha256 = encode(sha256(convert_to(a.body, 'UTF8')), 'hex')
                   AS digest_ok
        FROM arrived a WHERE a.gateway_id = $1
    ) r
), bad AS (
    SELECT p.seq, CASE
        WHEN p.prev_hash <> coalesce(p.before, $2) THEN 'it does not link to record ' || (p.seq - 1)
        WHEN p.hash IS DISTINCT FROM """ + record_hash_sql(
            "p.seq", "p.session_id", "p.version", "p.recorded_at", "p.body_sha256", "p.prev_hash") + """
            THEN 'its hash does not match its fields'
        WHEN NOT p.digest_ok THEN 'its content does not match its digest'
        WHEN p.session_start <> coalesce(to_timestamp(CASE WHEN p.newest THEN (p.b->>'first_seen')::float8
                                                           ELSE (p.body::json->>'first_seen')::float8 END),
                                         to_timestamp(p.recorded_at))
            THEN 'its partition time is not its session''s first sighting'
    END AS why
    FROM parsed p
), first_bad AS (
    SELECT seq, why FROM bad WHERE why IS NOT NULL ORDER BY seq LIMIT 1
), fresh AS (  -- sessions whose first version is in this batch: nothing central to conflict with
    INSERT INTO sessions (""" + _SESSION_COLUMNS + """)
    SELECT $1, p.session_id, p.version, p.seq, p.session_start, """ + _row_columns("p.b") + """
    FROM parsed p WHERE p.newest AND p.first_version = 1 AND NOT EXISTS (SELECT 1 FROM first_bad)
), inserted AS (  -- sessions shipped before, unless the store holds them at this first sighting
    INSERT INTO sessions (""" + _SESSION_COLUMNS + """)
    SELECT $1, p.session_id, p.version, p.seq, p.session_start, """ + _row_columns("p.b") + """
    FROM parsed p WHERE p.newest AND p.first_version > 1 AND NOT EXISTS (SELECT 1 FROM first_bad)
    ON CONFLICT DO NOTHING
    RETURNING session_id
), held AS (  -- the newest versions of sessions the store already holds (at this first sighting)
    SELECT p.session_id, p.version, p.seq, p.session_start, p.b FROM parsed p
    WHERE p.newest AND p.first_version > 1
      AND NOT EXISTS (SELECT 1 FROM inserted i WHERE i.session_id = p.session_id)
)
SELECT (SELECT seq FROM first_bad) AS bad_seq, (SELECT why FROM first_bad) AS why,
       top.seq AS top_seq, top.hash AS top_hash, top.recorded_at AS top_at,
       h.ids AS held_ids, h.versions AS held_versions, h.seqs AS held_seqs, h.starts AS held_starts,
       h.bodies AS held_bodies,
       -- shipped before, yet new at this first sighting: it moved (a late observation), its old row is left
       (SELECT array_agg(session_id) FROM inserted) AS moved
FROM (SELECT seq, hash, recorded_at FROM parsed ORDER BY seq DESC LIMIT 1) top,
     (SELECT array_agg(session_id) AS ids, array_agg(version) AS versions, array_agg(seq) AS seqs,
             array_agg(session_start) AS starts, array_agg(b) AS bodies FROM held) h"""

# the newest versions of sessions already held, each by its primary key (ON CONFLICT probes one index)
UPDATE_HELD = """INSERT INTO sessions (""" + _SESSION_COLUMNS + """)
    SELECT $1, h.session_id, h.version, h.seq, h.first_seen, """ + _row_columns("h.b") + """
    FROM unnest($2::bigint[], $3::integer[], $4::bigint[], $5::timestamptz[], $6::jsonb[])
        AS h (session_id, version, seq, first_seen, b)
    ON CONFLICT (gateway_id, session_id, first_seen) DO UPDATE SET version = excluded.version,
        seq = excluded.seq, last_seen = excluded.last_seen, owner = excluded.owner,
        flagged = excluded.flagged, body = excluded.body
    WHERE sessions.version < excluded.version"""

_ARRIVED = """CREATE OR REPLACE FUNCTION central_records_arrived() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET extra_float_digits = 1
    SET work_mem = '64MB' AS $fn$
DECLARE
    g record;
    cur record;
    x record;
BEGIN
    FOR g IN SELECT gateway_id, min(seq) AS lo, max(seq) AS hi, count(*) AS n
             FROM arrived GROUP BY gateway_id ORDER BY gateway_id LOOP
        SELECT * INTO cur FROM gateways WHERE gateway_id = g.gateway_id FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'gateway % is not registered with the central store', g.gateway_id;
        END IF;
        IF g.lo <> cur.last_seq + 1 OR g.hi - g.lo + 1 <> g.n THEN
            RAISE EXCEPTION 'gateway %: records % to % refused: they do not follow its record %',
                g.gateway_id, g.lo, g.hi, cur.last_seq;
        END IF;
        EXECUTE $q$""" + CHECK_AND_INSERT + """$q$
            INTO x USING g.gateway_id, cur.last_hash;
        IF x.bad_seq IS NOT NULL THEN
            RAISE EXCEPTION 'gateway %: record % refused: %', g.gateway_id, x.bad_seq, x.why;
        END IF;
        UPDATE gateways SET last_seq = x.top_seq, last_hash = x.top_hash, last_recorded_at = x.top_at,
            received_at = now() WHERE gateway_id = g.gateway_id;
        IF x.held_ids IS NOT NULL THEN
            EXECUTE $q$""" + UPDATE_HELD + """$q$
                USING g.gateway_id, x.held_ids, x.held_versions, x.held_seqs, x.held_starts, x.held_bodies;
        END IF;
        IF x.moved IS NOT NULL THEN  -- rare: each probes every month's index, by the session's id
            DELETE FROM sessions
                WHERE gateway_id = g.gateway_id AND session_id = ANY (x.moved) AND seq < g.lo;
        END IF;
    END LOOP;
    RETURN NULL;
END $fn$"""


def migration() -> Migration:
    """Central schema 4: the arrival check in one pass, ``sessions`` kept by its primary key."""
    return Migration((
        _ARRIVED,
        "DROP POLICY records_own_insert ON records",
        # role_name is unique: the role's one gateway, looked up once per statement (an InitPlan)
        """CREATE POLICY records_own_insert ON records FOR INSERT TO social_monitor_gateway WITH CHECK (
            gateway_id = (SELECT g.gateway_id FROM gateways g WHERE g.role_name = current_user))""",
    ))


__all__ = ["CHECK_AND_INSERT", "UPDATE_HELD", "migration", "py_float_sql", "record_hash_sql"]
