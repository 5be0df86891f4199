"""A real PostgreSQL server for the tests, from Debian's `postgresql` package (`make install` installs it).

`initdb` into a temporary directory and `pg_ctl start` on a Unix socket in that
directory only (no TCP port), as an unprivileged user: PostgreSQL refuses to run
as root, so under root the server runs as `postgres` (the Debian package's user)
or `nobody` through `runuser`. Authentication is `trust` on the socket, which only
this directory can reach; the roles and row-level security under test are the
same as with passwords. Tests skip with the reason when the binaries are missing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb, or the directory of `initdb` on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def missing_reason() -> str | None:
    """Why no server can be started here, or None."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) missing: `make install` adds Debian's postgresql"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root and `runuser` is missing: PostgreSQL refuses to run as root"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg (psycopg[binary]) is not installed in the venv"
    return None


def _server_user() -> str | None:
    """Under root, the unprivileged account the server runs as; otherwise None (the current user)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("no unprivileged account (postgres or nobody) to run PostgreSQL as")


@dataclass
class PgServer:
    """One cluster in a temporary directory; `dsn()` names its socket directory."""

    directory: Path
    bin_dir: Path
    user: str | None
    port: int = 5432

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory

    def dsn(self, user: str = SUPERUSER, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user={user} dbname={dbname} connect_timeout=5"

    def url(self, user: str, dbname: str) -> str:
        """The same as a `postgresql://` URL, as `store.central` holds it."""
        from urllib.parse import quote

        return f"postgresql://{user}@/{dbname}?host={quote(str(self.socket_dir), safe='')}&port={self.port}"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")

    def start(self) -> None:
        options = (f"-k {self.socket_dir} -c listen_addresses='' -p {self.port} -c fsync=off "
                   "-c max_connections=60 -c shared_buffers=64MB")
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"),
                           "-o", options, "-w", "-t", "60", "start", check=False)
        if result.returncode != 0:
            log = (self.directory / "server.log")
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {result.stderr.strip()}\n{tail}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def create_database(self, prefix: str = "t") -> str:
        """A fresh database for one test: its name."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.dsn(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return name


def start_server() -> PgServer:
    """initdb and start a cluster in a new temporary directory (the caller stops and removes it)."""
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    user = _server_user()
    directory = Path(tempfile.mkdtemp(prefix="sm-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    os.chmod(directory, 0o700)
    server = PgServer(directory, bin_dir, user)
    try:
        server.init()
        server.start()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return server


def remove_server(server: PgServer) -> None:
    server.stop("immediate")
    shutil.rmtree(server.directory, ignore_errors=True)
