"""`central`: run the trust's central store: create its schema, register gateways, see and check them.

These are the database owner's commands, run on (or against) the central server
(docs/central.md, "On the central server"). The URL names the owner role; its
password comes from ``SOCIAL_MONITOR_CENTRAL_PASSWORD`` or libpq's ``~/.pgpass``,
never the command line, so it is not left in a shell history or `ps`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.errors import UserError

URL_HELP = ("postgresql://OWNER@HOST/DB (password from $SOCIAL_MONITOR_CENTRAL_PASSWORD or ~/.pgpass; "
            "default: $SOCIAL_MONITOR_CENTRAL_URL)")


def _connect(args: argparse.Namespace) -> Any:
    """The central store, as the owner; a server that cannot be reached is one line."""
    import os

    import psycopg

    from monitor.store.postgres.central import CentralStore
    from monitor.store.postgres.connect import conninfo, shown

    url = args.url or os.environ.get("SOCIAL_MONITOR_CENTRAL_URL", "")
    if not url:
        raise UserError("central: say which database with --url postgresql://OWNER@HOST/DB "
                        "(or set SOCIAL_MONITOR_CENTRAL_URL)")
    params = conninfo(url, field="--url")
    args.where = shown(params)
    try:
        return CentralStore(params)
    except psycopg.Error as exc:
        raise UserError(f"central store {args.where}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _public_key(text: str | None, where: str) -> str | None:
    """The gateway's key as ``ed25519:BASE64`` (from the text or a file holding it), checked."""
    if text is None:
        return None
    from monitor.store.signing import HeadError, parse_public_key, public_key_text

    try:
        return public_key_text(parse_public_key(text, where))
    except HeadError as exc:
        raise UserError(str(exc)) from None


def migrate(args: argparse.Namespace) -> int:
    from monitor.store.postgres.schema import SCHEMA_VERSION, CentralSchemaError

    with _connect(args) as central:
        try:
            applied = central.migrate()
        except CentralSchemaError as exc:
            raise UserError(f"central store {args.where}: {exc}") from None
    if applied:
        print(f"central store {args.where}: applied schema version(s) {', '.join(map(str, applied))}; "
              f"now at {SCHEMA_VERSION}")
    else:
        print(f"central store {args.where}: already at schema version {SCHEMA_VERSION}")
    return 0


def register_gateway(args: argparse.Namespace) -> int:
    import psycopg

    from monitor.store.postgres.connect import read_password_file

    key = _public_key(args.public_key, "--public-key")
    password = read_password_file(Path(args.password_file)) if args.password_file else None
    with _connect(args) as central:
        try:
            central.register_gateway(args.gateway, args.role, password=password, public_key=key)
        except ValueError as exc:
            raise UserError(f"--role: {exc}") from None
        except psycopg.errors.UniqueViolation:
            raise UserError(f"central store {args.where}: gateway {args.gateway!r} or role {args.role!r} is "
                            "registered already (`central status` lists them; `central set-key` replaces "
                            "a key)") from None
        except psycopg.errors.CheckViolation:
            raise UserError(f"gateway id {args.gateway!r}: lowercase letters, digits, '.', '_' and '-', "
                            "starting with a letter or digit, at most 63") from None
        except psycopg.Error as exc:
            raise UserError(f"central store {args.where}: {_first_line(exc)}") from None
    print(f"gateway {args.gateway}: registered with role {args.role}"
          + ("" if key else "; no signing key yet: its records ship, its heads wait for `central set-key`")
          + ("" if password else "; no password set (give the role one, or use client certificates)"))
    return 0


def set_key(args: argparse.Namespace) -> int:
    from monitor.store.signing import fingerprint

    key = _public_key(args.public_key, "--public-key")
    assert key is not None
    with _connect(args) as central:
        try:
            central.set_public_key(args.gateway, key)
        except LookupError as exc:
            raise UserError(f"central store {args.where}: {exc.args[0]}") from None
    print(f"gateway {args.gateway}: signed heads are now checked with key {fingerprint(key)}")
    return 0


