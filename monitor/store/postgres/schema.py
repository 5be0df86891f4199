"""The central store's tables, roles and checks, as versioned migrations (PostgreSQL 13 or later).

Every gateway's chained records land in one ``records`` table keyed by
(gateway_id, seq), where seq is the record's id in the gateway's own chain.
Nobody may update or delete a record: the gateway roles may only insert their
own (row-level security), and the check that runs on arrival (a statement
trigger, `central_records_arrived`) refuses any batch that does not continue
the gateway's chain exactly from the central cursor: consecutive ids, each
``prev_hash`` the hash before it, each hash recomputed from its header, each
body hashing to its digest. The same trigger keeps ``gateways`` (the cursor)
and ``sessions`` (one row per session, its latest version, as the gateway's
store has) in step, inside the inserting transaction, so a batch is all or
nothing. Schema 4 (`monitor.store.postgres.arrival`) rewrote that trigger so its
cost per batch stays flat as the history grows.

Records and sessions are partitioned by month of the session's first
sighting (UTC), so retention drops whole partitions; `central_ensure_month`
creates a month's partitions when a gateway first ships into it.
``chain_heads`` receives the gateways' signed heads (tamper-evidence, issue
20), checked as `monitor.store.postgres.heads` says (schema 2).

Migrations are applied once each, in order, under an advisory lock, with a
row in ``schema_version``; a database newer than the code is refused.
"""

from __future__ import annotations

import time
from typing import Any

from monitor.store.chain import GENESIS
from monitor.store.postgres import arrival, heads, retention
from monitor.store.postgres.arrival import py_float_sql, record_hash_sql
from monitor.store.schema import Migration, check_migrations, run_steps

GATEWAY_ROLE = "social_monitor_gateway"  # group role: every gateway's login role is a member
READER_ROLE = "social_monitor_reader"  # group role: the exporting role reads, nothing else
MIGRATION_LOCK = 0x534D_4D49  # pg_advisory_xact_lock key: one migrator at a time

_PY_FLOAT = f"""CREATE FUNCTION central_py_float(v double precision) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET extra_float_digits = 1 AS $$
    SELECT {py_float_sql("v")}
$$"""

# the same hash for one record, callable (checks by hand, tests)
_RECORD_HASH = f"""CREATE FUNCTION central_record_hash(seq bigint, session_id bigint, version integer,
    recorded_at double precision, body_sha256 text, prev_hash text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET extra_float_digits = 1 AS $$
    SELECT {record_hash_sql("seq", "session_id", "version", "recorded_at", "body_sha256", "prev_hash")}
$$"""

# the partition key of a record: its session's first sighting, or (a purged body) when it was recorded
SESSION_START_SQL = "coalesce(to_timestamp((body::json->>'first_seen')::float8), to_timestamp(recorded_at))"

_ENSURE_MONTH = """CREATE FUNCTION central_ensure_month(at timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    m timestamp := date_trunc('month', at AT TIME ZONE 'UTC');
    suffix text := to_char(m, 'YYYY_MM');
    lo timestamptz := m AT TIME ZONE 'UTC';
    hi timestamptz := (m + interval '1 month') AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass('records_' || suffix) IS NOT NULL AND to_regclass('sessions_' || suffix) IS NOT NULL THEN
        RETURN suffix;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('social_monitor_partitions'));
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF records FOR VALUES FROM (%L) TO (%L)',
                   'records_' || suffix, lo, hi);
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF sessions FOR VALUES FROM (%L) TO (%L)',
                   'sessions_' || suffix, lo, hi);
    RETURN suffix;
END $$"""

