"""`verify`, `purge` and `events`: the event store from the command line."""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from monitor.commands.config_commands import add_config_argument, load_chosen_config
from monitor.commands.trust_commands import add_central_argument
from monitor.config.exportsettings import export_retention_days
from monitor.config.loader import Config
from monitor.config.values import normalise_mac
from monitor.errors import UserError
from monitor.store import ecs
from monitor.store.acks import mark_shipped
from monitor.store.base import SessionStore, StoreError
from monitor.store.filter import SessionFilter
from monitor.store.postgres.connect import is_central_url
from monitor.store.sessions import Session
from monitor.store.sqlite import open_config_store, open_store

if TYPE_CHECKING:
    from monitor.exports.pseudonyms import Labeller

MAC_LIKE = re.compile(r"^[0-9a-fA-F]{2}([:-]?[0-9a-fA-F]{2}){5}$")


def local_time_option(text: str, tz: ZoneInfo, *, end: bool = False) -> datetime:
    """`--now`, `--since` or `--until` as an aware datetime (see `parse_local_time`; `end` makes a
    bare date mean the end of that day); a bad value is a UserError, not a traceback."""
    from monitor.tagging.timetable import parse_local_time

    try:
        return parse_local_time(text, tz, end=end)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _config(args: argparse.Namespace) -> Config:
    return load_chosen_config(args.config)


def verify(args: argparse.Namespace) -> int:
    path = Path(args.path) if args.path else None
    central = [a for a in args.against or () if a == "central" or is_central_url(a)]
    if args.central:
        central.append("central" if args.central == "config" else args.central)
    if path is not None and path.is_dir():  # an export directory: check it against its manifest
        from monitor.commands.export_commands import print_verify

        if central:  # an export from the central store: its sources against the central store now
            from monitor.commands.central_verify import verify_export_against_central

            return verify_export_against_central(path, args.config, args.public_key, central)
        return print_verify(path, args.config, args.public_key)
    if path is not None:
        store = open_store(path, create=False)
        store_path = path
    else:
        config = _config(args)
        store = open_config_store(config, create=False)
        store_path = config.store_path
    shown = str(store_path)
    with store:
        result = store.verify()
        if result.ok and central:
            from monitor.commands.central_verify import verify_against_central

            return verify_against_central(store, store_path, central, _config(args), result.summary())
        if result.ok and args.against:
            return _verify_against(store, store_path, args.against, args.public_key, result.summary())
    if result.ok:
        print(f"{shown}: {result.summary()}")
        return 0
    print(f"{shown}: {result.summary()}", file=sys.stderr)
    return 1


def _verify_against(store: SessionStore, store_path: Path, anchors: list[str], key_text: str | None,
                    summary: str) -> int:
    """`verify --against`: the store must still hold every signed head given, and everything before."""
    from monitor.store.anchors import AnchorFault
    from monitor.store.signing import heads_in, parse_public_key, public_key_of

    if key_text is None and (key_text := public_key_of(store_path)) is None:
        raise UserError(f"{store_path}: no signing key beside the store: give --public-key KEY")
    key = parse_public_key(key_text)
    held = 0
    for anchor in anchors:
        where = Path(anchor)
        source = where / "manifest.json" if where.is_dir() else where
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{source}: cannot read the anchor: {exc.strerror or exc}") from None
        count, fault = store.check_heads(heads_in(text, str(source)), key)
        held += count
        if fault is not None:
            problem = fault.problem if isinstance(fault, AnchorFault) else f"{fault} (not an anchor)"
            kind = f"{fault.kind}: " if isinstance(fault, AnchorFault) else ""
            print(f"{store_path}: chain broken against {anchor}: {kind}{problem}", file=sys.stderr)
            return 1
    print(f"{store_path}: {summary}; holds {held} signed head(s) from {', '.join(anchors)}")
    return 0


def signing_key(args: argparse.Namespace) -> int:
    """Print the gateway's public key; `--rotate` makes a new key, announced by a head the old one signs."""
    from monitor.store import anchors
    from monitor.store.signing import key_path_for, load_or_create_key, public_key_text, rotate_key

    config = _config(args)
    path = key_path_for(config.store_path)
    if args.rotate:
        with open_config_store(config, create=False) as store:
            head = store.chain_head()
        anchors.sign_store_file(config.store_path, lambda con: rotate_key(
            path, anchors.last_signed(con), head, time.time())[1], None, "rotation", time.time())
    print(public_key_text(load_or_create_key(path).public_key()))
    return 0


