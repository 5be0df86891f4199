"""`export`, `export-log`, `privacy-notice`, `sar`, `verify-export`: data leaving the system, accountably."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor.commands.config_commands import add_config_argument, load_chosen_config
from monitor.commands.trust_commands import add_central_argument
from monitor.config.loader import Config
from monitor.errors import UserError

# the export machinery is imported by the commands that use it: `social-monitor events`
# and the rest should not pay for it at start-up


def _today(config: Config, text: str | None) -> date:
    from monitor.exports.dates import parse_day

    if text:
        return parse_day(text, date.today())
    return datetime.now(ZoneInfo(config.trust.timezone)).date()


def export(args: argparse.Namespace) -> int:
    from monitor.exports.dates import last_week, parse_day
    from monitor.exports.export import run_export
    from monitor.exports.log import log_path_for
    from monitor.exports.request import ExportError, ExportRequest, check_identify, expand_out
    from monitor.store.sqlite import open_config_store

    scopes = [name for name in ("school", "device", "staff") if getattr(args, name)]
    trust_wide = args.scope == "trust"
    if trust_wide and scopes:
        raise ExportError(f"--scope trust covers every school: drop --{scopes[0]}")
    if not trust_wide and len(scopes) != 1:
        raise ExportError("give one of --school ID (an audit export), --device ASSET or --staff ID (an "
                          "investigation, with --case and --reason), or --scope trust for every school "
                          "(from the central store)")
    if scopes and scopes[0] != "school":
        return investigation(args, scopes[0])
    if args.case:
        raise ExportError("--case belongs to an investigation export (--device or --staff)")
    # refuse before reading anything: an identified export without a reason writes nothing
    check_identify(args.identify, args.reason)
    config = load_chosen_config(args.config)
    today = _today(config, args.today)
    if args.last_week:
        if args.from_ or args.to:
            raise ExportError("--last-week replaces --from and --to: give one or the other")
        first, last = last_week(today)
    else:
        if not args.from_ or not args.to:
            raise ExportError("give --from DATE and --to DATE (both included), or --last-week")
        first, last = parse_day(args.from_, today), parse_day(args.to, today)
    stamp = datetime.now(ZoneInfo(config.trust.timezone)).strftime("%Y%m%dT%H%M%S")
    out = expand_out(args.out, school=args.school or "trust", now=stamp, **{"from": first.isoformat(),
                                                                  "to": last.isoformat()})
    request = ExportRequest(school=args.school or "trust", first_day=first, last_day=last, out=out,
                            flagged_only=args.flagged_only, identify=args.identify, reason=args.reason)
    if trust_wide or args.central:  # from the trust's central store (monitor.commands.trust_commands)
        from monitor.commands.trust_commands import central_export

        return central_export(args, config, request, lambda: _signing_key(config))
    with open_config_store(config, create=False) as store:
        result = run_export(config, store, request, log_path=log_path_for(config.store_path),
                            signing_key=_signing_key(config))
    print(f"{result.out}: {result.sessions} sessions ({result.flagged} flagged) from {first} to {last}, "
          f"{'identified' if args.identify else 'pseudonymised'}; manifest sha256 {result.manifest_sha256}; "
          f"logged as export {result.log_entry.seq if result.log_entry else '-'}")
    return 0


def investigation(args: argparse.Namespace, scope: str) -> int:
    """`export --device ASSET` or `--staff ID`: one investigation's scope, identified, with its proof."""
    from monitor.commands.store_commands import MAC_LIKE
    from monitor.config.values import normalise_mac
    from monitor.exports.dates import last_week, parse_day
    from monitor.exports.investigation import InvestigationRequest, checked, run_investigation
    from monitor.exports.log import log_path_for
    from monitor.exports.request import ExportError, expand_out
    from monitor.store.sqlite import open_config_store

    target = getattr(args, scope).strip()
    if scope == "device" and MAC_LIKE.match(target):
        target = normalise_mac(target)  # a device without an asset tag is stored under its MAC
    request = checked(InvestigationRequest(scope, target, args.case or "", args.reason or "", Path(".")))
    config = load_chosen_config(args.config)
    today = _today(config, args.today)
    first = last = None
    if args.last_week:
        if args.from_ or args.to:
            raise ExportError("--last-week replaces --from and --to: give one or the other")
        first, last = last_week(today)
    elif args.from_ or args.to:
        if not args.from_ or not args.to:
            raise ExportError("give both --from and --to, or neither (the whole history stored)")
        first, last = parse_day(args.from_, today), parse_day(args.to, today)
    stamp = datetime.now(ZoneInfo(config.trust.timezone)).strftime("%Y%m%dT%H%M%S")
    out = expand_out(args.out, school=target, now=stamp, **{"from": str(first or "start"),
                                                            "to": str(last or "end")})
    request = InvestigationRequest(scope, target, request.case, request.reason, out, first, last)
    if args.central:  # every gateway's records, from the trust's central store
        from monitor.commands.trust_commands import central_investigation

        return central_investigation(args, config, request, lambda: _signing_key(config))
    with open_config_store(config, create=False) as store:
        result = run_investigation(config, store, request, log_path=log_path_for(config.store_path),
                                   signing_key=_signing_key(config))
    print(f"{result.out}: case {request.case}: {result.sessions} sessions of {scope} {target} "
          f"({result.flagged} flagged), identified, with their chain records; manifest sha256 "
          f"{result.manifest_sha256}; logged as export {result.log_entry.seq if result.log_entry else '-'}")
    return 0


