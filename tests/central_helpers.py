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
