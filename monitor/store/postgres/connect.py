"""Connecting to the central store: the URL from the config, the password from a file or the environment.

The YAML names the server, database and role (``store.central``), never the
password: it comes from ``store.central_password_file`` (mode 0600, first line)
or the ``SOCIAL_MONITOR_CENTRAL_PASSWORD`` environment variable (a systemd
credential), or libpq's own ``~/.pgpass``. TLS is libpq's: put
``sslmode=verify-full`` and ``sslrootcert=`` in the URL (docs/central.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.errors import UserError

PASSWORD_ENV = "SOCIAL_MONITOR_CENTRAL_PASSWORD"
SCHEMES = ("postgresql://", "postgres://")


class CentralConfigError(UserError):
    """The central store's URL or password cannot be used: one line naming what is wrong."""


def is_central_url(text: str) -> bool:
    return text.startswith(SCHEMES)


def read_password_file(path: Path) -> str:
    """The first line of the file; a file others can read is refused (the password is a credential)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise CentralConfigError(f"{path}: cannot read the central store's password: "
                                 f"{exc.strerror or exc}") from None
    if mode & 0o077:
        raise CentralConfigError(f"{path}: the central store's password file must not be readable by "
                                 f"others (mode {mode & 0o777:o}; chmod 600)")
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise CentralConfigError(f"{path}: the central store's password file is empty")
    return password


def conninfo(
    url: str, *, password_file: Path | None = None, environ: Mapping[str, str] | None = None,
    field: str = "store.central",
) -> dict[str, Any]:
    """libpq connection parameters for `url`, with the password added from the file or environment."""
    from psycopg.conninfo import conninfo_to_dict

    if not is_central_url(url):
        raise CentralConfigError(f"{field}: {url!r} is not a postgresql:// URL")
    try:
        params = conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: libpq's own words
        raise CentralConfigError(f"{field}: not a usable PostgreSQL URL: {str(exc).strip()}") from None
    if params.get("password"):
        raise CentralConfigError(f"{field}: the URL holds a password; put it in store.central_password_file "
                                 f"or {PASSWORD_ENV} instead, never in the YAML")
    if not params.get("user"):
        raise CentralConfigError(f"{field}: the URL names no role (postgresql://ROLE@host/db): each gateway "
                                 "connects as its own role")
    environ = os.environ if environ is None else environ
    if password_file is not None:
        params["password"] = read_password_file(password_file)
    elif environ.get(PASSWORD_ENV):
        params["password"] = environ[PASSWORD_ENV]
    params.setdefault("connect_timeout", "10")
    params.setdefault("application_name", "social-monitor")
    return params


def shown(params: Mapping[str, Any]) -> str:
    """Where the central store is, for logs and errors: never the password."""
    host = params.get("host") or "localhost"
    return f"{params.get('user')}@{host}:{params.get('port') or 5432}/{params.get('dbname') or ''}"


__all__ = ["PASSWORD_ENV", "CentralConfigError", "conninfo", "is_central_url", "read_password_file", "shown"]
