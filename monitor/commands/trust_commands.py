"""`events --central`, `export --scope trust` / `--central`, `sar --central`: the trust's view, centrally.

Each reads the central store through a role in ``social_monitor_reader``
(`monitor.store.postgres.reader.CentralReader`, one read-only snapshot): the URL
is ``--central URL`` or the config's ``store.central_reader``; its password comes
from ``SOCIAL_MONITOR_CENTRAL_PASSWORD`` or ``~/.pgpass``, never the command line
or the YAML. Listings stay pseudonymised unless ``--identified --reason``; every
export, SAR and identified listing goes into the export log of the machine that
runs it, which is the log a later SAR of the person reads for its recipients.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from monitor.config.loader import Config
from monitor.errors import UserError

CENTRAL_HELP = ("read the trust's central store (every gateway) instead of this gateway's file: "
                "postgresql://READER@HOST/DB, or alone for the config's store.central_reader (password from "
                "$SOCIAL_MONITOR_CENTRAL_PASSWORD or ~/.pgpass)")
USE_CONFIG = "config"  # `--central` given without a URL


def add_central_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--central", nargs="?", const=USE_CONFIG, metavar="URL", help=CENTRAL_HELP)


def central_params(config: Config, given: str) -> dict[str, Any]:
    """libpq parameters for the reader role: the URL given, else `store.central_reader`."""
    from monitor.store.postgres.connect import conninfo

    if given != USE_CONFIG:
        return conninfo(given, field="--central")
    url = config.model.store.central_reader
    if not url:
        raise UserError(f"{config.path}: --central: give postgresql://READER@HOST/DB or set "
                        "store.central_reader (a role in social_monitor_reader)")
    return conninfo(url, field="store.central_reader")


def open_reader(config: Config, given: str, gateways: list[str] | None = None) -> Any:
    from monitor.store.postgres.reader import CentralReader

    return CentralReader(central_params(config, given), gateways or None)


def _run(reader: Any, action: Any) -> Any:
    """`action()` with the reader open; a database error on the way is one line naming the server."""
    import psycopg

    with reader:
        try:
            return action()
        except psycopg.Error as exc:
            raise reader.error(exc) from None


# --- events --central --------------------------------------------------------------------------


def _table(sessions: Iterable[Any], tz: ZoneInfo, out: TextIO, labels: Any) -> int:
    columns = ("START", "END", "GATEWAY", "DEVICE", "USER", "SCHOOL", "ZONE", "PERIOD", "PLATFORM", "OBS",
               "FLAGS")
    widths = (16, 5, 14, 12, 12, 14, 14, 12, 10, 5, 0)
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(), file=out)
    n = 0
    for s in sessions:
        flags = ",".join(f.name for f in s.flags)
        if s.exemption:
            flags = f"exempt:{s.exemption.name}" + (f" ({flags})" if flags else "")
        device, _, owner = labels(s)
        cells = (datetime.fromtimestamp(s.first_seen, tz).strftime("%Y-%m-%d %H:%M"),
                 datetime.fromtimestamp(s.last_seen, tz).strftime("%H:%M"), s.gateway, device, owner or "-",
                 s.school, s.zone, s.period or "-", s.platform, str(s.observations), flags or "-")
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip(), file=out)
        n += 1
    return n


def central_events(args: argparse.Namespace, config: Config, where: Any, reason: str | None) -> int:
    """`events --central`: the trust's sessions under aliases (fresh for this listing), or identified and
    logged; each row names its gateway (`social.gateway`; session ids repeat across gateways)."""
    from monitor.exports.listing import listing_labels, listing_minimiser, log_listing
    from monitor.exports.log import log_path_for
    from monitor.exports.pseudonyms import identity
    from monitor.exports.trust import GATEWAY_COLUMN
    from monitor.store import ecs

    tz = ZoneInfo(config.trust.timezone)
    reader = open_reader(config, args.central)
    out = sys.stdout

    def listing() -> int:
        if reason is not None:  # logged before the first row is shown
            entry = log_listing(reader, where, log_path_for(config.store_path), reason=reason,
                                shown=f"stdout (events --central {reader.where} --format {args.format})")
            print(f"social-monitor: identified listing of {entry.sessions} sessions from the central store, "
                  f"logged as export {entry.seq}", file=sys.stderr)
        labels = listing_labels(reader, where, args.identified)
        show_ids = labels is identity
        minimise = listing_minimiser(config, args.identified)

        def read() -> Any:
            rows = reader.sessions(where)
            return rows if minimise is None else map(minimise, rows)

        if args.format == "jsonl":
            encode = ecs.make_writer(json_style="compact", csv=False, labelled=True, newline=True)
            key = json.dumps(GATEWAY_COLUMN)
            for s in read():
                line = encode(s, *labels(s), s.id if show_ids else None)
                out.write(f"{line[:-2]},{key}:{json.dumps(s.gateway, ensure_ascii=False)}}}\n")
        elif args.format == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow((*ecs.ECS_FIELDS, GATEWAY_COLUMN))
            encode = ecs.make_writer(json_style=None, csv=True, labelled=True)
            for s in read():
                writer.writerow((*encode(s, *labels(s), s.id if show_ids else None), s.gateway))
        else:
            _table(read(), tz, out, labels)
        return 0

    return int(_run(reader, listing))


# --- export --scope trust, export --school X --central --------------------------------------------


def central_export(args: argparse.Namespace, config: Config, request: Any, signing_key: Callable[[], Any]
                   ) -> int:
    """`signing_key()` gives the running machine's key, asked for once the request is known to be good."""
    from monitor.exports.log import log_path_for
    from monitor.exports.request import ExportError
    from monitor.exports.trust import TRUST_SCOPE, run_trust_export

    if request.school not in ("", TRUST_SCOPE) and config.school(request.school) is None:
        known = ", ".join(s.id for s in config.schools)
        raise ExportError(f"--school: {request.school!r} is not a configured school ({known})")
    reader = open_reader(config, args.central or USE_CONFIG)
    result = _run(reader, lambda: run_trust_export(config, reader, request, log_path=log_path_for(
        config.store_path), signing_key=signing_key()))
    sources = result.manifest["sources"]
    scope = "every school" if request.school in ("", TRUST_SCOPE) else f"school {request.school}"
    cursors = ", ".join(f"{g} through record {s['cursor']['record_id']}" for g, s in sources.items())
    print(f"{result.out}: {result.sessions} sessions ({result.flagged} flagged) of {scope} from "
          f"{request.first_day} to {request.last_day}, from the central store ({len(sources)} gateways: "
          f"{cursors}), "
          f"{'identified' if request.identify else 'pseudonymised'}; "
          f"manifest sha256 {result.manifest_sha256}; "
          f"logged as export {result.log_entry.seq if result.log_entry else '-'}")
    return 0


