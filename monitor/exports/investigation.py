"""Investigation exports (clause 3.3): one device's or one person's sessions, identified, with proof.

An investigation into one laptop must not identify every member of staff at its
school: `export --device ASSET` (or `--staff ID`) takes only that scope. A
device scope is every session of that device (its asset tag, or the MAC of a
device without one), whoever used it; a staff scope is every session whose
owner is that person, on any device. The export is identified (it exists to
name), so it needs a reason and a case reference, and it is entered in the
export log as kind "investigation" with the case, the scope, and the staff ids
and devices it names (what a subject access request lists as recipients).

sessions.csv and sessions.jsonl carry each session's current review in the
`social.review.*` columns the school export has (`monitor.exports.reviews`), note and
reason included: the same review report.html shows, so an investigator working from
the CSV sees what was already decided about each flag. Beside them it carries evidence.jsonl
(`monitor.exports.evidence`): the chain record behind each session, so the
records can be shown unaltered; the manifest holds the snapshot's chain head,
signed with the gateway's key, and `verify-export` checks all of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from monitor.config.loader import Config
from monitor.exports.dates import day_bounds
from monitor.exports.encode import write_sessions
from monitor.exports.evidence import EVIDENCE, write_evidence
from monitor.exports.investigation_report import CaseFacts, InvestigationReport
from monitor.exports.log import LogEntry, current_user, log_head
from monitor.exports.request import ExportError, ExportResult
from monitor.exports.sealed import ExportWriter, base_manifest
from monitor.store.base import SessionReader, SessionStore
from monitor.store.filter import SessionFilter
from monitor.store.holds import HoldError, check_case
from monitor.store.sessions import Session
from monitor.store.signing import public_key_text

log = structlog.get_logger("monitor.exports.investigation")
SCOPES = ("device", "staff")


@dataclass(slots=True)
class InvestigationRequest:
    scope: str  # device | staff
    target: str  # asset tag (or MAC), or staff id
    case: str
    reason: str
    out: Path
    first_day: date | None = None  # None: from the first session stored
    last_day: date | None = None  # inclusive; None: to the last


def checked(request: InvestigationRequest) -> InvestigationRequest:
    """The request with its case and reason checked; one line names what is missing."""
    if request.scope not in SCOPES:
        raise ExportError(f"investigation scope {request.scope!r}: one of {', '.join(SCOPES)}")
    if not request.target.strip():
        what = "asset tag" if request.scope == "device" else "staff id"
        raise ExportError(f"--{request.scope}: give the {what}")
    if not (request.case or "").strip() or not (request.reason or "").strip():
        raise ExportError("an investigation export (--device or --staff) names people and needs --case REF "
                          "and --reason TEXT; nothing was exported")
    try:
        case = check_case(request.case)
    except HoldError as exc:
        raise ExportError(str(exc)) from None
    reason = " ".join((request.reason or "").split())
    if not reason:
        raise ExportError("an investigation export names people and needs --reason TEXT and --case REF; "
                          "nothing was exported")
    if (request.first_day is None) != (request.last_day is None):
        raise ExportError("give both --from and --to, or neither (the whole history stored)")
    if request.first_day and request.last_day and request.last_day < request.first_day:
        raise ExportError(f"--to {request.last_day} is before --from {request.first_day}")
    return InvestigationRequest(request.scope, request.target.strip(), case, reason, request.out,
                                request.first_day, request.last_day)


def scope_filter(config: Config, request: InvestigationRequest) -> SessionFilter:
    since = until = None
    if request.first_day and request.last_day:
        since, until = day_bounds(request.first_day, request.last_day, ZoneInfo(config.trust.timezone))
    if request.scope == "device":
        return SessionFilter(device=request.target, since=since, until=until)
    return SessionFilter(owner=request.target, since=since, until=until)


def run_investigation(config: Config, store: SessionStore, request: InvestigationRequest,
                      **kw: Any) -> ExportResult:
    """Write one investigation export and append it to the export log (`log_path`)."""
    request = checked(request)  # before anything is read or signed
    key = kw.get("signing_key")
    with store.snapshot() as view:
        signed = store.sign_head(key, "export", view.chain_head()) if key is not None else None
        return _investigation(config, view, request, signed=signed, **kw)


def _investigation(config: Config, store: SessionReader, request: InvestigationRequest, *,
                   log_path: Path | None = None, now: float | None = None, user: str | None = None,
                   signing_key: Any = None, signed: Any = None) -> ExportResult:
    started = time.perf_counter()
    now = time.time() if now is None else now
    user = user or current_user()
    where = scope_filter(config, request)
    head = store.chain_head()
    export_log_head = log_head(log_path) if log_path is not None else None
    devices, owners = store.devices_and_owners(where)
    flagged = 0

    def count(s: Session, _device: str, _owner: str | None) -> None:
        nonlocal flagged
        flagged += s.flagged

    tz = ZoneInfo(config.trust.timezone)
    report = InvestigationReport(tz, store.reviews())

    def observe(s: Session, device: str, owner: str | None) -> None:
        count(s, device, owner)
        report.add(s)

    writer = ExportWriter(request.out)
    try:
        # the report's review cells are the CSV's too: one current review per session, as the report shows it
        columns = report.review_cells
        n = write_sessions(writer, store.sessions(where), observe=observe, extra=columns, tz=tz)
        with writer.open_text(EVIDENCE) as fh:
            proved = write_evidence(fh, store.evidence(where))
        if proved != n:  # one snapshot: a difference means the store does not hold what it lists
            raise ExportError(f"{n} sessions but {proved} chain records in the store's snapshot: run "
                              "`social-monitor verify`; nothing was exported")
        writer.add_text("README.txt", _readme(config, request, n, head.record_id))
        manifest = base_manifest(config, "investigation", user, now)
        writer.add_text("report.html", report.render(CaseFacts(
            trust=config.trust.name, case=request.case, reason=request.reason, scope=request.scope,
            target=request.target, period=_period(request), timezone=config.trust.timezone,
            created_at=manifest["created_at"], created_by=user,
            chain_head={"record_id": head.record_id, "hash": head.hash},
            signed_head=signed.to_dict() if signed else None,
            public_key=public_key_text(signing_key.public_key()) if signing_key is not None else None,
            evidence_records=proved, devices=sorted(devices), staff=sorted(owners))))
        manifest.update(case_manifest(config, request, devices, owners, n, flagged))
        manifest.update({
            "reviews": {"reviewed": columns.reviewed, "open": columns.open},
            "chain_head": {"record_id": head.record_id, "hash": head.hash},
            "export_log_head": export_log_head,
            "signed_head": signed.to_dict() if signed else None,
        })

        def entry_for(_log: Path, out: Path, manifest_hash: str) -> LogEntry:
            return case_log_entry(manifest, request, user, out, manifest_hash, n, owners, devices,
                                  {"signed_head": signed.to_dict()} if signed else {})

        out, manifest_hash, entry = writer.seal_logged(manifest, log_path, entry_for, signing_key)
    except BaseException as exc:
        raise writer.failed(exc) from None
    seconds = time.perf_counter() - started
    log.info("investigation_written", case=request.case, scope=request.scope, sessions=n, out=str(out),
             seconds=round(seconds, 3))
    return ExportResult(out, n, flagged, manifest_hash, seconds, entry, manifest)


def case_log_entry(manifest: dict[str, Any], request: InvestigationRequest, user: str, out: Path,
                   manifest_hash: str, n: int, owners: set[str], devices: set[str], extra: dict[str, Any]
                   ) -> LogEntry:
    """The export log's entry for an investigation export, from a gateway or the central store (`extra`
    says which): the case, its scope and whom it names."""
    return LogEntry(
        kind="investigation", at=manifest["created_at"], user=user, out=str(out.resolve()),
        manifest_sha256=manifest_hash, sessions=n,
        period_from=manifest["period"]["from"], period_to=manifest["period"]["to"],
        identified=True, reason=request.reason, subject=request.target if request.scope == "staff" else None,
        extra={"case": request.case, "scope": {request.scope: request.target}, "staff": sorted(owners),
               "devices": sorted(devices), **extra},
    )


def case_manifest(config: Config, request: InvestigationRequest, devices: set[str], owners: set[str], n: int,
                  flagged: int) -> dict[str, Any]:
    """What every investigation's manifest says of its case, from a gateway's store or the central one."""
    return {
        "case": request.case,
        "scope": {request.scope: request.target},
        "period": {"from": request.first_day.isoformat() if request.first_day else None,
                   "to": request.last_day.isoformat() if request.last_day else None,
                   "timezone": config.trust.timezone},
        "identified": True,
        "pseudonymised": False,
        "reason": request.reason,
        "devices": sorted(devices),
        "staff": sorted(owners),
        "sessions": n,
        "flagged": flagged,
    }


def _period(request: InvestigationRequest) -> str:
    return f"from {request.first_day} to {request.last_day}" if request.first_day else \
        "the whole history still stored"


def _readme(config: Config, request: InvestigationRequest, n: int, head_id: int) -> str:
    what = f"device {request.target}" if request.scope == "device" else f"staff id {request.target} " \
        "(sessions whose owner is this person, on any device)"
    period = _period(request)
    return (
        f"Investigation export, case {request.case}: {config.trust.name}\n\n"
        f"Scope: {what}; {period}. Sessions: {n}. Nothing outside this scope is included.\n"
        f"Reason given: {request.reason}\n\n"
        "report.html: the investigator's report (the case, the sessions in local time with minutes, flags,\n"
        "reviews, and the proof below), for any browser, offline.\n"
        "sessions.csv / sessions.jsonl: the sessions, identified (asset tags, staff ids, session ids), each\n"
        "flagged one with its current review (social.review.*: outcome, when, by, note, reason) or 'open'.\n"
        f"{EVIDENCE}: the hash-chain record of each session's latest version, as the store holds it.\n"
        f"manifest.json: the SHA-256 of each file, the store's chain head at export (record {head_id}),\n"
        "signed with the gateway's key.\n\n"
        "To show the records were not altered:\n"
        "  social-monitor verify-export DIR --public-key KEY   (files, signature, every evidence record)\n"
        "  social-monitor verify --against DIR                 (on the gateway: the store still holds\n"
        "                                                       the signed chain head, and all before it)\n"
    )


__all__ = ["InvestigationRequest", "case_manifest", "checked", "run_investigation", "scope_filter"]
