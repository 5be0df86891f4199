"""`social-monitor central`: the owner's commands against a real PostgreSQL server, and a real gateway."""

from __future__ import annotations

import os

import pytest

from monitor.cli import main
from monitor.store.signing import load_or_create_key, public_key_text
from tests.central_helpers import fill, role_for
from tests.pg_server import SUPERUSER


@pytest.fixture
def owner_url(pg_server, pg_database) -> str:
    return pg_server.url(SUPERUSER, pg_database)


def _key(tmp_path) -> str:
    return public_key_text(load_or_create_key(tmp_path / "gw.key").public_key())


def test_migrate_creates_the_schema_once(owner_url, capsys):
    assert main(["central", "migrate", "--url", owner_url]) == 0
    assert "applied schema version(s) 1, 2, 3, 4; now at 4" in capsys.readouterr().out
    assert main(["central", "migrate", "--url", owner_url]) == 0
    assert "already at schema version 4" in capsys.readouterr().out


def test_a_registered_gateway_ships_and_verifies(pg_server, pg_database, owner_url, write_config,
                                                 example_data, tmp_path, capsys):
    role = role_for(pg_database, "oak")
    key_file = tmp_path / "oak.pub"
    key_file.write_text(_key(tmp_path) + "\n")
    assert main(["central", "migrate", "--url", owner_url]) == 0
    assert main(["central", "register-gateway", "oak", "--role", role, "--public-key", str(key_file),
                 "--url", owner_url]) == 0
    assert f"gateway oak: registered with role {role}; no password set" in capsys.readouterr().out
    assert main(["central", "status", "--url", owner_url]) == 0
    assert "oak: 0 records held (through 0), newest recorded never; no signed head yet; key " in \
        capsys.readouterr().out

    example_data["store"] = {"path": "oak.db", "central": pg_server.url(role, pg_database)}
    example_data["gateway"] = {"id": "oak"}
    config = str(write_config(example_data))
    head = fill(tmp_path / "oak.db", 10)
    assert main(["ship", "--once", "--config", config]) == 0
    capsys.readouterr()
    assert main(["central", "status", "--url", owner_url]) == 0
    assert f"oak: {head} records held (through {head}), newest recorded 20" in capsys.readouterr().out
    assert main(["central", "verify", "--url", owner_url]) == 0
    assert f"oak: {head} records verified, chain intact" in capsys.readouterr().out


def test_set_key_replaces_the_registered_key(owner_url, pg_database, tmp_path, capsys):
    from monitor.store.signing import fingerprint

    assert main(["central", "migrate", "--url", owner_url]) == 0
    assert main(["central", "register-gateway", "elm", "--role", role_for(pg_database, "elm"),
                 "--url", owner_url]) == 0
    assert "its heads wait for `central set-key`" in capsys.readouterr().out
    key = _key(tmp_path)
    assert main(["central", "set-key", "elm", "--public-key", key, "--url", owner_url]) == 0
    assert f"checked with key {fingerprint(key)}" in capsys.readouterr().out
    assert main(["central", "status", "--url", owner_url]) == 0
    assert f"key {fingerprint(key)}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["register-gateway", "Oak!", "--role", "r_bad_id"], "gateway id 'Oak!': lowercase letters"),
        (["register-gateway", "oak", "--role", "Bad-Role"], "--role: role 'Bad-Role'"),
        (["register-gateway", "oak", "--role", "r_key", "--public-key", "ed25519:nope"],
         "not an Ed25519 public key"),
        (["register-gateway", "oak", "--role", "r_key2", "--public-key", "ssh-ed25519 AAAA"],
         "is not a public key"),
        (["set-key", "ghost", "--public-key", "ed25519:" + "A" * 43 + "="],
         "gateway 'ghost' is not registered"),
        (["verify", "ghost"], "gateway 'ghost' is not registered"),
    ],
)
def test_mistakes_are_one_line(owner_url, argv, error, capsys):
    assert main(["central", "migrate", "--url", owner_url]) == 0
    capsys.readouterr()
    assert main(["central", *argv, "--url", owner_url]) == 1
    err = capsys.readouterr().err
    assert error in err and len(err.strip().splitlines()) == 1, err