# --- export --device/--staff --central: an investigation across every gateway -------------------------


def central_investigation(args: argparse.Namespace, config: Config, request: Any,
                          signing_key: Callable[[], Any]) -> int:
    from monitor.exports.log import log_path_for
    from monitor.exports.trust_investigation import run_trust_investigation

    reader = open_reader(config, args.central)
    result = _run(reader, lambda: run_trust_investigation(config, reader, request, log_path=log_path_for(
        config.store_path), signing_key=signing_key()))
    m = result.manifest
    at = m["gateways_in_sessions"]
    print(f"{result.out}: case {request.case}: {result.sessions} sessions of {request.scope} "
          f"{request.target} ({result.flagged} flagged) from the central store, recorded by {len(at)} of "
          f"{len(m['sources'])} gateways ({', '.join(at) or 'none'}), identified, with their chain "
          f"records; manifest sha256 {result.manifest_sha256}; "
          f"logged as export {result.log_entry.seq if result.log_entry else '-'}")
    return 0


# --- sar --central ------------------------------------------------------------------------------


def central_sar(args: argparse.Namespace, config: Config, signing_key: Callable[[], Any]) -> int:
    from pathlib import Path

    from monitor.exports.log import log_path_for
    from monitor.exports.trust_sar import run_trust_sar

    reader = open_reader(config, args.central)
    result = _run(reader, lambda: run_trust_sar(config, reader, args.staff, Path(args.out),
                                                reference=args.reference,
                                                log_path=log_path_for(config.store_path),
                                                signing_key=signing_key()))
    m = result.manifest
    searched = m["searched"]
    forms = len(searched["stored_owners"]) + len(searched["logins"]) + len(searched["devices"])
    print(f"{result.out}: {result.sessions} sessions about {m['subject']} from the central store, recorded "
          f"by {len(m['gateways_in_sessions'])} of {len(m['sources'])} gateways "
          f"({', '.join(m['gateways_in_sessions']) or 'none'}; searched {forms} forms of their identity); "
          f"{len(m['recipients'])} recipients from the export log; manifest sha256 {result.manifest_sha256}; "
          f"logged as export {result.log_entry.seq if result.log_entry else '-'}")
    return 0


__all__ = ["CENTRAL_HELP", "add_central_argument", "central_events", "central_export",
           "central_investigation", "central_params", "central_sar", "open_reader"]
