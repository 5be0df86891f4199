"""`events --central`, `export --scope trust`, `export --school X --central`, `sar --central`: main()."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.cli import main
from monitor.exports.log import read_log
from tests.central_helpers import two_schools

KEYS = {"oak": Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
        "elm": Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))}
WEEK = ["--from", "2026-09-21", "--to", "2026-09-27"]


@pytest.fixture(scope="module")
def central(pg_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trust")
    name, _, reader = two_schools(pg_server, tmp, KEYS)
    return pg_server.url(reader, name)


@pytest.fixture
def config(central, example_data, write_config, tmp_path):
    """The central office's config: its store directory (export log, signing key), the reader URL."""
    (tmp_path / "var").mkdir()
    example_data["store"] = {"path": str(tmp_path / "var" / "office.db"), "central_reader": central}
    return str(write_config(example_data))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout, and stderr without the line naming the config file chosen."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, "".join(x for x in err.splitlines(keepends=True) if "(from --config)" not in x)


def test_events_central_is_pseudonymised_by_default(config, capsys):
    code, out, err = run(capsys, "events", "--central", "--config", config, "--format", "jsonl")
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 7 and {x["social.gateway"] for x in lines} == {"oak", "elm"}
    assert all(x["user.id"] is None or x["user.id"].startswith("Staff ") for x in lines)
    assert all(x["host.id"].startswith("Device ") for x in lines)
    assert not (read_log_path(config)).exists()  # nothing identified: nothing logged


def read_log_path(config: str):
    from monitor.config.loader import load_config
    from monitor.exports.log import log_path_for

    return log_path_for(load_config(config).store_path)


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        ("csv", lambda out: out.splitlines()[0].endswith(",social.gateway") and "TRUST\\jsmith" in out),
        ("table", lambda out: out.splitlines()[0].split()[2] == "GATEWAY" and " elm " in out),
        ("jsonl", lambda out: '"user.id":"TRUST\\\\jsmith"' in out and '"social.session_id":1' in out),
    ],
)
def test_events_central_identified_is_logged(config, capsys, fmt, check):
    code, out, err = run(capsys, "events", "--central", "--config", config, "--format", fmt, "--identified",
                         "--reason", "clause 6.1 review", "--user", "TRUST\\jsmith")
    assert code == 0, err
    assert check(out), out
    assert "identified listing of 1 sessions from the central store, logged as export 1" in err
    entry = read_log(read_log_path(config)).entries[-1]
    assert (entry.kind, entry.identified, entry.reason) == ("listing", True, "clause 6.1 review")


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["events", "--central", "--user", "S1002"], "selects one person's"),
        (["events", "--central", "--identified"], "needs --reason"),
        (["events", "--central", "mysql://x@y/z"], "--central: 'mysql://x@y/z' is not a postgresql:// URL"),
        (["events", "--central", "postgresql://a:pw@h/db"], "--central: the URL holds a password"),
        (["export", "--scope", "trust", "--school", "oak-primary", *WEEK, "--out", "x"],
         "--scope trust covers every school: drop --school"),
        (["export", "--scope", "trust", "--device", "OAK-0001", *WEEK, "--out", "x"],
         "--scope trust covers every school: drop --device"),
        (["export", *WEEK, "--out", "x"], "or --scope trust for every school"),
        (["export", "--school", "elm", "--central", *WEEK, "--out", "x"], "'elm' is not a configured school"),
    ],
)
def test_mistakes_are_one_line(config, capsys, argv, error):
    code, _, err = run(capsys, *argv, "--config", config)
    assert code == 1 and error in err and len(err.strip().splitlines()) == 1, err


def test_no_reader_url_is_one_line(example_data, write_config, tmp_path, capsys):
    example_data["store"] = {"path": str(tmp_path / "s.db")}
    code, _, err = run(capsys, "events", "--central", "--config", str(write_config(example_data)))
    assert code == 1 and "set store.central_reader" in err and len(err.strip().splitlines()) == 1


def test_an_unreachable_server_is_one_line(config, tmp_path, capsys):
    url = f"postgresql://auditor@/db?host={tmp_path}&port=1&connect_timeout=2"
    code, _, err = run(capsys, "events", "--central", url, "--config", config)
    assert code == 1 and err.startswith("social-monitor: central store auditor@")
    assert len(err.strip().splitlines()) == 1


def test_export_scope_trust_includes_both_schools(config, tmp_path, capsys):
    out = tmp_path / "ceo-{from}"
    code, text, err = run(capsys, "export", "--scope", "trust", *WEEK, "--out", str(out), "--config", config)
    assert code == 0, err
    assert "7 sessions (7 flagged) of every school" in text and "2 gateways: elm through record 4, oak " \
        "through record 4" in text
    written = tmp_path / "ceo-2026-09-21"
    manifest = json.loads((written / "manifest.json").read_text())
    assert manifest["schools"] == ["ash-secondary", "oak-primary"]
    assert set(manifest["sources"]) == {"oak", "elm"}
    assert manifest["pseudonymised"] is True
    assert main(["verify", str(written), "--config", config]) == 0
    assert read_log(read_log_path(config)).entries[-1].school == "trust"


def test_export_one_school_from_the_central_store(config, tmp_path, capsys):
    code, text, err = run(capsys, "export", "--school", "oak-primary", "--central", *WEEK, "--out",
                          str(tmp_path / "oak"), "--config", config)
    assert code == 0, err
    assert "4 sessions (4 flagged) of school oak-primary" in text


@pytest.mark.parametrize("asked", ["S1002", "jsmith", "TRUST\\jsmith"])
def test_sar_central_finds_the_person_at_both_schools(config, tmp_path, capsys, asked):
    code, text, err = run(capsys, "sar", "--central", "--staff", asked, "--out", str(tmp_path / "sar"),
                          "--config", config)
    assert code == 0, err
    assert "5 sessions about S1002 from the central store, recorded by 2 of 2 gateways (elm, oak;" in text
    assert read_log(read_log_path(config)).entries[-1].kind == "sar"


@pytest.mark.parametrize(
    ("scope", "target", "said"),
    [
        ("--device", "OAK-LT-0002", "3 sessions of device OAK-LT-0002 (3 flagged) from the central store, "
                                    "recorded by 1 of 2 gateways (oak)"),
        ("--staff", "S1002", "2 sessions of staff S1002 (2 flagged) from the central store, recorded by 1 of "
                             "2 gateways (oak)"),
    ],
)
def test_investigation_from_the_central_store_is_logged_and_verifies_against_it(config, tmp_path, capsys,
                                                                               scope, target, said):
    out = tmp_path / "case"
    code, text, err = run(capsys, "export", scope, target, "--case", "HR-2026-014", "--reason",
                          "disciplinary investigation", "--central", "--out", str(out), "--config", config)
    assert code == 0, err
    assert said in text and "case HR-2026-014" in text
    entry = read_log(read_log_path(config)).entries[-1]
    assert (entry.kind, entry.extra["case"]) == ("investigation", "HR-2026-014")
    code, text, err = run(capsys, "verify", str(out), "--against", "central", "--config", config)
    assert code == 0, err
    assert "evidence.jsonl: " in text and "sources: oak: central chain intact" in text


def test_investigation_from_the_central_store_needs_a_case(config, tmp_path, capsys):
    code, _, err = run(capsys, "export", "--device", "OAK-LT-0002", "--reason", "x", "--central", "--out",
                       str(tmp_path / "case"), "--config", config)
    assert code == 1 and "needs --case REF" in err and not (tmp_path / "case").exists()
