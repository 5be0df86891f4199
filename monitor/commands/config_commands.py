"""`check-config`, `explain` and `platforms`: the configuration and the tagging core."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from zoneinfo import ZoneInfo

from monitor.config.exportsettings import export_retention_days
from monitor.config.loader import CONFIG_ENV, INSTALLED_CONFIG, Config, config_choice, load_config
from monitor.config.values import normalise_mac
from monitor.errors import ConfigError, UserError
from monitor.observation import Observation, normalise_hostname


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help=f"trust config (default: ${CONFIG_ENV}, else {INSTALLED_CONFIG} whenever it exists, "
        "else this checkout's config/example.yaml); the one used is named on stderr",
    )


def load_chosen_config(given: str | None, given_by: str = "--config") -> Config:
    """The config a command uses (see monitor.config.loader.choose_config), loaded, then named
    in one stderr line, so an answer never silently comes from another trust's config."""
    choice = config_choice(given, given_by)
    config = load_config(choice.path)
    print(choice.line(), file=sys.stderr)
    return config


def check_config(args: argparse.Namespace) -> int:
    given = args.path or args.config
    choice = config_choice(given, "the command line" if args.path else "--config")
    try:
        config = load_config(choice.path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        print(f"{len(exc.errors)} error(s)", file=sys.stderr)
        return 1
    print(choice.line(), file=sys.stderr)
    zones = sum(len(s.zones) for s in config.schools)
    print(
        f"{given or choice.path}: ok: {config.trust.name}: {len(config.schools)} schools, {zones} zones, "
        f"{len(config.devices)} devices, {len(config.staff_periods)} staff periods, "
        f"{len(config.catalog)} platforms ({config.catalog.domain_count} domains)"
    )
    model = config.model
    print(f"retention: sessions {model.retention_days} days; exports in {config.exports_folder} "
          f"{export_retention_days(model.exports, model.retention_days)} days; export log "
          f"{model.exports.log_retention_days} days, then folded into a summary")
    return 0


def at_timestamp(text: str | None, tz: str) -> float:
    """`explain --at` as an epoch timestamp: an ISO time, local to the trust unless it has an
    offset; now by default. A bad value is a UserError naming the option."""
    from monitor.tagging.timetable import parse_local_time

    if text is None:
        return time.time()
    try:
        return parse_local_time(text, ZoneInfo(tz)).timestamp()
    except ValueError as exc:
        raise UserError(f"--at: {exc}") from None


def explain(args: argparse.Namespace) -> int:
    from monitor.exports.tagged import Inclusion, TaggedRows, check_tagged, log_tagged
    from monitor.tagging.tagger import Tagger  # the tagging core is imported where it is used

    reason = check_tagged(args.identified, args.reason)
    config = load_chosen_config(args.config)
    try:
        client = str(ipaddress.ip_address(args.client))
    except ValueError:
        raise UserError(f"--client: {args.client!r} is not an IP address") from None
    mac = None
    if args.mac:
        try:
            mac = normalise_mac(args.mac)
        except ValueError as exc:
            raise UserError(f"--mac: {exc}") from None
    obs = Observation(
        timestamp=at_timestamp(args.at, config.trust.timezone),
        client_ip=client,
        client_port=0,
        server_ip="0.0.0.0",
        server_port=443,
        transport="tcp",
        protocol="tls",
        hostname=normalise_hostname(args.host),
        source="sensor",
        client_mac=mac,
        user=args.user,
    )
    from monitor.tagging.policy import why

    tagger = Tagger(config)
    event = tagger.tag(obs)
    if reason is not None:  # names the device and owner the inventory gives the address: logged first
        inclusion = Inclusion()
        inclusion.add(event)
        entry = log_tagged(config, inclusion, command="explain", reason=reason, inputs=[],
                           shown="stdout (explain)")
        print(f"social-monitor: identified explain, logged as export {entry.seq}", file=sys.stderr)
    row = TaggedRows(config, args.identified).row(event)
    row["social.recordable"] = event.recordable
    row["social.pupil_hours"] = event.pupil_hours
    row["social.why"] = why(event, tagger.policy)
    print(json.dumps(row, indent=2 if args.pretty else None))
    return 0


def list_platforms(args: argparse.Namespace) -> int:
    config = load_chosen_config(args.config)
    rows = sorted(config.catalog.platforms.values(), key=lambda p: (p.category, p.id))
    if args.format == "json":
        for p in rows:
            print(json.dumps({"id": p.id, "name": p.name, "category": p.category,
                              "domains": list(p.domains)}))
        return 0
    sensitive = set(config.model.policy.sensitive_categories)
    print(f"{'ID':<18} {'CATEGORY':<20} {'NAME':<34} DOMAINS")
    for p in rows:
        note = " (never recorded)" if p.category in sensitive else ""
        print(f"{p.id:<18} {p.category + note:<20} {p.name:<34} {', '.join(p.domains)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", help="validate a trust config and list every error")
    p.add_argument("path", nargs="?", help="config file (default: see --config)")
    add_config_argument(p)
    p.set_defaults(func=check_config)

    p = sub.add_parser("explain", help="tag one access and print it as a JSON event")
    p.add_argument("--client", required=True, help="client IP address")
    p.add_argument("--host", required=True, help="hostname the client reached")
    p.add_argument("--at", help="ISO time (local to the trust unless it has an offset); default now")
    p.add_argument("--mac", help="client MAC address, if known")
    p.add_argument("--user", help="proxy-authenticated user, if any")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")
    p.add_argument("--identified", action="store_true", help="the asset tag, MAC and staff id the inventory "
                   "gives instead of aliases (needs --reason; entered in the export log)")
    p.add_argument("--reason", help="why names are needed; recorded in the export log")
    add_config_argument(p)
    p.set_defaults(func=explain)

    p = sub.add_parser("platforms", help="list the platform catalog in scope")
    add_config_argument(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=list_platforms)
