"""`verify --against central`: a gateway's store against the head a real central PostgreSQL store took."""

from __future__ import annotations

import pytest

from monitor.cli import main
from monitor.store.postgres.central import CentralStore
from monitor.store.signing import key_path_for, load_or_create_key, public_key_text
from monitor.store.sqlite import SQLiteSessionStore
from tests import pg_server as pg
from tests.central_helpers import central_db, fill


def _trust(write_config, example_data, central: str | None) -> str:
    example_data["store"] = {"path": "oak.db", **({"central": central} if central else {})}
    example_data["gateway"] = {"id": "oak"}
    return str(write_config(example_data))


@pytest.fixture
def anchored(pg_server, write_config, example_data, tmp_path, capsys):
    """Gateway oak, its key registered centrally, 30 records shipped and its signed head taken."""
    name, roles = central_db(pg_server, ["oak"])
    config = _trust(write_config, example_data, pg_server.url(roles["oak"], name))
    store = tmp_path / "oak.db"
    fill(store, 15)
    key = load_or_create_key(key_path_for(store))
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        admin.set_public_key("oak", public_key_text(key.public_key()))
    with SQLiteSessionStore(store) as local:
        local.sign_head(key, "interval")
    assert main(["ship", "--once", "--config", config]) == 0
    capsys.readouterr()
    return config, store, key, pg_server.url(pg.SUPERUSER, name)


def rewrite(store, key, how: str) -> None:
    """What a root insider with the gateway's own key might do to its file."""
    if how == "rebuilt":  # a new file with other records, its head signed again
        store.unlink()
        fill(store, 15, device="ELM")
    elif how == "truncated":  # the file rolled back to an earlier, shorter chain
        store.unlink()
        fill(store, 5)
    if how != "untouched":
        with SQLiteSessionStore(store) as local:
            local.sign_head(key, "interval")


@pytest.mark.parametrize(
    ("how", "code", "said"),
    [
        ("untouched", 0, "holds the central store's signed head 1 (record 30)"),
        ("rebuilt", 1, "changed: record 30 is not the one signed head 1"),
        ("truncated", 1, "removed: record 30, which signed head 1"),
    ],
    ids=["untouched", "rebuilt", "truncated"],
)
@pytest.mark.parametrize("against", ["central", "url"])
def test_a_rewritten_gateway_file_is_caught_against_the_central_head(anchored, capsys, how, code, said,
                                                                    against):
    config, store, key, admin_url = anchored
    rewrite(store, key, how)
    where = "central" if against == "central" else admin_url
    assert main(["verify", "--config", config, "--against", where]) == code
    out, err = capsys.readouterr()
    assert said in (out if code == 0 else err)
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("central", "error"),
    [
        (False, "store.central is not set"),
        (True, "holds no signed head of gateway oak"),  # shipped nothing, signed nothing
    ],
    ids=["no central store", "no head yet"],
)
def test_verify_against_central_without_an_anchor_is_one_line(pg_server, write_config, example_data,
                                                              tmp_path, capsys, central, error):
    name, roles = central_db(pg_server, ["oak"])
    config = _trust(write_config, example_data, pg_server.url(roles["oak"], name) if central else None)
    fill(tmp_path / "oak.db", 3)
    assert main(["verify", "--config", config, "--against", "central"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert error in err and "Traceback" not in err


# --- verify DIR --against central: a trust export's sources against the central store now ----------------

WEEK = ["--from", "2026-09-21", "--to", "2026-09-27"]


@pytest.fixture
def trust_export(pg_server, tmp_path, example_data, write_config, capsys):
    """A trust-wide export of two gateways (oak, elm) from a real central store; the office's config,
    the export directory, the owner's connection and the reader's URL."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.central_helpers import two_schools

    keys = {"oak": Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
            "elm": Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))}
    name, _, reader = two_schools(pg_server, tmp_path, keys)
    (tmp_path / "var").mkdir()
    example_data["store"] = {"path": str(tmp_path / "var" / "office.db"),
                             "central_reader": pg_server.url(reader, name)}
    config = str(write_config(example_data))
    out = tmp_path / "ceo"
    assert main(["export", "--scope", "trust", *WEEK, "--out", str(out), "--config", config]) == 0
    capsys.readouterr()
    with CentralStore(pg_server.dsn(dbname=name)) as owner:
        yield config, out, owner, pg_server.url(reader, name)


def _change_record(owner) -> None:
    owner.con.execute("UPDATE records SET body = replace(body, 'OAK-LT-0001', 'OAK-LT-0009') "
                      "WHERE gateway_id = 'oak' AND seq = 3")


@pytest.mark.parametrize(
    ("how", "tamper", "code", "said"),
    [
        ("against-central", None, 0, "sources: oak: central chain intact through record 4"),
        ("central-url", None, 0, "the sources of 2 gateways hold against the central store"),
        ("against-central", _change_record, 1, "sources: oak: central chain broken at record 3"),
        ("central-url", _change_record, 1, "sources of 2 gateways do NOT hold"),
    ],
)
def test_verify_a_trust_export_against_the_central_store(trust_export, capsys, how, tamper, code, said):
    config, out, owner, url = trust_export
    if tamper:
        tamper(owner)
    anchor = ["--against", "central"] if how == "against-central" else ["--central", url]
    got = main(["verify", str(out), *anchor, "--config", config])
    text = "".join(capsys.readouterr())
    assert got == code and said in text, text
    assert "manifest.json: signed" in text  # the files and the signature were checked as before
    if tamper:
        assert "sources: elm: central chain intact" in text


def test_a_gateways_export_has_no_sources_to_check(trust_export, capsys):
    import json

    config, out, _, _ = trust_export
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["sources"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["verify", str(out), "--against", "central", "--config", config]) == 1
    assert "not an export from the central store" in capsys.readouterr().err
