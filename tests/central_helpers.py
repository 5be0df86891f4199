"""Gateways and a central database for the central store's tests: real SQLite stores, a real server."""

from __future__ import annotations

from pathlib import Path

from monitor.store.postgres.central import CentralStore
from monitor.store.sqlite import SQLiteSessionStore
from tests.store_helpers import T0, event


def fill(path: Path, sessions: int, *, start: float = T0, device: str = "OAK", per_write: int = 50,
         extend: bool = True) -> int:
    """Record `sessions` sessions (each extended once when `extend`: two versions) into the gateway store
    at `path`; returns its chain head's record id."""
    with SQLiteSessionStore(path) as store:
        for first in range(0, sessions, per_write):
            ids = range(first, min(first + per_write, sessions))
            store.write([event(start + i * 400.0, device=f"{device}-{i % 97:04d}") for i in ids])
            if extend:
                store.write([event(start + i * 400.0 + 30, device=f"{device}-{i % 97:04d}") for i in ids])
        return store.chain_head().record_id


def local_records(path: Path) -> list[tuple]:
    with SQLiteSessionStore(path, create=False) as store:
        return store.records_since(0, 10**9)


def role_for(name: str, gateway: str) -> str:
    """Roles are cluster-wide: one per database and gateway, so tests never share them."""
    return f"{name}_{gateway}".replace("-", "_")


def central_db(server, gateways: list[str]) -> tuple[str, dict[str, str]]:
    """A fresh, migrated database with `gateways` registered: its name, and each gateway's role."""
    name = server.create_database("central")
    roles = {gateway: role_for(name, gateway) for gateway in gateways}
    with CentralStore(server.dsn(dbname=name)) as admin:
        admin.migrate()
        for gateway, role in roles.items():
            admin.register_gateway(gateway, role)
    return name, roles


# --- a trust of two schools for the trust-wide commands ---------------------------------------------

DAY = 86400.0


def reader_role(server, name: str) -> str:
    """A login role in social_monitor_reader (the exporting role) for database `name`."""
    import psycopg

    role = f"{name}_auditor"
    with psycopg.connect(server.dsn(dbname=name), autocommit=True) as con:
        con.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE social_monitor_reader')
    return role


def two_schools(server, tmp_path: Path, keys: dict) -> tuple[str, dict[str, str], str]:
    """Gateways oak (oak-primary) and elm (ash-secondary), each a real store shipped with its signed head.

    jsmith (staff S1002) is seen at both: at oak as S1002 on their laptop OAK-LT-0002 (and once on it with
    nobody signed in), at elm signed in on the staff room PC as `TRUST\\jsmith` and `jsmith@trust.example`
    (stored as typed). Others: S1001 at oak, S2002 at elm. Session ids 1.. at each gateway, so they repeat;
    elm's session 1 is reviewed.
    Returns the database, the gateway roles, and a reader role."""
    from monitor.store.postgres.shipper import Shipper
    from monitor.store.reviews import append_review
    from monitor.store.signing import public_key_text

    plan = {
        "oak": [(0, "OAK-LT-0002", "S1002"), (1, "OAK-LT-0002", None), (2, "OAK-LT-0001", "S1001"),
                (3, "OAK-LT-0002", "S1002")],
        "elm": [(0, "ASH-PC-0001", "TRUST\\jsmith"), (1, "ASH-LT-0002", "S2002"),
                (4, "ASH-PC-0001", "jsmith@trust.example")],
    }
    schools = {"oak": "oak-primary", "elm": "ash-secondary"}
    name, roles = central_db(server, list(plan))
    with CentralStore(server.dsn(dbname=name)) as admin:
        for gateway, key in keys.items():
            admin.set_public_key(gateway, public_key_text(key.public_key()))
    for gateway, rows in plan.items():
        path = tmp_path / f"{gateway}.db"
        with SQLiteSessionStore(path) as store:
            for day, device, owner in rows:
                store.write([event(T0 + day * DAY, device=device, owner=owner, school=schools[gateway],
                                   local_date=f"2026-09-{21 + day}")])
        if gateway == "elm":  # elm's session 1 is reviewed; oak's session 1 is not
            append_review(path, 1, "no action", "spoke to J", "checked", "dpo", "root", T0 + 6 * DAY)
        with SQLiteSessionStore(path) as store:
            store.sign_head(keys[gateway], "interval")
        shipper = Shipper(path, server.dsn(roles[gateway], name), gateway)
        shipper.ship_once()
        shipper.close()
    return name, roles, reader_role(server, name)
