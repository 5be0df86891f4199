"""Central store benchmark: a trust-wide month of flagged sessions, listed and exported, against psql \\copy.

    PYTHONPATH=. .venv/bin/python bench/central_month_bench.py [--sessions 5000000] [--gateways 10] [--runs 3]

Starts its own PostgreSQL server (as tests/pg_server.py does), migrates the
central schema, and fills ``sessions`` straight in SQL (generate_series, one
INSERT per month, the secondary indexes built after the load): `--sessions`
sessions from `--gateways` schools over the 12 months before 2026-10, bodies
shaped as a gateway writes them, about a third flagged. Then, as a login role
of ``social_monitor_reader`` (the exporting role), for one month trust-wide:

1. list: the flagged sessions of the month streamed through a server-side cursor
   (psycopg, 5,000 rows a round trip), one line per session as `events` prints it;
2. export: the same query's rows as CSV through ``COPY (…) TO STDOUT`` into a file;
3. the peer: ``psql -c "\\copy (…) TO file CSV"`` of the same query, the same role.

Reports rows, seconds (best of `--runs`) and the ratio to psql for each.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg.types.string import TextLoader  # noqa: E402

from monitor.store.postgres.central import CentralStore  # noqa: E402
from tests import pg_server as pg  # noqa: E402

MONTHS = [
    f"{y}-{m:02d}-01" for y, m in [(2025, 10), (2025, 11), (2025, 12), *((2026, n) for n in range(1, 10))]]
MONTH = ("2026-06-01", "2026-07-01")  # the month listed: one of twelve, so about 1/12 of the sessions
QUERY = ("SELECT gateway_id, session_id, version, first_seen, last_seen, school, device, owner, platform, "
         f"zone, body FROM sessions WHERE flagged AND first_seen >= '{MONTH[0]}' "
         f"AND first_seen < '{MONTH[1]}' "
         "ORDER BY first_seen, gateway_id, session_id")
SECONDARY = ["sessions_school", "sessions_owner", "sessions_device"]

# a gateway's session body (monitor.store.codec), its varying fields from the row's number i
_FILL = """INSERT INTO sessions (gateway_id, session_id, version, seq, first_seen, last_seen, school, device,
    owner, platform, zone, flagged, body)
SELECT gw, sid, 2, 2 * sid, fs, fs + interval '6 minutes', school, device, owner, platform, zone, flagged,
    jsonb_build_object('asset_tag', device, 'category', 'social', 'device', device, 'device_kind', 'laptop',
        'device_mac', '3c:52:82:10:00:01', 'exemption', NULL, 'first_seen', extract(epoch FROM fs),
        'flags', CASE WHEN flagged THEN '[{{"clause":"4.3","name":"contact_time",'
                                        '"reason":"personal social media during contact time"}}]'::jsonb
                      ELSE '[]'::jsonb END,
        'hostnames', jsonb_build_array('www.' || platform || '.com'), 'id', sid,
        'last_seen', extract(epoch FROM fs) + 360, 'local_date', to_char(fs, 'YYYY-MM-DD'),
        'observations', 1 + i % 40, 'owner', owner, 'period', 'Lesson 1', 'period_kind', 'contact',
        'platform', platform, 'platform_name', initcap(platform), 'pupil_area', true, 'school', school,
        'signals', '["tls"]'::jsonb, 'version', 2, 'week', 'A', 'zone', zone, 'zone_kind', 'classroom')