def purge(args: argparse.Namespace) -> int:
    config = _config(args)
    tz = ZoneInfo(config.trust.timezone)
    now = local_time_option(args.now, tz).timestamp() if args.now else time.time()
    days = config.model.retention_days
    if config.model.store.central and config.store_path.exists():  # keep what was never shipped
        mark_shipped(config.store_path)
    if not config.store_path.exists():
        raise StoreError(f"{config.store_path}: no such store (nothing has been recorded yet?)")
    # a writer: a store from an earlier release is migrated first (a reader's view of it cannot be purged)
    with open_config_store(config) as store:
        result = store.purge(days, now=now)
        head = store.chain_head()
        held_cases = {h.case for h in store.holds() if h.open}
    from monitor.exports.expiry import upkeep

    expired = upkeep(config, held_cases, now)
    cutoff = datetime.fromtimestamp(result.cutoff, tz).isoformat(timespec="seconds")
    line = f"{config.store_path}: removed {result.sessions_removed} sessions last seen before {cutoff} " \
           f"({days} days)"
    if result.checkpoint:
        line += f"; {result.records_removed} records compacted into a checkpoint at record " \
                f"{result.checkpoint.record_id}"
    if result.held:
        cases = ", ".join(f"case {case}: {n}" for case, n in sorted(result.held.items()))
        line += f"; kept {sum(result.held.values())} sessions past retention under legal hold ({cases})"
    print(f"{line}; {result.reclaimed_pages} free pages given back; chain head {head.record_id}")
    print(f"{config.exports_folder}: deleted {len(expired.removed)} exports older than "
          f"{export_retention_days(config.model.exports, days)} days"
          + (f", kept {len(expired.kept_for_hold)} of a case under legal hold" if expired.kept_for_hold
             else "")
          + f"; export log: {expired.folded} entries older than {config.model.exports.log_retention_days} "
          "days folded into a summary")
    return 0


def _table(sessions: Iterable[Session], tz: ZoneInfo, out: TextIO, labels: Labeller) -> int:
    columns = ("START", "END", "DEVICE", "USER", "SCHOOL", "ZONE", "PERIOD", "PLATFORM", "OBS", "SIGNALS",
               "FLAGS")
    widths = (16, 5, 12, 12, 14, 14, 12, 10, 5, 16, 0)
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(), file=out)
    n = 0
    for s in sessions:
        start = datetime.fromtimestamp(s.first_seen, tz)
        end = datetime.fromtimestamp(s.last_seen, tz)
        flags = ",".join(f.name for f in s.flags)
        if s.exemption:
            flags = f"exempt:{s.exemption.name}" + (f" ({flags})" if flags else "")
        device, _, owner = labels(s)
        cells = (start.strftime("%Y-%m-%d %H:%M"), end.strftime("%H:%M"), device, owner or "-",
                 s.school, s.zone, s.period or "-", s.platform, str(s.observations), ",".join(s.signals),
                 flags or "-")
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip(), file=out)
        n += 1
    return n


