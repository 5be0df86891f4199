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
from monitor.exports.log import LogEntry, append, current_user, log_head
from monitor.exports.request import ExportError, ExportResult
from monitor.exports.sealed import ExportWriter, base_manifest
from monitor.store.base import SessionReader, SessionStore
from monitor.store.filter import SessionFilter
from monitor.store.sessions import Session

log = structlog.get_logger("monitor.exports.sar")


def subject_sessions(config: Config, store: SessionReader, staff_id: str) -> Iterator[Session]:
    """Every stored session about one person, oldest first, each once.

    Sessions that name the person as owner, and sessions of the devices the
    inventory says they own, except those that name someone else as owner (a
    proxy login by a colleague is the colleague's data, not theirs)."""
    found: dict[int, Session] = {}
    for s in store.sessions(SessionFilter(owner=staff_id)):
        found[s.id or 0] = s
    for device in sorted({d.asset_tag for d in config.devices if d.owner == staff_id}):
        for s in store.sessions(SessionFilter(device=device)):
            if s.owner in (None, staff_id):
                found[s.id or 0] = s
    yield from sorted(found.values(), key=lambda s: (s.first_seen, s.id or 0))


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
    staff_id = staff_id.strip()
    if not staff_id:
        raise ExportError("--staff: give the person's staff id (as in the inventory)")
    now = time.time() if now is None else now
    user = user or current_user()
    head = store.chain_head()
    # the log is read before anything is created: an unreadable one leaves nothing behind
    export_log_head = log_head(log_path) if log_path is not None else None
    writer = ExportWriter(out)
    try:
        flagged = 0

        def count(s: Session, _device: str, _owner: str | None) -> None:
            nonlocal flagged
            flagged += s.flagged

        n = write_sessions(writer, subject_sessions(config, store, staff_id), observe=count,
                           tz=ZoneInfo(config.trust.timezone))
        devices = sorted(d.asset_tag for d in config.devices if d.owner == staff_id)
        writer.add_text("README.txt", _sar_readme(config, staff_id, devices, n))
        manifest = base_manifest(config, "sar", user, now)
        manifest.update({
            "subject": staff_id,
            "devices": devices,
            "reference": reference,
            "identified": True,
            "sessions": n,
            "flagged": flagged,
            "retention_days": config.model.retention_days,
            "chain_head": {"record_id": head.record_id, "hash": head.hash},
            "signed_head": signed.to_dict() if signed else None,
            "export_log_head": export_log_head,
        })
        entry = None

        def log_it(out: Path, manifest_hash: str) -> None:
            nonlocal entry
            if log_path is not None:
                entry = append(log_path, LogEntry(
                    kind="sar", at=manifest["created_at"], user=user, out=str(out.resolve()),
                    manifest_sha256=manifest_hash, sessions=n, identified=True,
                    reason=reference or "subject access request", subject=staff_id,
                    extra={"signed_head": signed.to_dict()} if signed else {},
                ))

        out, manifest_hash = writer.seal(manifest, before_rename=log_it, signing_key=signing_key)
    except BaseException as exc:
        raise writer.failed(exc) from None
    seconds = time.perf_counter() - started
    log.info("sar_written", sessions=n, out=str(out), seconds=round(seconds, 3))
    return ExportResult(out, n, flagged, manifest_hash, seconds, entry, manifest)


def _sar_readme(config: Config, staff_id: str, devices: list[str], n: int) -> str:
    owned = ", ".join(devices) if devices else "none in the inventory"
    return (
        f"Subject access request: records held by {config.trust.name} about staff id {staff_id}\n\n"
        f"Devices assigned to this person in the trust inventory: {owned}.\n"
        f"Sessions: {n} (sessions.csv for a spreadsheet, sessions.jsonl for a computer; same content).\n\n"
        "Each row is one access session: a trust device reaching a social-media platform, with the\n"
        "time (UTC), the school, network zone, timetable period, the platform's hostnames, and any\n"
        "policy flags (clause 4.3) or exemption (clause 4.1). Messages, posts, pages visited (URLs),\n"
        "searches and any other content are never recorded, so none can be included here.\n"
        f"Records are kept for {config.model.retention_days} days and then deleted.\n\n"
        "manifest.json holds the SHA-256 of each file; `social-monitor verify DIR` checks them.\n"
    )


__all__ = ["run_sar", "subject_sessions"]
