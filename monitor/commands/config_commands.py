"""`check-config`, `explain` and `platforms`: the configuration and the tagging core."""

from __future__ import annotations

import argparse
import json
import sys

from monitor.config import default_config_path, load_config
from monitor.errors import ConfigError


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="trust config (default: $SOCIAL_MONITOR_CONFIG, else config/example.yaml)",
    )


def check_config(args: argparse.Namespace) -> int:
    path = args.path or args.config or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        print(f"{len(exc.errors)} error(s)", file=sys.stderr)
        return 1
    zones = sum(len(s.zones) for s in config.schools)
    print(
        f"{path}: ok: {config.trust.name}: {len(config.schools)} schools, {zones} zones, "
        f"{len(config.devices)} devices, {len(config.staff_periods)} staff periods, "
        f"{len(config.catalog)} platforms ({config.catalog.domain_count} domains)"
    )
    return 0


def list_platforms(args: argparse.Namespace) -> int:
    config = load_config(args.config)
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

    p = sub.add_parser("platforms", help="list the platform catalog in scope")
    add_config_argument(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=list_platforms)
