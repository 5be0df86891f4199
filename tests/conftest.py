"""Shared fixtures: the example trust, and trusts written to a temp dir with edits."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from monitor.config.loader import Config, load_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "example.yaml"
SHARED = REPO.parent / "shared"
LONDON = ZoneInfo("Europe/London")


def london(*args: int) -> float:
    """A local Europe/London wall-clock time as a UTC timestamp."""
    return datetime(*args, tzinfo=LONDON).timestamp()


@pytest.fixture(scope="session")
def example_config() -> Config:
    return load_config(EXAMPLE)


@pytest.fixture
def example_data() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a trust config (the example, or given data) beside copies of its CSV files."""

    def write(data: dict | None = None, *, text: str | None = None, files: dict | None = None) -> Path:
        for name in ("devices.csv", "staff-timetable.csv", "logins.csv"):
            shutil.copy(EXAMPLE.parent / name, tmp_path / name)
        for name, content in (files or {}).items():
            (tmp_path / name).write_text(content)
        path = tmp_path / "trust.yaml"
        if text is not None:
            path.write_text(text)
        else:
            body = copy.deepcopy(data if data is not None else yaml.safe_load(EXAMPLE.read_text()))
            path.write_text(yaml.safe_dump(body, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the whole session (tests/pg_server.py), stopped at the end."""
    from tests import pg_server as pg

    reason = pg.missing_reason()
    if reason:
        pytest.skip(reason)
    server = pg.start_server()
    try:
        yield server
    finally:
        pg.remove_server(server)


@pytest.fixture
def pg_database(pg_server) -> str:
    """A fresh database on the session's server, for one test: its name."""
    return pg_server.create_database()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the real PostgreSQL server (started once per session) is an integration test."""
    for item in items:
        if {"pg_server", "pg_database"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