_ARRIVED = """CREATE FUNCTION central_records_arrived() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET extra_float_digits = 1
    SET work_mem = '64MB' AS $$
DECLARE
    g record;
    cur record;
    bad record;
    top record;
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
        SELECT a.seq, a.why INTO bad FROM (
            SELECT r.seq, CASE
                WHEN r.prev_hash <> coalesce(lag(r.hash) OVER w, cur.last_hash)
                    THEN 'it does not link to record ' || (r.seq - 1)
                WHEN r.hash IS DISTINCT FROM """ + record_hash_sql(
                    "r.seq", "r.session_id", "r.version", "r.recorded_at", "r.body_sha256",
                    "r.prev_hash") + """
                    THEN 'its hash does not match its fields'
                WHEN r.body IS NOT NULL AND r.body_sha256 <> encode(sha256(convert_to(r.body, 'UTF8')), 'hex')
                    THEN 'its content does not match its digest'
                WHEN r.session_start <> coalesce(to_timestamp((r.body::json->>'first_seen')::float8),
                                                 to_timestamp(r.recorded_at))
                    THEN 'its partition time is not its session''s first sighting'
            END AS why
            FROM arrived r WHERE r.gateway_id = g.gateway_id WINDOW w AS (ORDER BY r.seq)
        ) a WHERE a.why IS NOT NULL ORDER BY a.seq LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'gateway %: record % refused: %', g.gateway_id, bad.seq, bad.why;
        END IF;
        SELECT seq, hash, recorded_at INTO top FROM arrived
            WHERE gateway_id = g.gateway_id ORDER BY seq DESC LIMIT 1;
        UPDATE gateways SET last_seq = top.seq, last_hash = top.hash, last_recorded_at = top.recorded_at,
            received_at = now() WHERE gateway_id = g.gateway_id;
        WITH latest AS (
            -- each session's latest version picked first, then only its body parsed
            SELECT session_id, version, seq, body::jsonb AS b FROM (
                SELECT DISTINCT ON (session_id) session_id, version, seq, body
                -- session 0 is the gateway's purge records: its local retention, not a session
                -- (central retention is the trust's own, by partition)
                FROM arrived WHERE gateway_id = g.gateway_id AND body IS NOT NULL AND session_id <> 0
                ORDER BY session_id, version DESC
            ) newest
        ), changed AS (
            UPDATE sessions s SET version = l.version, seq = l.seq,
                first_seen = to_timestamp((l.b->>'first_seen')::float8),
                last_seen = to_timestamp((l.b->>'last_seen')::float8), owner = l.b->>'owner',
                flagged = jsonb_array_length(l.b->'flags') > 0 AND jsonb_typeof(l.b->'exemption') IS
                    DISTINCT FROM 'object', body = l.b
            FROM latest l
            WHERE s.gateway_id = g.gateway_id AND s.session_id = l.session_id AND s.version < l.version
            RETURNING s.session_id
        )
        INSERT INTO sessions (gateway_id, session_id, version, seq, first_seen, last_seen, school, device,
                              owner, platform, zone, flagged, body)
        SELECT g.gateway_id, l.session_id, l.version, l.seq, to_timestamp((l.b->>'first_seen')::float8),
               to_timestamp((l.b->>'last_seen')::float8), l.b->>'school', l.b->>'device', l.b->>'owner',
               l.b->>'platform', l.b->>'zone',
               jsonb_array_length(l.b->'flags') > 0
                   AND jsonb_typeof(l.b->'exemption') IS DISTINCT FROM 'object',
               l.b
        FROM latest l WHERE NOT EXISTS (
            SELECT 1 FROM sessions s WHERE s.gateway_id = g.gateway_id AND s.session_id = l.session_id);
    END LOOP;
    RETURN NULL;
END $$"""

# a gateway whose store compacted its oldest records before it ever shipped starts from its checkpoint
_ANCHOR = """CREATE FUNCTION central_anchor(p_gateway text, p_seq bigint, p_hash text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE gateways SET anchor_seq = p_seq, anchor_hash = p_hash, last_seq = p_seq, last_hash = p_hash
        WHERE gateway_id = p_gateway AND last_seq = 0
          AND (role_name = session_user OR (SELECT rolsuper FROM pg_roles WHERE rolname = session_user));
    IF NOT FOUND THEN
        RAISE EXCEPTION 'gateway %: not anchored at record % (already shipping, or not its role)',
            p_gateway, p_seq;
    END IF;
    RAISE LOG 'social-monitor: gateway % anchored at its checkpoint, record %', p_gateway, p_seq;
END $$"""

_GROUP_ROLES = f"""DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{GATEWAY_ROLE}') THEN
        CREATE ROLE {GATEWAY_ROLE} NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER_ROLE}') THEN
        CREATE ROLE {READER_ROLE} NOLOGIN;
    END IF;
END $$"""

