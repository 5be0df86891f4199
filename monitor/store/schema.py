"""The store's tables, and the versioned migrations that carry a gateway's file forward.

Each migration brings the schema to its version and is applied once, in order,
inside the opener's write transaction, with a row in ``schema_version`` saying
when. A gateway that upgrades social-monitor opens its existing file and gets
every migration it has not had yet, with nothing recorded lost; a file newer
than the code is refused rather than misread. The statements are plain SQL
(no AUTOINCREMENT, no UPSERT, no JSON functions) so that a PostgreSQL store
can run the same list.

To change the schema: append `Migration` number N+1 to `MIGRATIONS` (never edit
one that has shipped), and add it to tests/store/test_schema.py, which opens a
store written by an earlier release (tests/data/store/).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

STORE_FORMAT = "social-monitor-store"

SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
    "applied_at DOUBLE PRECISION NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: statements, then an optional `seed(con, now)` for rows it needs."""

    statements: tuple[str, ...]
    seed: Callable[[Any, float], None] | None = None
    # columns it adds to `sessions`, with the SQL value a row written before has: a reader of an
    # older file (opened without `create`) sees them through a TEMP view and changes no byte of it
    read_defaults: Mapping[str, str] | None = None


def _seed_v1(con: Any, now: float) -> None:
    """A new store's identity and its first session id."""
    con.executemany(
        "INSERT INTO store_meta (name, value) VALUES (?, ?)",
        [("format", STORE_FORMAT), ("next_session_id", "1"), ("created_at", repr(now))],
    )


# The key is the version each migration brings the schema to.
MIGRATIONS: dict[int, Migration] = {
    1: Migration(
        (
            """CREATE TABLE store_meta (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
            """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            session_key TEXT NOT NULL,
            device TEXT NOT NULL,
            device_mac TEXT,
            asset_tag TEXT,
            device_kind TEXT,
            owner TEXT,
            platform TEXT NOT NULL,
            platform_name TEXT,
            category TEXT,
            school TEXT NOT NULL,
            zone TEXT NOT NULL,
            zone_kind TEXT,
            pupil_area INTEGER,
            period TEXT,
            period_kind TEXT NOT NULL,
            week TEXT,
            local_date TEXT NOT NULL,
            first_seen DOUBLE PRECISION NOT NULL,
            last_seen DOUBLE PRECISION NOT NULL,
            observations INTEGER NOT NULL,
            signals TEXT NOT NULL,
            hostnames TEXT NOT NULL,
            flags TEXT NOT NULL,
            -- signals: comma-separated fixed tokens; hostnames, flags, exemption: canonical JSON
            flagged INTEGER NOT NULL,
            exemption TEXT,
            version INTEGER NOT NULL,
            record_id INTEGER NOT NULL
        )""",
            # the open session of a key: merge lookups inside the write transaction
            "CREATE INDEX sessions_open ON sessions (session_key, last_seen)",
            # one school's month (exports, `events --school`), flagged or all
            "CREATE INDEX sessions_school_flagged ON sessions (school, flagged, first_seen)",
            "CREATE INDEX sessions_school ON sessions (school, first_seen)",
            # one device's or one person's history (investigations, subject access requests)
            "CREATE INDEX sessions_device ON sessions (device, first_seen)",
            "CREATE INDEX sessions_owner ON sessions (owner, first_seen)",
            # time ranges across schools, and retention
            "CREATE INDEX sessions_last_seen ON sessions (last_seen)",
            """CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL,
            version INTEGER NOT NULL,
            recorded_at DOUBLE PRECISION NOT NULL,
            body TEXT,
            body_sha256 TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
            "CREATE INDEX records_session ON records (session_id, version)",
            """CREATE TABLE checkpoints (
            id INTEGER PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            cutoff DOUBLE PRECISION NOT NULL,
            through_record INTEGER NOT NULL,
            hash TEXT NOT NULL,
            records_removed INTEGER NOT NULL,
            sessions_removed INTEGER NOT NULL
        )""",
        ),
        seed=_seed_v1,
    ),
    # Flags a panel can rely on (issue 17): the roles of the domains a session saw (platform itself,
    # or embed/widget/tracker/cdn that other sites load), and the "probably teaching" mark. Rows
    # written before keep '' and 0: their roles were not recorded, and their records still verify.
    2: Migration(
        (
            "ALTER TABLE sessions ADD COLUMN roles TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE sessions ADD COLUMN probably_teaching INTEGER NOT NULL DEFAULT 0",
        ),
        read_defaults={"roles": "''", "probably_teaching": "0"},
    ),
    # Traffic that hides its destination (issue 16): how a session's flows hid it (encrypted-dns, vpn,
    # tor, ech), comma-separated like signals. Such a session may have no platform (''). Rows
    # written before keep '': nothing was recognised then, and their records still verify.
    3: Migration(
        ("ALTER TABLE sessions ADD COLUMN obscured_by TEXT NOT NULL DEFAULT ''",),
        read_defaults={"obscured_by": "''"},
    ),
}

