"""`hold`: place, release and list legal holds (clause 3.3), each in the store's chain and the export log."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.commands.config_commands import add_config_argument, load_chosen_config
from monitor.commands.store_commands import MAC_LIKE
from monitor.config.values import normalise_mac
from monitor.store.base import StoreError
from monitor.store.chain import ChainHead
from monitor.store.holds import Hold, HoldError, check_case, check_reason, count_held, place, release
from monitor.store.sqlite import open_config_store


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def hold(args: argparse.Namespace) -> int:
    config = load_chosen_config(args.config)
    if args.list:
        return list_holds(config, args)
    from monitor.exports.log import LogEntry, append, current_user, log_path_for

    case = check_case(args.case)
    if not config.store_path.exists():
        raise StoreError(f"{config.store_path}: no such store (nothing has been recorded yet?)")
    log_path, user = log_path_for(config.store_path), current_user()
    if args.release:
        if args.device or args.staff:
            raise HoldError("--release ends every hold of the case: give --case and --reason only")
        reason = check_reason(args.reason, "releasing a hold")

        def let_go(con: Any, start: ChainHead, now: float) -> tuple[list[Hold], int]:
            held = release(con, start, now, case=case, reason=reason, by=user)
            record = con.execute("SELECT MAX(id) FROM records").fetchone()[0]
            counts = [count_held(con, h) for h in held]
            append(log_path, LogEntry(kind="release", at=_iso(now), user=user, out="", manifest_sha256="",
                                      sessions=sum(counts), identified=False, reason=reason,
                                      extra={"case": case, "record": record, "released": [
                                          {"scope": h.scope, "target": h.target} for h in held]}))
            return held, record

        with open_config_store(config) as store:
            released, record = store.in_transaction(let_go)
        names = ", ".join(f"{h.scope} {h.target}" for h in released)
        print(f"case {case}: released {names} (chain record {record}); their sessions are purged again "
              f"once older than {config.model.retention_days} days")
        return 0
    if bool(args.device) == bool(args.staff):
        raise HoldError("give --device ASSET or --staff ID (one of them), with --case and --reason")
    scope, target = ("device", args.device) if args.device else ("staff", args.staff)
    if scope == "device" and MAC_LIKE.match(target):
        target = normalise_mac(target)  # a device without an asset tag is stored under its MAC
    reason = check_reason(args.reason, "a hold")

    def keep(con: Any, start: ChainHead, now: float) -> tuple[Hold, int]:
        placed = place(con, start, now, case=case, scope=scope, target=target, reason=reason, by=user)
        n = count_held(con, placed)
        append(log_path, LogEntry(kind="hold", at=_iso(now), user=user, out="", manifest_sha256="",
                                  sessions=n, identified=False, reason=reason,
                                  subject=target if scope == "staff" else None,
                                  extra={"case": case, "scope": scope, "target": target,
                                         "record": placed.record_id}))
        return placed, n

    with open_config_store(config) as store:
        placed, n = store.in_transaction(keep)
    print(f"case {case}: holding {scope} {target} ({n} sessions stored now, and every later one) past "
          f"retention until released; chain record {placed.record_id}")
    return 0


def list_holds(config: Any, args: argparse.Namespace) -> int:
    tz = ZoneInfo(config.trust.timezone)
    if not config.store_path.exists():
        raise StoreError(f"{config.store_path}: no such store (nothing has been recorded yet?)")
    with open_config_store(config, create=False) as store:
        found = [h for h in store.holds() if h.open or args.all]
    print(f"{'CASE':<16}  {'SCOPE':<6}  {'TARGET':<16}  {'PLACED (local)':<16}  {'BY':<12}  {'STATUS':<26}  "
          "REASON")
    for h in found:
        placed = datetime.fromtimestamp(h.placed_at, tz).strftime("%Y-%m-%d %H:%M")
        status = "open" if h.open else "released " + datetime.fromtimestamp(
            h.released_at or 0, tz).strftime("%Y-%m-%d %H:%M")
        print(f"{h.case:<16}  {h.scope:<6}  {h.target:<16}  {placed:<16}  {h.placed_by:<12}  {status:<26}  "
              f"{h.reason}")
    if not found:
        print("no open legal holds" if not args.all else "no legal holds in the chain")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hold", help="legal hold: keep one device's or person's sessions past retention "
                       "until released (recorded in the chain and the export log)")
    p.add_argument("--case", help="the investigation's case reference")
    p.add_argument("--device", help="asset tag (or MAC of a device without one) to hold")
    p.add_argument("--staff", help="staff id to hold: their sessions on any device")
    p.add_argument("--reason", help="why; recorded in the chain and the export log")
    p.add_argument("--release", action="store_true", help="end every hold of --case")
    p.add_argument("--list", action="store_true", help="list the open holds")
    p.add_argument("--all", action="store_true", help="with --list: released holds still in the chain too")
    add_config_argument(p)
    p.set_defaults(func=hold)


__all__ = ["hold", "list_holds", "register"]
