"""Subject access requests: everything stored about one person, with a manifest, logged (UK GDPR art. 15)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from monitor.config.loader import Config
from monitor.exports.encode import write_sessions
from monitor.exports.log import LogEntry, current_user, log_head
from monitor.exports.request import ExportError, ExportResult
from monitor.exports.reviews import ReviewColumns, sar_reviews
from monitor.exports.sealed import ExportWriter, base_manifest
from monitor.exports.subjects import Disclosures, IdentityForms, Included, disclosures, identity_forms
from monitor.exports.subjects import subject_sessions as find_sessions
from monitor.store.base import SessionReader, SessionStore
from monitor.store.sessions import Session

log = structlog.get_logger("monitor.exports.sar")


def subject_sessions(config: Config, store: SessionReader, staff_id: str) -> Iterator[Session]:
    """Every stored session about one person, oldest first, each once (see `monitor.exports.subjects`)."""
    yield from find_sessions(store, identity_forms(config, store, staff_id))


def run_sar(config: Config, store: SessionStore, staff_id: str, out: Path, **kw: Any) -> ExportResult:
    """A subject access request: everything stored about one person, with a manifest, logged."""
    key = kw.get("signing_key")
    with store.snapshot() as view:
        signed = store.sign_head(key, "export", view.chain_head()) if key is not None else None
        return _sar(config, view, staff_id, out, signed=signed, **kw)


def _sar(
    config: Config,
    store: SessionReader,
    staff_id: str,
    out: Path,
    *,
    log_path: Path | None = None,
    reference: str | None = None,
    now: float | None = None,
    user: str | None = None,
    signing_key: Any = None,
    signed: Any = None,  # the SignedHead of this snapshot's chain head
) -> ExportResult:
    started = time.perf_counter()
    if not staff_id.strip():
        raise ExportError("--staff: give the person's staff id (as in the inventory)")
    now = time.time() if now is None else now
    user = user or current_user()
    head = store.chain_head()
    # the log is read before anything is created: an unreadable one leaves nothing behind
    export_log_head = log_head(log_path) if log_path is not None else None
    forms = identity_forms(config, store, staff_id)
    staff_id = forms.staff_id
    given = disclosures(log_path, forms) if log_path is not None else Disclosures([], 0)
    writer = ExportWriter(out)
    try:
        flagged = 0
        session_ids: set[int] = set()
        reviews = store.reviews()
        columns = ReviewColumns(reviews, identified=True)
        included = Included()
        seen_on: set[str] = set()

        def count(s: Session, _device: str, _owner: str | None) -> None:
            nonlocal flagged
            flagged += s.flagged
            session_ids.add(s.id or 0)
            included.add(s)
            seen_on.add(s.device)

        n = write_sessions(writer, find_sessions(store, forms), observe=count, extra=columns,
                           tz=ZoneInfo(config.trust.timezone))
        n_reviews = sar_reviews(writer, reviews, session_ids)
        writer.add_text("README.txt", _sar_readme(config, forms, sorted(seen_on), n, given))
        manifest = base_manifest(config, "sar", user, now)
        manifest.update({
            "subject": staff_id,
            "devices": forms.devices,
            "searched": forms.to_dict(),
            "devices_in_sessions": sorted(seen_on),
            "recipients": given.rows(),
            "recipients_unrecorded": given.unrecorded,
            "reference": reference,
            "identified": True,
            "sessions": n,
            "flagged": flagged,
            "reviews": n_reviews,
            "retention_days": config.model.retention_days,
            "chain_head": {"record_id": head.record_id, "hash": head.hash},
            "signed_head": signed.to_dict() if signed else None,
            "export_log_head": export_log_head,
        })

        def entry_for(log: Path, out: Path, manifest_hash: str) -> LogEntry:
            return LogEntry(
                kind="sar", at=manifest["created_at"], user=user, out=str(out.resolve()),
                manifest_sha256=manifest_hash, sessions=n, identified=True,
                reason=reference or "subject access request", subject=staff_id,
                extra={"included": included.tokens(log),
                       **({"signed_head": signed.to_dict()} if signed else {})},
            )

        out, manifest_hash, entry = writer.seal_logged(manifest, log_path, entry_for, signing_key)
    except BaseException as exc:
        raise writer.failed(exc) from None
    seconds = time.perf_counter() - started
    log.info("sar_written", sessions=n, out=str(out), seconds=round(seconds, 3))
    return ExportResult(out, n, flagged, manifest_hash, seconds, entry, manifest)


def _sar_readme(config: Config, forms: IdentityForms, seen_on: list[str], n: int, given: Disclosures
                ) -> str:
    owned = ", ".join(forms.devices) if forms.devices else "none in the inventory"
    searched = [f"staff id {forms.staff_id}"]
    searched += [f"proxy sign-in {x} (login map)" for x in forms.logins]
    searched += [f"recorded as {x}" for x in forms.owners if x != forms.staff_id]
    searched += [f"device {x} (sessions naming no one)" for x in forms.devices]
    lines = [
        f"Subject access request: records held by {config.trust.name} about staff id {forms.staff_id}\n",
        "Searched under every form your identity was recorded in (sign-ins compare without case,",
        "domain prefix or @domain):",
        *(f"  - {x}" for x in searched),
        "",
        f"Devices assigned to this person in the trust inventory now: {owned}.",
        f"Devices these sessions were recorded on: {', '.join(seen_on) or 'none'}.",
        f"Sessions: {n} (sessions.csv for a spreadsheet, sessions.jsonl for a computer; same content).\n",
        "Each row is one access session: a trust device reaching a social-media platform, with the",
        "time (UTC), the school, network zone, timetable period, the platform's hostnames, and any",
        "policy flags (clause 4.3) or exemption (clause 4.1), and for a flagged session the current",
        "review of it (social.review.*: the outcome, who reviewed it, when, the note and the reason).",
        "reviews.jsonl lists every review of these sessions, earlier ones a later review replaced too.",
        "A review never changes the session it describes. Messages, posts, pages visited (URLs),",
        "searches and any other content are never recorded, so none can be included here.",
        f"Sessions are kept for {config.model.retention_days} days and then deleted.\n",
        "Recipients (UK GDPR art. 15(1)(c)): exports and listings from the export log that included you:",
    ]
    for r in given.rows():
        what = f"school {r['school']}, {r['from']} to {r['to']}" if r["school"] else r["kind"]
        shown = "identified" if r["identified"] else "under an alias"
        lines.append(f"  - {r['at']} {r['kind']} by {r['by']} ({what}; {shown}): "
                     f"{r['reason'] or 'no reason given'}")
    if not given.entries:
        lines.append("  - none")
    if given.unrecorded:
        lines.append(f"  ({given.unrecorded} earlier log entries did not record whom they included.)")
    lines.append("\nmanifest.json holds the SHA-256 of each file; `social-monitor verify DIR` checks them.\n")
    return "\n".join(lines)


__all__ = ["run_sar", "subject_sessions"]