SCHEMA_VERSION = max(MIGRATIONS)

# The sessions table's columns, in the order the row codec reads and writes them.
SESSION_COLUMNS = (
    "id", "session_key", "device", "device_mac", "asset_tag", "device_kind", "owner", "platform",
    "platform_name", "category", "school", "zone", "zone_kind", "pupil_area", "period", "period_kind",
    "week", "local_date", "first_seen", "last_seen", "observations", "signals", "hostnames", "flags",
    "flagged", "exemption", "version", "record_id", "roles", "probably_teaching", "obscured_by",
)


def check_migrations(migrations: Mapping[int, Migration]) -> int:
    """The version a table of migrations reaches; they must be numbered 1..N without a gap."""
    versions = sorted(migrations)
    if not versions or versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1..N without gaps, got {versions}")
    return versions[-1]


def read_in_place(con: Any, current: int, migrations: Mapping[int, Migration]) -> bool:
    """Let a reader see an older file at the current schema without changing a byte of it (evidence):
    a TEMP view adds the newer columns. False when it cannot (then the file must be migrated)."""
    view = reader_view(current, migrations)
    if view is None:
        return False
    con.execute(view)
    return True


def reader_view(current: int, migrations: Mapping[int, Migration]) -> str | None:
    """A TEMP view giving an older file's `sessions` the columns of the pending migrations, or None
    when there are none or one of them cannot be read that way."""
    columns: dict[str, str] = {}
    if not pending(current, migrations):
        return None
    for version in pending(current, migrations):
        defaults = migrations[version].read_defaults
        if defaults is None:
            return None
        columns.update(defaults)
    added = "".join(f", {value} AS {name}" for name, value in columns.items())
    return f"CREATE TEMP VIEW sessions AS SELECT *{added} FROM main.sessions"


def pending(current: int, migrations: Mapping[int, Migration]) -> list[int]:
    """The versions a store at `current` still needs, in order (none for a store newer than the code)."""
    return [v for v in sorted(migrations) if v > current]


def apply(con: Any, current: int, migrations: Mapping[int, Migration], now: float) -> list[int]:
    """Run every pending migration on `con`, inside the caller's transaction; returns the versions applied.

    A new file (`current` 0) gets its ``schema_version`` table first."""
    check_migrations(migrations)
    con.execute(SCHEMA_VERSION_TABLE)
    return run_steps(con, current, migrations, now,
                     "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)")


def run_steps(con: Any, current: int, migrations: Mapping[int, Migration], now: float,
              record_sql: str) -> list[int]:
    """Each pending step's statements and seed, then its row in schema_version (`record_sql`, in the
    database's own placeholder style): the one loop the SQLite and the central PostgreSQL schema share."""
    applied = []
    for version in pending(current, migrations):
        step = migrations[version]
        for statement in step.statements:
            con.execute(statement)
        if step.seed is not None:
            step.seed(con, now)
        con.execute(record_sql, (version, now))
        applied.append(version)
    return applied


__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SESSION_COLUMNS",
    "STORE_FORMAT",
    "Migration",
    "apply",
    "check_migrations",
    "pending",
    "read_in_place",
    "reader_view",
]