def events(args: argparse.Namespace) -> int:
    """Stored sessions under aliases; with `--identified --reason`, named and entered in the export log."""
    from monitor.exports.listing import check_listing, listing_labels, listing_minimiser, log_listing
    from monitor.exports.log import log_path_for
    from monitor.exports.pseudonyms import identity

    selects_one = "--user" if args.user else "--device" if args.device else None
    reason = check_listing(args.identified, args.reason, selects_one)
    config = _config(args)
    tz = ZoneInfo(config.trust.timezone)
    if args.school and config.school(args.school) is None:
        known = ", ".join(s.id for s in config.schools)
        raise UserError(f"--school: {args.school!r} is not a configured school ({known})")
    device = args.device
    if device and MAC_LIKE.match(device):
        device = normalise_mac(device)
    where = SessionFilter(
        school=args.school,
        since=local_time_option(args.since, tz) if args.since else None,
        until=local_time_option(args.until, tz, end=True) if args.until else None,
        flagged=True if args.flagged else None,
        device=device,
        owner=args.user,
        platform=args.platform,
        limit=args.limit,
    )
    if args.central:  # every gateway's sessions, from the trust's central store
        from monitor.commands.trust_commands import central_events

        return central_events(args, config, where, reason)
    out = sys.stdout
    with open_config_store(config, create=False) as store, store.snapshot() as view:
        if reason is not None:  # logged before the first row is shown
            entry = log_listing(view, where, log_path_for(config.store_path), reason=reason,
                                shown=f"stdout (events --format {args.format})")
            print(f"social-monitor: identified listing of {entry.sessions} sessions, logged as export "
                  f"{entry.seq}", file=sys.stderr)
        labels = listing_labels(view, where, args.identified)
        minimise = listing_minimiser(config, args.identified)

        def read() -> Iterable[Session]:
            rows = view.sessions(where)
            return rows if minimise is None else map(minimise, rows)

        if args.format == "jsonl":
            write = out.write
            if labels is identity:
                for line in view.ecs_json(where):
                    write(line)
                    write("\n")
            else:
                encode = ecs.make_writer(json_style="compact", csv=False, labelled=True, newline=True)
                for s in read():
                    write(encode(s, *labels(s), None))
            return 0
        rows = read()
        if args.format == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(ecs.ECS_FIELDS)
            if labels is identity:
                cells = ecs.csv_cells
                for s in rows:
                    writer.writerow(cells(s))
            else:
                encode = ecs.make_writer(json_style=None, csv=True, labelled=True)
                for s in rows:
                    writer.writerow(encode(s, *labels(s), None))
        else:
            _table(rows, tz, out, labels)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check the store's hash chain and name the first record at fault")
    p.add_argument("path", nargs="?", help="a store file (default: the config's store) or an export "
                   "directory")
    p.add_argument("--against", action="append", metavar="EXPORT_DIR|HEADFILE|central|postgresql://…",
                   help="a signed chain head kept off the box (an export, journal lines, or the central "
                   "store's latest head for this gateway: 'central' for store.central, or a URL): the "
                   "store must still hold it and every record before it; repeatable")
    p.add_argument("--central", nargs="?", const="config", metavar="URL",
                   help="as --against central (alone: the config's store.central_reader, else store.central) "
                   "or --against URL; for an export from the central store, checks each gateway's chain "
                   "still runs through the cursor and signed head its manifest names")
    p.add_argument("--public-key", help="the gateway's public key (ed25519:..., or a file); default: the "
                   "key beside the store")
    add_config_argument(p)
    p.set_defaults(func=verify)

    p = sub.add_parser("signing-key", help="print the gateway's public signing key (who should hold it: "
                       "docs/exports.md)")
    p.add_argument("--rotate", action="store_true", help="make a new key; the old one signs a head naming it")
    add_config_argument(p)
    p.set_defaults(func=signing_key)

    p = sub.add_parser("purge", help="remove sessions older than retention_days, keeping a checkpoint")
    add_config_argument(p)
    p.add_argument("--now", help="pretend it is this ISO time (testing, catching up)")
    p.set_defaults(func=purge)

    p = sub.add_parser("events", help="list stored sessions with ECS and social.* names, under aliases "
                       "unless --identified --reason")
    add_config_argument(p)
    p.add_argument("--since", help="first sighting at or after this ISO date/time (local time)")
    p.add_argument("--until", help="first sighting before this ISO date/time; a bare date is inclusive")
    p.add_argument("--school", help="school id")
    p.add_argument("--device", help="asset tag (or MAC of a device without one; needs --identified)")
    p.add_argument("--user", help="staff id or sign-in as stored (needs --identified: one person's listing)")
    p.add_argument("--platform", help="platform id, e.g. facebook")
    p.add_argument("--flagged", action="store_true", help="only sessions a policy rule flags")
    p.add_argument("--limit", type=int, help="at most this many sessions")
    p.add_argument("--format", choices=["jsonl", "csv", "table"], default="table")
    p.add_argument("--identified", action="store_true",
                   help="asset tags and staff ids instead of aliases (needs --reason; logged as an export)")
    p.add_argument("--reason", help="why names are needed; recorded in the export log")
    add_central_argument(p)
    p.set_defaults(func=events)
