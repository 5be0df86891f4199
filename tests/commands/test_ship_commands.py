"""`social-monitor ship`: the command line over a real central server, and the config it reads."""

from __future__ import annotations

import os

import pytest

from monitor.cli import main
from monitor.config.loader import load_config
from monitor.errors import ConfigError
from tests.central_helpers import central_db, fill


def _trust(write_config, example_data, **store) -> str:
    example_data["store"] = {"path": "oak.db", **store}
    if store.get("central"):
        example_data["gateway"] = {"id": "oak"}
    return str(write_config(example_data))


def test_ship_once_catches_up_and_says_where(pg_server, write_config, example_data, tmp_path, capsys):
    name, roles = central_db(pg_server, ["oak"])
    config = _trust(write_config, example_data, central=pg_server.url(roles["oak"], name))
    head = fill(tmp_path / "oak.db", 12)
    assert main(["ship", "--once", "--config", config]) == 0
    out = capsys.readouterr().out
    assert f"gateway oak: shipped {head} records" in out
    assert f"holds through record {head} of {head}; lag 0 records" in out
    assert main(["ship", "--once", "--config", config]) == 0
    assert "shipped 0 records" in capsys.readouterr().out


def test_ship_without_a_central_store_says_so(write_config, example_data, capsys):
    config = _trust(write_config, example_data)
    assert main(["ship", "--once", "--config", config]) == 1
    assert "store.central is not set" in capsys.readouterr().err


def test_ship_to_a_server_that_is_not_there_is_one_line(write_config, example_data, tmp_path, capsys):
    config = _trust(write_config, example_data, central=f"postgresql://gw@/sm?host={tmp_path}&port=1")
    fill(tmp_path / "oak.db", 2)
    assert main(["ship", "--once", "--config", config]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("social-monitor: central store gw@")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("store", "gateway", "error"),
    [
        ({"central": "postgresql://gw:pw@db/sm"}, {"id": "oak"}, "holds a password"),
        ({"central": "postgresql://db/sm"}, {"id": "oak"}, "names no role"),
        ({"central": "postgresql://gw@db/sm"}, None, "gateway.id is not"),
        ({}, {"id": "Oak School"}, "gateway id 'Oak School'"),
    ],
)
def test_central_settings_are_checked_at_load(write_config, example_data, store, gateway, error):
    example_data["store"] = store
    if gateway is not None:
        example_data["gateway"] = gateway
    with pytest.raises(ConfigError, match=error):
        load_config(write_config(example_data))


def test_sqlite_stays_the_default(write_config, example_data):
    config = load_config(write_config(example_data))
    assert config.model.store.central is None and config.model.gateway is None
    assert os.fspath(config.store_path).endswith(".db")
