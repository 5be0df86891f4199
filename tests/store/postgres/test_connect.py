"""The central store's URL and password: from a file or the environment, never from the YAML."""

from __future__ import annotations

import pytest

from monitor.store.postgres.connect import PASSWORD_ENV, CentralConfigError, conninfo, shown


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://gw_oak@central.trust.lan/socialmonitor",
         {"user": "gw_oak", "host": "central.trust.lan", "dbname": "socialmonitor"}),
        ("postgres://gw_oak@db:6432/sm?sslmode=verify-full", {"port": "6432", "sslmode": "verify-full"}),
        ("postgresql://gw_oak@/sm?host=%2Frun%2Fpostgresql", {"host": "/run/postgresql"}),
    ],
)
def test_urls_become_libpq_parameters(url, expected):
    params = conninfo(url, environ={})
    assert expected.items() <= params.items()
    assert "password" not in params


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("postgresql://gw_oak:secret@db/sm", "holds a password"),
        ("postgresql://db/sm", "names no role"),
        ("mysql://gw@db/sm", "is not a postgresql:// URL"),
        ("var/social-monitor.db", "is not a postgresql:// URL"),
        ("postgresql://gw@db/sm?nosuchoption=1", "not a usable PostgreSQL URL"),
    ],
)
def test_bad_urls_are_one_line_naming_the_field(url, error):
    with pytest.raises(CentralConfigError, match=error) as caught:
        conninfo(url, environ={})
    assert str(caught.value).startswith("store.central: ")
    assert "\n" not in str(caught.value)


def test_the_password_comes_from_the_environment():
    assert conninfo("postgresql://gw@db/sm", environ={PASSWORD_ENV: "s3cret"})["password"] == "s3cret"


@pytest.mark.parametrize(
    ("content", "mode", "result"),
    [
        ("s3cret\n", 0o600, "s3cret"),
        ("s3cret\nignored\n", 0o400, "s3cret"),
        ("s3cret\n", 0o644, "must not be readable by others"),
        ("\n", 0o600, "is empty"),
    ],
)
def test_the_password_file_wins_and_must_be_private(tmp_path, content, mode, result):
    path = tmp_path / "central.pass"
    path.write_text(content)
    path.chmod(mode)
    if mode & 0o077 or not content.strip():
        with pytest.raises(CentralConfigError, match=result):
            conninfo("postgresql://gw@db/sm", password_file=path, environ={PASSWORD_ENV: "other"})
    else:
        params = conninfo("postgresql://gw@db/sm", password_file=path, environ={PASSWORD_ENV: "other"})
        assert params["password"] == result


def test_a_missing_password_file_names_it(tmp_path):
    with pytest.raises(CentralConfigError, match=r"central\.pass: cannot read"):
        conninfo("postgresql://gw@db/sm", password_file=tmp_path / "central.pass", environ={})


def test_shown_never_includes_the_password():
    params = conninfo("postgresql://gw@db/sm", environ={PASSWORD_ENV: "s3cret"})
    assert shown(params) == "gw@db:5432/sm"