def sar(args: argparse.Namespace) -> int:
    from monitor.exports.log import log_path_for
    from monitor.exports.sar import run_sar
    from monitor.store.sqlite import open_config_store

    config = load_chosen_config(args.config)
    if args.central:  # every gateway's records, from the trust's central store
        from monitor.commands.trust_commands import central_sar

        return central_sar(args, config, lambda: _signing_key(config))
    with open_config_store(config, create=False) as store:
        result = run_sar(config, store, args.staff, Path(args.out), reference=args.reference,
                         log_path=log_path_for(config.store_path), signing_key=_signing_key(config))
    searched = result.manifest["searched"]
    forms = len(searched["stored_owners"]) + len(searched["logins"]) + len(searched["devices"])
    print(f"{result.out}: {result.sessions} sessions about {result.manifest['subject']} (searched "
          f"{forms} forms of their identity, listed in README.txt); "
          f"{len(result.manifest['recipients'])} recipients from the export log; manifest sha256 "
          f"{result.manifest_sha256}; logged as export {result.log_entry.seq if result.log_entry else '-'}")
    return 0


def _signing_key(config: Config) -> Any:  # the key type is imported lazily, like the rest
    """The gateway's signing key, beside its store (made here if the service never started)."""
    from monitor.store.signing import key_path_for, load_or_create_key

    return load_or_create_key(key_path_for(config.store_path))


def export_log(args: argparse.Namespace) -> int:
    from monitor.exports.log import log_path_for, read_log

    config = load_chosen_config(args.config)
    path = log_path_for(config.store_path)
    check = read_log(path)
    if args.format == "jsonl":
        for entry in check.entries:
            print(json.dumps(asdict(entry), ensure_ascii=False, sort_keys=True))
    else:
        print(f"{'#':>4}  {'WHEN (UTC)':<20}  {'WHO':<12}  {'KIND':<13}  {'SCHOOL':<14}  {'FROM':<10}  "
              f"{'TO':<10}  {'FLAGGED':<7}  {'IDENTIFIED':<10}  {'SESSIONS':>8}  REASON / OUT")
        for x in check.entries:
            what = x.school or (f"case {x.extra['case']}" if x.extra.get("case") else None) or (
                f"staff {x.subject}" if x.subject else "-")
            where = f"{x.out} (manifest {x.manifest_sha256[:12]})" if x.out else f"chain record " \
                f"{x.extra.get('record', '-')}"
            print(f"{x.seq:>4}  {x.at:<20}  {x.user:<12}  {x.kind:<13}  {what:<14}  "
                  f"{x.period_from or '-':<10}  "
                  f"{x.period_to or '-':<10}  {'only' if x.flagged_only else 'all':<7}  "
                  f"{'YES' if x.identified else 'no':<10}  {x.sessions:>8}  {x.reason or '-'} -> {where}")
    if not check.entries:
        print(f"{path}: no exports yet", file=sys.stderr)
    if not check.ok:
        print(f"export log chain broken: {check.problem}", file=sys.stderr)
        return 1
    return 0


def privacy_notice(args: argparse.Namespace) -> int:
    from monitor.exports.notice import render_notice

    config = load_chosen_config(args.config)
    sys.stdout.write(render_notice(config, args.format))
    return 0


