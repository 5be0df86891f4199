"""Exports from the trust's central store: every school at once (clause 6.1), or one school from there.

The CEO's export for central staff must include the days they spent at a school,
so it reads every gateway's sessions from the central store (`CentralReader`, one
read-only snapshot) rather than one gateway's file. The files are an export's
(`monitor.exports.export`) with one column more, ``social.gateway``: session ids
are each gateway's own and repeat across the trust, so a row, its review and any
later question about it name the gateway. Reviews are matched per gateway.

A gateway's export names its chain head; a trust-wide one names, per gateway,
the central cursor (the last record of its chain the central store held at the
snapshot: id and hash) and the gateway's latest signed head accepted there
(``sources``), so what it came from can be checked against the central store or
the gateway's own file later. It is signed with the running machine's key and
entered in that machine's export log, like any export.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from monitor import __version__
from monitor.config.loader import Config
from monitor.exports.dates import day_bounds
from monitor.exports.encode import write_sessions
from monitor.exports.export import period_order
from monitor.exports.log import LogEntry, current_user, log_head
from monitor.exports.pseudonyms import Labeller, Pseudonymiser, alias_labeller, identity
from monitor.exports.report import ReportContext, ReportStats, render_report
from monitor.exports.request import ExportError, ExportRequest, ExportResult, check_identify
from monitor.exports.reviews import COLUMNS, ReviewColumns
from monitor.exports.sealed import ExportWriter, base_manifest
from monitor.exports.subjects import Included
from monitor.store.filter import SessionFilter
from monitor.store.postgres.reader import CentralReader, Source
from monitor.store.reviews import Review, latest
from monitor.store.sessions import Session
from monitor.store.signing import public_key_text

log = structlog.get_logger("monitor.exports.trust")

GATEWAY_COLUMN = "social.gateway"
TRUST_SCOPE = "trust"


class GatewayReviewColumns(ReviewColumns):
    """`ReviewColumns` for sessions of several gateways: a ``social.gateway`` column first, and each
    session's review looked up in its own gateway's chain (session ids repeat across gateways)."""

    columns = (GATEWAY_COLUMN, *COLUMNS)  # type: ignore[assignment]  # one column more than the base

    def __init__(self, reviews: dict[str, list[Review]], identified: bool):
        super().__init__((), identified)
        self.by_gateway = {gateway: latest(found) for gateway, found in reviews.items()}

    def review_of(self, s: Session) -> Review | None:
        if not s.flagged or s.id is None:
            return None
        return self.by_gateway.get(gateway_of(s), {}).get(s.id)

    def add(self, s: Session, line: str, row: tuple) -> tuple[str, tuple]:
        gateway = gateway_of(s)
        line = f"{line[:-2]}, {json.dumps(GATEWAY_COLUMN)}: {json.dumps(gateway, ensure_ascii=False)}}}\n"
        return super().add(s, line, (*row, gateway))


def gateway_of(s: Session) -> str:
    return str(getattr(s, "gateway", ""))


@dataclass(frozen=True, slots=True)
class SourcesAnchor:
    """What the report prints where a gateway's export prints its chain head: every gateway's cursor."""

    record_id: str  # "oak 40; elm 31"
    hash: str  # SHA-256 of the manifest's `sources`

    @classmethod
    def of(cls, sources: dict[str, Any]) -> SourcesAnchor:
        named = "; ".join(f"{g} {s['cursor']['record_id']}" for g, s in sources.items()) or "no gateway"
        digest = hashlib.sha256(json.dumps(sources, sort_keys=True, separators=(",", ":")).encode())
        return cls(named, digest.hexdigest())


def sources_dict(sources: Iterable[Source]) -> dict[str, Any]:
    return {s.gateway_id: s.to_dict() for s in sources}


def central_provenance(reader: CentralReader, sources: dict[str, Any]) -> dict[str, Any]:
    """Where an export from the central store was read: the store, its gateways, and each gateway's
    cursor and signed head (`sources_dict`), for the manifest (`verify DIR --against central`)."""
    return {"central": {"store": reader.where, "gateways": reader.gateways}, "sources": sources}


def central_log_extra(reader: CentralReader, sources: dict[str, Any]) -> dict[str, Any]:
    """The same for the export log's entry: the store and each gateway's cursor."""
    return {"central": reader.where, "sources": {g: s["cursor"] for g, s in sources.items()}}


def run_trust_export(
    config: Config,
    reader: CentralReader,
    request: ExportRequest,
    *,
    log_path: Path | None = None,
    now: float | None = None,
    user: str | None = None,
    key: bytes | None = None,
    signing_key: Any = None,
) -> ExportResult:
    """Write one export directory from the central store: `request.school` empty or ``trust`` for every
    school, else one school; appended to the export log at `log_path`."""
    started = time.perf_counter()
    reason = check_identify(request.identify, request.reason)
    whole_trust = request.school in ("", TRUST_SCOPE)
    school = None if whole_trust else config.school(request.school)
    if not whole_trust and school is None:
        known = ", ".join(s.id for s in config.schools)
        raise ExportError(f"--school: {request.school!r} is not a configured school ({known})")
    if request.last_day < request.first_day:
        raise ExportError(f"--to {request.last_day} is before --from {request.first_day}")
    now = time.time() if now is None else now
    user = user or current_user()
    tz = ZoneInfo(config.trust.timezone)
    since, until = day_bounds(request.first_day, request.last_day, tz)
    where = SessionFilter(school=None if school is None else school.id, since=since, until=until,
                          flagged=True if request.flagged_only else None)

    sources = sources_dict(reader.sources())  # the first read of the snapshot
    labels: Labeller = identity
    if not request.identify:
        devices, owners = reader.devices_and_owners(where)
        labels = alias_labeller(Pseudonymiser({"Device": devices, "Staff": owners}, key=key))
    stats = ReportStats(tz)
    stats.reviews = columns = GatewayReviewColumns(reader.reviews_by_gateway(), request.identify)
    export_log_head = log_head(log_path) if log_path is not None else None
    writer = ExportWriter(request.out)
    try:
        included = Included()
        schools: set[str] = set()

        def observe(s: Any, device: str, owner: str | None) -> None:
            stats.add(s, device, owner)
            included.add(s)
            schools.add(s.school)

        n = write_sessions(writer, reader.sessions(where), labels=labels, observe=observe, extra=columns)
        scope = TRUST_SCOPE if school is None else school.id
        manifest = base_manifest(config, "export", user, now)
        manifest.update({
            "scope": TRUST_SCOPE if school is None else "school",
            "school": None if school is None else {"id": school.id, "name": school.name},
            "schools": sorted(schools),
            "period": {"from": request.first_day.isoformat(), "to": request.last_day.isoformat(),
                       "timezone": config.trust.timezone, "start": since.isoformat(),
                       "end": until.isoformat()},
            "flagged_only": request.flagged_only,
            "identified": request.identify,
            "reason": reason,
            "pseudonymised": not request.identify,
            "sessions": n,
            "flagged": stats.flagged,
            "reviews": {"reviewed": columns.reviewed, "open": columns.open},
            **central_provenance(reader, sources),
            "export_log_head": export_log_head,
        })
        chosen = [school] if school is not None else list(config.schools)
        context = ReportContext(
            trust=config.trust.name,
            school=school.name if school is not None else f"every school of the trust ({len(schools)} in it)",
            school_id=scope, first_day=request.first_day, last_day=request.last_day,
            timezone=config.trust.timezone, flagged_only=request.flagged_only, identified=request.identify,
            reason=reason, retention_days=config.model.retention_days, created_at=manifest["created_at"],
            created_by=user, tool_version=__version__, config_fingerprint=config.fingerprint,
            chain_head=SourcesAnchor.of(sources),
            period_order=list(dict.fromkeys(p for s in chosen for p in period_order(s))),
            zone_order=list(dict.fromkeys(z.name for s in chosen for z in s.zones if z.monitored)),
            dpia_reference=config.trust.dpia_reference,
            public_key=public_key_text(signing_key.public_key()) if signing_key else None,
        )
        writer.add_text("report.html", render_report(context, stats))
        def entry_for(log: Path, out: Path, manifest_hash: str) -> LogEntry:
            return LogEntry(
                kind="export", at=manifest["created_at"], user=user, out=str(out.resolve()),
                manifest_sha256=manifest_hash, sessions=n, school=scope,
                period_from=request.first_day.isoformat(), period_to=request.last_day.isoformat(),
                flagged_only=request.flagged_only, identified=request.identify, reason=reason,
                extra={"included": included.tokens(log), **central_log_extra(reader, sources),
                       "reviews": columns.reviewed},
            )

        out, manifest_hash, entry = writer.seal_logged(manifest, log_path, entry_for, signing_key)
    except BaseException as exc:
        raise writer.failed(exc) from None
    seconds = time.perf_counter() - started
    log.info("trust_export_written", scope=scope, sessions=n, flagged=stats.flagged, out=str(out),
             gateways=len(sources), identified=request.identify, seconds=round(seconds, 3))
    return ExportResult(out, n, stats.flagged, manifest_hash, seconds, entry, manifest)


__all__ = ["GATEWAY_COLUMN", "TRUST_SCOPE", "GatewayReviewColumns", "SourcesAnchor", "gateway_of",
           "run_trust_export", "sources_dict"]
