"""Audit exports: the stage where sessions leave the system for a principal or an investigation.

An export is a directory of four files, written once and never edited:

* ``sessions.csv`` and ``sessions.jsonl``: the sessions with ECS and
  ``social.*`` names (the same columns as `social-monitor events`);
* ``report.html``: one self-contained page a principal reads in two minutes
  (see `monitor.exports.report`), with the previous period and the weeks
  before the export as context, read from the same snapshot;
* ``manifest.json``: the SHA-256 of each file, the period covered, the
  config's fingerprint, the store's chain head at export time, and who ran it
  with which tool version. `monitor.exports.verify` checks a directory against it.

Data protection shapes the defaults. Devices and staff appear as aliases
("Device 07", "Staff 03") numbered in the order of an HMAC-SHA256 under a
random key that is never saved: stable within one export (the same laptop is
always "Device 07" in it), numbered afresh for the next, and the rows minimised
(`monitor.exports.minimise`: times to the minute, no facts from the config that
single a person out; docs/exports.md says what that does not prevent). `identify=True` reveals
asset tags and staff ids, and needs a reason. Every export, identified or
not, is appended to the export log (`monitor.exports.log`). The files are
private from their first byte and the directory appears only when complete
(`monitor.exports.sealed`). The whole export reads one `snapshot()` of the
store, so the chain head in the manifest anchors exactly the rows exported.
With the gateway's signing key (`signing_key`), that head is signed as the
export's `signed_head` (and kept as the store's last signed head), the manifest
is signed, the head goes into the export log entry, and the report prints the
public key that checks them. Each flagged session carries its review, if any
(`monitor.exports.reviews`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor import __version__
from monitor.config.loader import Config
from monitor.exports.completeness import DnsOnlyTally, assess
from monitor.exports.dates import day_bounds
from monitor.exports.encode import write_sessions
from monitor.exports.log import LogEntry, current_user, log_head
from monitor.exports.minimise import Minimiser
from monitor.exports.pseudonyms import Labeller, Pseudonymiser, alias_labeller, identity
from monitor.exports.report import ReportContext, ReportStats, render_report
from monitor.exports.report_trend import read_history
from monitor.exports.request import ExportError, ExportRequest, ExportResult, check_identify
from monitor.exports.reviews import ReviewColumns
from monitor.exports.sealed import ExportWriter, base_manifest
from monitor.exports.subjects import Included
from monitor.store.base import SessionReader, SessionStore
from monitor.store.chain import ChainHead
from monitor.store.filter import SessionFilter
from monitor.store.signing import SignedHead, public_key_text

log = structlog.get_logger("monitor.exports.export")


def run_export(config: Config, store: SessionStore, request: ExportRequest, **kw: Any) -> ExportResult:
    """Write one export directory and append it to the export log (`log_path`)."""
    key = kw.get("signing_key")
    with store.snapshot() as view:
        sign = (lambda head: store.sign_head(key, "export", head)) if key is not None else None
        return _export(config, view, request, sign=sign, **kw)


def _export(
    config: Config,
    store: SessionReader,
    request: ExportRequest,
    *,
    log_path: Path | None = None,
    now: float | None = None,
    user: str | None = None,
    key: bytes | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    sign: Callable[[ChainHead], SignedHead] | None = None,
) -> ExportResult:
    started = time.perf_counter()
    reason = check_identify(request.identify, request.reason)
    school = config.school(request.school)
    if school is None:
        known = ", ".join(s.id for s in config.schools)
        raise ExportError(f"--school: {request.school!r} is not a configured school ({known})")
    if request.last_day < request.first_day:
        raise ExportError(f"--to {request.last_day} is before --from {request.first_day}")
    now = time.time() if now is None else now
    user = user or current_user()
    tz = ZoneInfo(config.trust.timezone)
    since, until = day_bounds(request.first_day, request.last_day, tz)
    where = SessionFilter(school=school.id, since=since, until=until,
                          flagged=True if request.flagged_only else None)

    head = store.chain_head()  # the first read: the snapshot the whole export comes from
    signed = sign(head) if sign is not None else None
    labels: Labeller = identity
    minimise = None  # pseudonymised: times to the minute, no own timetable, small exemptions unnamed
    if not request.identify:
        devices, owners = store.devices_and_owners(where)
        labels = alias_labeller(Pseudonymiser({"Device": devices, "Staff": owners}, key=key))
        minimise = Minimiser.for_school(config, school, tz)

    stats = ReportStats(tz)
    stats.reviews = review_columns = ReviewColumns(store.reviews(), request.identify)
    dns_only = DnsOnlyTally()
    # the log is read before anything is created: an unreadable one leaves nothing behind
    export_log_head = log_head(log_path) if log_path is not None else None
    writer = ExportWriter(request.out)
    try:
        included = Included()  # whom it holds, for the log: a SAR lists the exports that included a person

        def observe(s: Any, device: str, owner: str | None) -> None:
            stats.add(s, device, owner)
            included.add(s)
            dns_only.add(s)

        sessions = store.sessions(where)
        n = write_sessions(writer, sessions if minimise is None else map(minimise, sessions), labels=labels,
                           observe=observe, extra=review_columns, tz=tz)
        completeness = assess(store.ledger(since.timestamp(), until.timestamp()), request.first_day,
                              request.last_day, tz, now, dns_only.count)
        manifest = base_manifest(config, "export", user, now)
        manifest.update({
            "school": {"id": school.id, "name": school.name},
            "period": {
                "from": request.first_day.isoformat(),
                "to": request.last_day.isoformat(),
                "timezone": config.trust.timezone,
                "start": since.isoformat(),
                "end": until.isoformat(),
            },
            "flagged_only": request.flagged_only,
            "identified": request.identify,
            "reason": reason,
            "pseudonymised": not request.identify,
            "minimised": minimise.manifest() if minimise is not None else None,
            "sessions": n,
            "flagged": stats.flagged,
            "reviews": {"reviewed": review_columns.reviewed, "open": review_columns.open},
            "chain_head": {"record_id": head.record_id, "hash": head.hash},
            "export_log_head": export_log_head,
            "signed_head": signed.to_dict() if signed else None,
            "completeness": completeness.manifest(),  # how much of the period was seen (docs/exports.md)
        })
        context = ReportContext(
            trust=config.trust.name,
            school=school.name,
            school_id=school.id,
            first_day=request.first_day,
            last_day=request.last_day,
            timezone=config.trust.timezone,
            flagged_only=request.flagged_only,
            identified=request.identify,
            reason=reason,
            retention_days=config.model.retention_days,
            created_at=manifest["created_at"],
            created_by=user,
            tool_version=__version__,
            config_fingerprint=config.fingerprint,
            chain_head=head,
            period_order=period_order(school),
            zone_order=[z.name for z in school.zones if z.monitored],
            dpia_reference=config.trust.dpia_reference,
            public_key=public_key_text(signing_key.public_key()) if signing_key else None,
            idle_gap_seconds=config.model.store.idle_gap_seconds,
            history=read_history(store, school.id, request.first_day, request.last_day, tz, minimise),
            completeness=completeness,
        )
        writer.add_text("report.html", render_report(context, stats))
        def entry_for(log: Path, out: Path, manifest_hash: str) -> LogEntry:
            return LogEntry(
                kind="export",
                at=manifest["created_at"],
                user=user,
                out=str(out.resolve()),
                manifest_sha256=manifest_hash,
                sessions=n,
                school=school.id,
                period_from=request.first_day.isoformat(),
                period_to=request.last_day.isoformat(),
                flagged_only=request.flagged_only,
                identified=request.identify,
                reason=reason,
                extra={"included": included.tokens(log),
                       **({"signed_head": signed.to_dict()} if signed else {}),
                       "reviews": review_columns.reviewed},
            )

        out, manifest_hash, entry = writer.seal_logged(manifest, log_path, entry_for, signing_key)
    except BaseException as exc:
        raise writer.failed(exc) from None
    seconds = time.perf_counter() - started
    log.info("export_written", school=school.id, sessions=n, flagged=stats.flagged, out=str(out),
             identified=request.identify, seconds=round(seconds, 3))
    return ExportResult(out, n, stats.flagged, manifest_hash, seconds, entry, manifest)


def period_order(school: Any) -> list[str]:
    """The school's period names in timetable order (earliest start first), each once."""
    tt = school.timetable
    seen: dict[str, tuple] = {}
    for plan in (tt.days, tt.week_a, tt.week_b):
        for periods in (plan or {}).values():
            for p in periods:
                key = (p.start, p.end)
                if p.name not in seen or key < seen[p.name]:
                    seen[p.name] = key
    return sorted(seen, key=lambda name: seen[name])


__all__ = ["period_order", "run_export"]