def verify_export_command(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_dir():
        raise UserError(f"{path}: not a directory (give an export directory)")
    return print_verify(path, args.config, getattr(args, "public_key", None))


def print_verify(path: Path, config_path: str | None = None, public_key: str | None = None) -> int:
    """Shared with `verify DIR`: print one line per file, exit 1 if any differs.

    With a config, the manifest must also be one the config's export log recorded, and its
    signature is checked with the gateway's key; `public_key` checks it on any other machine."""
    from monitor.exports.log import log_path_for
    from monitor.exports.verify import verify_export
    from monitor.store.signing import key_path_for, parse_public_key

    key = parse_public_key(public_key) if public_key else None
    log_path = None
    if config_path:
        store_path = load_chosen_config(config_path).store_path
        log_path = log_path_for(store_path)
        if key is None and key_path_for(store_path).exists():
            key = parse_public_key(_public_text(store_path), str(key_path_for(store_path)))
    ok, lines = verify_export(path, log_path=log_path, public_key=key)
    if log_path is None and len(lines) > 1:  # one line is a manifest that could not be read
        lines.insert(-1, "manifest.json: not checked against an export log (give --config to check it)")
    stream = sys.stdout if ok else sys.stderr
    for line in lines:
        print(line, file=stream)
    return 0 if ok else 1


def _public_text(store_path: Path) -> str:
    from monitor.store.signing import public_key_of

    return public_key_of(store_path) or ""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write an audit export (CSV, JSON lines, HTML report, manifest), or "
                       "an investigation's (--device or --staff, with --case and --reason)")
    p.add_argument("--school", help="school id: an audit export of the school (or --scope trust)")
    p.add_argument("--scope", choices=["school", "trust"], default="school",
                   help="trust: every school, from the central store (clause 6.1; implies --central)")
    p.add_argument("--device", help="asset tag (or MAC): an investigation export of this device only, "
                   "identified, with the chain record of each session (needs --case and --reason)")
    p.add_argument("--staff", help="staff id: an investigation export of this person's sessions on any "
                   "device (needs --case and --reason)")
    p.add_argument("--case", help="the investigation's case reference, recorded in the export log")
    p.add_argument("--from", dest="from_", help="first day (YYYY-MM-DD, today, yesterday, N-days-ago); an "
                   "investigation without --from/--to takes the whole history stored")
    p.add_argument("--to", help="last day, included (same forms as --from)")
    p.add_argument("--last-week", action="store_true", help="Monday to Sunday of last week (for timers)")
    p.add_argument("--today", help=argparse.SUPPRESS)  # pin "today" for tests and catch-up runs
    p.add_argument("--flagged-only", action="store_true", help="only sessions a policy rule flags")
    p.add_argument("--out", required=True,
                   help="new export directory; may use {school}, {from}, {to}, {now}")
    p.add_argument("--identify", action="store_true",
                   help="show asset tags and staff ids instead of aliases (needs --reason)")
    p.add_argument("--reason", help="why names are needed; recorded in the export log (required with "
                   "--identify, --device and --staff)")
    add_central_argument(p)
    add_config_argument(p)
    p.set_defaults(func=export)

    p = sub.add_parser("export-log", help="list every export and subject access request ever made")
    p.add_argument("--format", choices=["table", "jsonl"], default="table")
    add_config_argument(p)
    p.set_defaults(func=export_log)

    p = sub.add_parser("privacy-notice", help="the privacy notice for staff, generated from the config")
    p.add_argument("--format", choices=["md", "html"], default="md")
    add_config_argument(p)
    p.set_defaults(func=privacy_notice)

    p = sub.add_parser("sar", help="subject access request: everything stored about one person")
    p.add_argument("--staff", required=True, help="the person's staff id (as in the inventory), or any of "
                   "their sign-ins: every recorded form of it is searched")
    p.add_argument("--out", required=True, help="new directory for the files")
    p.add_argument("--reference", help="the request's reference, recorded in the export log")
    add_central_argument(p)
    add_config_argument(p)
    p.set_defaults(func=sar)

    p = sub.add_parser("verify-export", help="check an export directory against its manifest")
    p.add_argument("path", help="export directory")
    p.add_argument("--public-key", help="the gateway's public key (ed25519:..., or a file): checks the "
                   "manifest's signature without the gateway's config")
    add_config_argument(p)
    p.set_defaults(func=verify_export_command)