FROM (
    SELECT i, 'gw' || lpad((i % {gateways})::text, 2, '0') AS gw, {base} + i AS sid,
        '{month}'::timestamptz + ((i - 1)::float8 / {n}) * ('{month}'::timestamptz + interval '1 month'
            - '{month}'::timestamptz) AS fs,
        'school-' || (i % {gateways}) AS school, 'DEV-' || lpad((i % 3001)::text, 4, '0') AS device,
        'staff-' || lpad((i % 2003)::text, 4, '0') AS owner,
        (ARRAY['facebook', 'instagram', 'tiktok', 'youtube', 'snapchat'])[1 + i % 5] AS platform,
        (ARRAY['classrooms', 'staffroom', 'hall'])[1 + i % 3] AS zone, i % 3 = 0 AS flagged
    FROM generate_series(1, {n}) AS i
) s"""


def fill(dsn: str, sessions: int, gateways: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("SET maintenance_work_mem = '256MB'")
        for index in SECONDARY:  # built once after the load: cheaper than 5M insertions into each
            con.execute(f"DROP INDEX {index}")
        per_month = sessions // len(MONTHS)
        for k, month in enumerate(MONTHS):
            con.execute("SELECT central_ensure_month(%s::timestamptz)", (month,))
            n = per_month + (sessions - per_month * len(MONTHS) if k == len(MONTHS) - 1 else 0)
            con.execute(_FILL.format(gateways=gateways, base=k * 10_000_000, month=month, n=n))
            print(f"  {month[:7]}: {n:,} sessions", flush=True)
        con.execute("CREATE INDEX sessions_school ON sessions (school, flagged, first_seen)")
        con.execute("CREATE INDEX sessions_owner ON sessions (owner, first_seen)")
        con.execute("CREATE INDEX sessions_device ON sessions (device, first_seen)")
        con.execute("VACUUM ANALYZE sessions")


def list_rows(dsn: str, out: Path) -> int:
    """Stream the month through a server-side cursor, one line per session (as `events` prints one)."""
    n = 0
    with psycopg.connect(dsn) as con, con.cursor(name="month") as cur, out.open("w") as f:
        con.adapters.register_loader("jsonb", TextLoader)  # a listing prints no body: not parsed per row
        cur.itersize = 5000
        cur.execute(QUERY)
        for row in cur:
            f.write(f"{row[3]:%Y-%m-%d %H:%M} {row[5]} {row[6]} {row[7] or '-'} {row[8]} {row[9]}\n")
            n += 1
    return n


def export_rows(dsn: str, out: Path) -> int:
    """The month's rows as CSV through COPY TO STDOUT, written to a file as they come."""
    with psycopg.connect(dsn) as con, con.cursor() as cur, out.open("wb") as f, \
            cur.copy(f"COPY ({QUERY}) TO STDOUT (FORMAT csv)") as copy:
        for chunk in copy:
            f.write(chunk)
    with out.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def psql_copy(server: pg.PgServer, role: str, db: str, out: Path) -> int:
    """The peer: psql's \\copy of the same query, as the same role."""
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(server.socket_dir),
                    "-p", str(server.port), "-U", role, "-d", db,
                    "-c", f"\\copy ({QUERY}) TO '{out}' CSV"], check=True, env={**os.environ})
    with out.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5_000_000)
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if reason := pg.missing_reason():
        print(f"skipped: {reason}")
        return 1
    server = pg.start_server()
    try:
        name = server.create_database("month")
        owner_dsn = server.dsn(dbname=name)
        with CentralStore(owner_dsn) as owner:
            owner.migrate()
            owner.con.execute(f"CREATE ROLE {name}_reader LOGIN IN ROLE social_monitor_reader")
        t = time.perf_counter()
        fill(owner_dsn, args.sessions, args.gateways)
        print(f"filled {args.sessions:,} sessions in {time.perf_counter() - t:.0f} s")
        reader = server.dsn(f"{name}_reader", name)
        with tempfile.TemporaryDirectory(prefix="central-month-") as tmp:
            ways = {
                "list (server-side cursor, a line per session)":
                    lambda: list_rows(reader, Path(tmp) / "list.txt"),
                "export (COPY TO STDOUT, CSV)": lambda: export_rows(reader, Path(tmp) / "export.csv"),
                "psql \\copy (the peer)": lambda: psql_copy(server, f"{name}_reader", name,
                                                            Path(tmp) / "psql.csv"),
            }
            best: dict[str, float] = {}
            rows: dict[str, int] = {}
            for _ in range(args.runs):  # alternating, so the machine's other load falls on each alike
                for label, run in ways.items():
                    t = time.perf_counter()
                    rows[label] = run()
                    best[label] = min(best.get(label, float("inf")), time.perf_counter() - t)
        peer = best["psql \\copy (the peer)"]
        print(f"a trust-wide month ({MONTH[0][:7]}) of flagged sessions among {args.sessions:,}, "
              f"as the reader role, best of {args.runs}:")
        for label, seconds in best.items():
            print(f"  {label:48s} {rows[label]:>9,} rows  {seconds:6.2f} s  "
                  f"{rows[label] / seconds:>9,.0f} rows/s  x{seconds / peer:.2f} of psql")
    finally:
        pg.remove_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