MIGRATIONS: dict[int, Migration] = {
    1: Migration((
        _GROUP_ROLES,
        f"""CREATE TABLE gateways (
            gateway_id TEXT PRIMARY KEY CHECK (gateway_id ~ '^[a-z0-9][a-z0-9._-]{{0,62}}$'),
            role_name TEXT NOT NULL UNIQUE,
            anchor_seq BIGINT NOT NULL DEFAULT 0,
            anchor_hash TEXT NOT NULL DEFAULT '{GENESIS}',
            last_seq BIGINT NOT NULL DEFAULT 0,
            last_hash TEXT NOT NULL DEFAULT '{GENESIS}',
            last_recorded_at DOUBLE PRECISION,
            received_at TIMESTAMPTZ,
            registered_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE records (
            gateway_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            session_id BIGINT NOT NULL,
            version INTEGER NOT NULL,
            recorded_at DOUBLE PRECISION NOT NULL,
            body TEXT,
            body_sha256 TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            session_start TIMESTAMPTZ NOT NULL,
            received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (gateway_id, seq, session_start)
        ) PARTITION BY RANGE (session_start)""",
        """CREATE TABLE sessions (
            gateway_id TEXT NOT NULL,
            session_id BIGINT NOT NULL,
            version INTEGER NOT NULL,
            seq BIGINT NOT NULL,
            first_seen TIMESTAMPTZ NOT NULL,
            last_seen TIMESTAMPTZ NOT NULL,
            school TEXT NOT NULL,
            device TEXT NOT NULL,
            owner TEXT,
            platform TEXT NOT NULL,
            zone TEXT NOT NULL,
            flagged BOOLEAN NOT NULL,
            body JSONB NOT NULL,
            PRIMARY KEY (gateway_id, session_id, first_seen)
        ) PARTITION BY RANGE (first_seen)""",
        "CREATE INDEX sessions_school ON sessions (school, flagged, first_seen)",
        "CREATE INDEX sessions_owner ON sessions (owner, first_seen)",
        "CREATE INDEX sessions_device ON sessions (device, first_seen)",
        # issue 20's signed chain heads arrive here; checking the signature is that issue's job
        """CREATE TABLE chain_heads (
            gateway_id TEXT NOT NULL REFERENCES gateways (gateway_id),
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL,
            signature TEXT,
            received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (gateway_id, seq)
        )""",
        _PY_FLOAT,
        _RECORD_HASH,
        _ENSURE_MONTH,
        _ARRIVED,
        _ANCHOR,
        """CREATE TRIGGER records_arrived AFTER INSERT ON records REFERENCING NEW TABLE AS arrived
            FOR EACH STATEMENT EXECUTE FUNCTION central_records_arrived()""",
        # least privilege: nobody updates or deletes a record; a gateway inserts and reads its own
        "REVOKE ALL ON gateways, records, sessions, chain_heads FROM PUBLIC",
        "REVOKE ALL ON FUNCTION central_ensure_month(timestamptz) FROM PUBLIC",
        "REVOKE ALL ON FUNCTION central_records_arrived() FROM PUBLIC",
        "REVOKE ALL ON FUNCTION central_anchor(text, bigint, text) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION central_anchor(text, bigint, text) TO {GATEWAY_ROLE}",
        "ALTER TABLE gateways ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE records ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE chain_heads ENABLE ROW LEVEL SECURITY",
        f"GRANT SELECT ON gateways TO {GATEWAY_ROLE}",
        f"GRANT SELECT, INSERT ON records TO {GATEWAY_ROLE}",
        f"GRANT SELECT, INSERT ON chain_heads TO {GATEWAY_ROLE}",
        f"GRANT EXECUTE ON FUNCTION central_ensure_month(timestamptz) TO {GATEWAY_ROLE}",
        f"CREATE POLICY gateway_own ON gateways FOR SELECT TO {GATEWAY_ROLE} USING (role_name = "
        "current_user)",
        f"""CREATE POLICY records_own_insert ON records FOR INSERT TO {GATEWAY_ROLE} WITH CHECK (EXISTS (
            SELECT 1 FROM gateways g WHERE g.gateway_id = records.gateway_id AND g.role_name
                = current_user))""",
        f"""CREATE POLICY records_own_read ON records FOR SELECT TO {GATEWAY_ROLE} USING (EXISTS (
            SELECT 1 FROM gateways g WHERE g.gateway_id = records.gateway_id AND g.role_name
                = current_user))""",
        f"""CREATE POLICY heads_own ON chain_heads TO {GATEWAY_ROLE} USING (EXISTS (
            SELECT 1 FROM gateways g WHERE g.gateway_id = chain_heads.gateway_id AND g.role_name
                = current_user))""",
        f"GRANT SELECT ON gateways, records, sessions, chain_heads TO {READER_ROLE}",
        f"CREATE POLICY gateways_read ON gateways FOR SELECT TO {READER_ROLE} USING (true)",
        f"CREATE POLICY records_read ON records FOR SELECT TO {READER_ROLE} USING (true)",
        f"CREATE POLICY heads_read ON chain_heads FOR SELECT TO {READER_ROLE} USING (true)",
    )),
    2: heads.migration(),
    3: retention.migration(),
    4: arrival.migration(),
}

SCHEMA_VERSION = check_migrations(MIGRATIONS)


class CentralSchemaError(RuntimeError):
    """The central database is newer than this code, or is not a social-monitor database."""


def current_version(con: Any) -> int:
    """The schema version the database holds (0: nothing applied yet)."""
    if con.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        return 0
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def migrate(con: Any, migrations: dict[int, Migration] = MIGRATIONS, now: float | None = None) -> list[int]:
    """Bring the database to the newest schema in one transaction; returns the versions applied.

    Run by the database owner (it creates the group roles, so it needs CREATEROLE). Several
    migrators at once wait for each other on an advisory lock."""
    now = time.time() if now is None else now
    newest = check_migrations(migrations)
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                    "applied_at DOUBLE PRECISION NOT NULL)")
        current = current_version(con)
        if current > newest:
            raise CentralSchemaError(f"central store schema {current} is newer than this social-monitor "
                                     f"understands ({newest}): upgrade social-monitor")
        applied = run_steps(con, current, migrations, now,
                            "INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)")
    return applied


__all__ = ["GATEWAY_ROLE", "MIGRATIONS", "READER_ROLE", "SCHEMA_VERSION", "SESSION_START_SQL",
           "CentralSchemaError", "current_version", "migrate", "record_hash_sql"]