def test_a_gateway_registered_twice_is_refused(owner_url, pg_database, capsys):
    role = role_for(pg_database, "oak")
    assert main(["central", "migrate", "--url", owner_url]) == 0
    assert main(["central", "register-gateway", "oak", "--role", role, "--url", owner_url]) == 0
    assert main(["central", "register-gateway", "oak", "--role", role + "x", "--url", owner_url]) == 1
    assert "gateway 'oak' or role" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("", "say which database with --url"),
        ("mysql://x@y/z", "--url: 'mysql://x@y/z' is not a postgresql:// URL"),
        ("postgresql://owner:secret@localhost/db", "--url: the URL holds a password"),
    ],
)
def test_the_url_is_checked_before_connecting(url, error, capsys, monkeypatch):
    monkeypatch.delenv("SOCIAL_MONITOR_CENTRAL_URL", raising=False)
    assert main(["central", "status", *(["--url", url] if url else [])]) == 1
    assert error in capsys.readouterr().err


def test_a_server_that_is_not_there_is_one_line(tmp_path, capsys):
    url = f"postgresql://owner@/db?host={tmp_path}&port=1&connect_timeout=2"
    assert main(["central", "status", "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("social-monitor: central store owner@") and len(err.strip().splitlines()) == 1


def test_the_url_may_come_from_the_environment(owner_url, capsys, monkeypatch):
    monkeypatch.setenv("SOCIAL_MONITOR_CENTRAL_URL", owner_url)
    assert main(["central", "migrate"]) == 0
    assert "now at" in capsys.readouterr().out
    assert os.environ["SOCIAL_MONITOR_CENTRAL_URL"] == owner_url


def test_hold_purge_and_release_from_the_command_line(pg_server, pg_database, owner_url, tmp_path, capsys):
    from monitor.store.postgres.central import CentralStore
    from tests.central_helpers import local_records
    from tests.store.postgres.test_retention import _gateway_store

    role = role_for(pg_database, "oak")
    assert main(["central", "migrate", "--url", owner_url]) == 0
    assert main(["central", "register-gateway", "oak", "--role", role, "--url", owner_url]) == 0
    records = _gateway_store(tmp_path / "oak.db")
    with CentralStore(pg_server.dsn(role, pg_database)) as oak:
        oak.ingest("oak", records)
    capsys.readouterr()
    assert main(["central", "hold", "--case", "HR-7", "--device", "OAK-0002", "--reason", "grievance",
                 "--url", owner_url]) == 0
    assert "case HR-7: hold 1 on device OAK-0002 at every gateway" in capsys.readouterr().out
    assert main(["central", "holds", "--url", owner_url]) == 0
    assert "HR-7: hold 1 on device OAK-0002 at every gateway, opened " in capsys.readouterr().out
    assert main(["central", "purge", "--retention-days", "60", "--now", "2026-12-15",
                 "--url", owner_url]) == 0
    out = capsys.readouterr().out
    assert "2026-09: dropped 4 sessions (8 records, their chain headers kept); kept 2 under legal hold" in out
    assert "1 month(s) before 2026-10-16 dropped; 0 session(s) of released holds removed" in out
    assert main(["central", "hold", "--release", "--case", "HR-7", "--reason", "closed",
                 "--url", owner_url]) == 0
    assert "case HR-7: 1 hold(s) released" in capsys.readouterr().out
    assert main(["central", "purge", "--retention-days", "60", "--now", "2026-12-15",
                 "--url", owner_url]) == 0
    assert "0 month(s) before 2026-10-16 dropped; 2 session(s) of released holds removed" in \
        capsys.readouterr().out
    assert main(["central", "verify", "oak", "--url", owner_url]) == 0
    assert f"oak: {len(local_records(tmp_path / 'oak.db'))} records verified" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["hold", "--case", "X", "--reason", "r"], "name one --device ASSET or one --staff ID"),
        (["hold", "--case", "X", "--reason", "r", "--device", "A", "--staff", "B"], "name one --device"),
        (["hold", "--case", "X", "--reason", "r", "--device", "A", "--gateway", "ghost"],
         "gateway 'ghost' is not registered"),
        (["hold", "--release", "--case", "NONE", "--reason", "r"], "case 'NONE' has no open hold"),
        (["purge", "--retention-days", "0"], "--retention-days: 0 is not a number of days"),
        (["purge", "--retention-days", "30", "--now", "someday"], "--now: 'someday' is not a date"),
    ],
)
def test_hold_and_purge_mistakes_are_one_line(owner_url, argv, error, capsys):
    assert main(["central", "migrate", "--url", owner_url]) == 0
    capsys.readouterr()
    assert main(["central", *argv, "--url", owner_url]) == 1
    err = capsys.readouterr().err
    assert error in err and len(err.strip().splitlines()) == 1, err