def status(args: argparse.Namespace) -> int:
    """One line per gateway: records held, the newest record's time, the last signed head, the key."""
    from monitor.store.signing import fingerprint

    with _connect(args) as central:
        rows = central.gateway_status()
    if not rows:
        print(f"central store {args.where}: no gateway registered yet (`central register-gateway`)")
        return 0
    for row in rows:
        newest = (datetime.fromtimestamp(row.last_recorded_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
                  if row.last_recorded_at is not None else "never")
        head = f"signed head at record {row.head_seq}" if row.head_seq is not None else "no signed head yet"
        key = f"key {fingerprint(row.public_key)}" if row.public_key else "no key registered"
        print(f"{row.gateway_id}: {row.records} records held (through {row.last_seq}), newest recorded "
              f"{newest}; {head}; {key}")
    return 0


def verify(args: argparse.Namespace) -> int:
    """Walk each gateway's central chain from its anchor; exit 1 at the first gateway with a break."""
    broken = 0
    with _connect(args) as central:
        known = central.gateways()
        chosen = args.gateway or known
        for gateway in chosen:
            if gateway not in known:
                raise UserError(f"central store {args.where}: gateway {gateway!r} is not registered")
            held, fault = central.verify_gateway(gateway)
            if fault is None:
                print(f"{gateway}: {held} records verified, chain intact")
            else:
                broken += 1
                print(f"{gateway}: chain broken: {fault.kind}: {fault.problem}", file=sys.stderr)
    return 1 if broken else 0


def hold(args: argparse.Namespace) -> int:
    """Open a legal hold: a device's or a person's sessions are kept past retention until released."""
    from monitor.store.postgres import retention

    if args.release:
        with _connect(args) as central:
            released = retention.release_hold(central.con, args.case, args.reason)
        if not released:
            raise UserError(f"central store {args.where}: case {args.case!r} has no open hold")
        print(f"case {args.case}: {released} hold(s) released; their sessions go at the next purge once past "
              "retention")
        return 0
    if (args.device is None) == (args.staff is None):
        raise UserError("central hold: name one --device ASSET or one --staff ID")
    with _connect(args) as central:
        if args.gateway and args.gateway not in central.gateways():
            raise UserError(f"central store {args.where}: gateway {args.gateway!r} is not registered")
        hold_id = retention.open_hold(central.con, args.case, args.reason, device=args.device,
                                      owner=args.staff, gateway_id=args.gateway)
    scope = f"device {args.device}" if args.device else f"staff {args.staff}"
    print(f"case {args.case}: hold {hold_id} on {scope}"
          f"{' at ' + args.gateway if args.gateway else ' at every gateway'}: kept past retention until "
          "released")
    return 0


def holds(args: argparse.Namespace) -> int:
    from monitor.store.postgres import retention

    with _connect(args) as central:
        open_now = retention.open_holds(central.con)
    for h in open_now:
        scope = f"device {h.device}" if h.device else f"staff {h.owner}"
        print(f"{h.case_ref}: hold {h.id} on {scope} at {h.gateway_id or 'every gateway'}, opened "
              f"{h.opened_at:%Y-%m-%d} by {h.opened_by}: {h.reason}")
    if not open_now:
        print(f"central store {args.where}: no open hold")
    return 0


def purge(args: argparse.Namespace) -> int:
    """Drop the months wholly past retention, keeping held sessions; one line per month and a total."""
    from monitor.exports.dates import parse_day
    from monitor.store.postgres import retention

    if args.retention_days < 1:
        raise UserError(f"--retention-days: {args.retention_days} is not a number of days (1 or more)")
    now = datetime.now(UTC)
    if args.now:
        try:
            now = datetime.combine(parse_day(args.now, now.date()), datetime.min.time(), UTC)
        except UserError as exc:
            raise UserError(f"--now: {exc}") from None
    with _connect(args) as central:
        report = retention.purge(central.con, args.retention_days, now)
    for m in report.months:
        print(f"{m.month.replace('_', '-')}: dropped {m.sessions} sessions ({m.records} records, their chain "
              f"headers kept); kept {m.held} under legal hold")
    print(f"central store {args.where}: {len(report.months)} month(s) before {report.cutoff:%Y-%m-%d} dropped"
          f"; {report.released} session(s) of released holds removed")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("central", help="the trust's central store: schema, gateways, status and checks",
                       description="Administer the central PostgreSQL store as its owner role "
                       "(docs/central.md).")
    commands = p.add_subparsers(dest="central_command", metavar="ACTION", required=True)

    def action(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        q = commands.add_parser(name, help=help_text, description=help_text)
        q.add_argument("--url", help=URL_HELP)
        q.set_defaults(func=func)
        return q

    action("migrate", migrate, "create or upgrade the central schema (safe to run again)")
    q = action("register-gateway", register_gateway,
               "add a gateway: its login role (member of social_monitor_gateway) and its signing key")
    q.add_argument("gateway", help="the gateway's id, as its config's gateway.id")
    q.add_argument("--role", required=True, help="the PostgreSQL login role the gateway connects as")
    q.add_argument("--public-key", help="`social-monitor signing-key` on the gateway prints it (or a file)")
    q.add_argument("--password-file", help="a 0600 file whose first line becomes the role's password")
    q = action("set-key", set_key, "register or replace the key a gateway's signed heads are checked with")
    q.add_argument("gateway")
    q.add_argument("--public-key", required=True, help="ed25519:BASE64, or a file holding it")
    action("status", status, "each gateway: records held, newest record, last signed head, key")
    q = action("verify", verify, "walk each gateway's chain as the central store holds it")
    q.add_argument("gateway", nargs="*", help="gateway ids (default: all)")
    q = action("hold", hold, "keep one device's or one person's sessions past retention for a case "
               "(or --release the case)")
    q.add_argument("--case", required=True, help="the case reference")
    q.add_argument("--reason", required=True, help="why (entered in the retention log)")
    q.add_argument("--device", help="the device's asset tag")
    q.add_argument("--staff", help="the person's staff id, as sessions record the owner")
    q.add_argument("--gateway", help="only this gateway's sessions (default: every gateway)")
    q.add_argument("--release", action="store_true", help="release the case's open holds")
    action("holds", holds, "list the open legal holds")
    q = action("purge", purge, "drop the months wholly older than the retention period, keeping held "
               "sessions (the trust's retention; each gateway purges its own store)")
    q.add_argument("--retention-days", type=int, required=True, help="the trust's central retention period")
    q.add_argument("--now", help="YYYY-MM-DD to purge as of (default: today)")
