"""Audit exports: the stage where sessions leave the system for a principal or an investigation.

An export is a directory of four files, written once and never edited:

* ``sessions.csv`` and ``sessions.jsonl``: the sessions with ECS and
  ``social.*`` names (the same columns as `social-monitor events`);
* ``report.html``: one self-contained page a principal reads in two minutes
  (see `monitor.exports.report`);
* ``manifest.json``: the SHA-256 of each file, the period covered, the
  config's fingerprint, the store's chain head at export time, and who ran it
  with which tool version. `verify_export` checks a directory against it.

Data protection shapes the defaults. Devices and staff appear as aliases
("Device 07", "Staff 03") numbered in the order of an HMAC-SHA256 under a
random key that is never saved: stable within one export (the same laptop is
always "Device 07" in it), unlinkable across exports. `identify=True` reveals
asset tags and staff ids, and needs a reason. Every export, identified or
not, is appended to the export log (`monitor.exports.log`). Files are created
0600 inside a 0700 directory, with the mode given to ``os.open`` so there is
no moment when they are readable by others, and the directory is built
under a temporary name and renamed into place, so a half-written export
never looks like a finished one.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from json.encoder import encode_basestring as _encode_string  # what ensure_ascii=False uses
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from monitor import __version__
from monitor.config.loader import Config
from monitor.errors import UserError
from monitor.exports.log import LogEntry, append, current_user, log_head, read_log
from monitor.exports.report import ReportContext, ReportStats, render_report
from monitor.store.sessions import (
    ECS_FIELDS,
    Session,
    iso_ms,  # one fast ECS timestamp, shared with the store
)
from monitor.store.sqlite import SessionStore

log = structlog.get_logger("monitor.exports.export")

MANIFEST = "manifest.json"
FORMAT = "social-monitor-export"
FORMAT_VERSION = 1
DIR_MODE = 0o700
FILE_MODE = 0o600
RELATIVE_DAYS = re.compile(r"^(\d{1,4})-days?-ago$")


class ExportError(UserError):
    """An export that cannot be made as asked: nothing is written."""


# --- dates ------------------------------------------------------------------------------------


def parse_day(text: str, today: date) -> date:
    """An ISO date, or `today`, `yesterday`, `N-days-ago` (for timers that run unattended)."""
    value = text.strip().lower()
    if value == "today":
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    m = RELATIVE_DAYS.match(value)
    if m:
        return today - timedelta(days=int(m.group(1)))
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ExportError(f"{text!r} is not a date: give YYYY-MM-DD, today, yesterday or N-days-ago") \
            from None


def last_week(today: date) -> tuple[date, date]:
    """Monday to Sunday of the week before the one `today` is in."""
    monday = today - timedelta(days=today.weekday() + 7)
    return monday, monday + timedelta(days=6)


def day_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[first 00:00, the day after last 00:00) in local time: both days are included."""
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    after = last + timedelta(days=1)
    return start, datetime(after.year, after.month, after.day, tzinfo=tz)


# --- pseudonyms -------------------------------------------------------------------------------


class Pseudonymiser:
    """Short readable aliases, stable within one export and unlinkable across exports.

    Values are numbered in the order of their HMAC-SHA256 under a random key
    that lives only in this object, so the numbering carries no information
    (not the order of the inventory, not who was seen first) and a second
    export numbers the same people differently. Values met later than the
    construction (a device seen only by MAC) get the next free numbers.
    """

    def __init__(self, labels: dict[str, Iterable[str]], key: bytes | None = None):
        self._key = key if key is not None else secrets.token_bytes(32)
        self._maps: dict[str, dict[str, str]] = {}
        self._width: dict[str, int] = {}
        for label, values in labels.items():
            ordered = sorted({v for v in values if v}, key=self._digest)
            self._width[label] = max(2, len(str(len(ordered))))
            self._maps[label] = {v: f"{label} {i:0{self._width[label]}d}" for i, v in enumerate(ordered, 1)}

    def _digest(self, value: str) -> bytes:
        return hmac.new(self._key, value.encode(), hashlib.sha256).digest()

    def alias(self, label: str, value: str | None) -> str | None:
        if not value:
            return None
        mapping = self._maps.setdefault(label, {})
        found = mapping.get(value)
        if found is None:
            width = self._width.setdefault(label, 2)
            found = mapping[value] = f"{label} {len(mapping) + 1:0{width}d}"
        return found

    def __len__(self) -> int:
        return sum(len(m) for m in self._maps.values())


def distinct_people(store: SessionStore, **filters: Any) -> tuple[set[str], set[str]]:
    """The devices and owners that the filtered sessions name, before they are written.

    For the SQLite store this is one indexed query; any other store is read twice."""
    where = getattr(store, "_where", None)
    con = getattr(store, "_con", None)
    if where is not None and con is not None:
        clause, params = where(**filters)
        devices: set[str] = set()
        owners: set[str] = set()
        for device, owner in con.execute(f"SELECT DISTINCT device, owner FROM sessions{clause}", params):
            devices.add(device)
            if owner:
                owners.add(owner)
        return devices, owners
    devices, owners = set(), set()
    for s in store.sessions(**filters):
        devices.add(s.device)
        if s.owner:
            owners.add(s.owner)
    return devices, owners


# --- writing files ----------------------------------------------------------------------------


def create_private(path: Path) -> int:
    """A new file, 0600 from its first byte (never chmod after the fact); refuses to overwrite."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


_DAY_TEXT: dict[int, str] = {}


def ecs_record(
    s: Session, device: str, mac: str | None, owner: str | None, show_session_id: bool = True
) -> dict[str, Any]:
    """`Session.to_ecs()` with the device, MAC and owner given (aliases or the real ones).

    The same keys, order and values (a test holds the two together); built here
    because the export writes it 100,000 times a month per school."""
    return {
        "event.start": iso_ms(s.first_seen),
        "event.end": iso_ms(s.last_seen),
        "event.duration": round((s.last_seen - s.first_seen) * 1e9),
        "host.id": device,
        "host.mac": mac,
        "host.type": s.device_kind,
        "user.id": owner,
        "social.session_id": s.id if show_session_id else None,
        "social.platform": s.platform,
        "social.platform_name": s.platform_name,
        "social.category": s.category,
        "social.school": s.school,
        "social.zone": s.zone,
        "social.zone_kind": s.zone_kind,
        "social.pupil_area": s.pupil_area,
        "social.local_date": s.local_date,
        "social.week": s.week,
        "social.period": s.period,
        "social.period_kind": s.period_kind,
        "social.flagged": bool(s.flags) and s.exemption is None,
        "social.flags": [f.to_dict() for f in s.flags],
        "social.exemption": s.exemption.to_dict() if s.exemption else None,
        "social.signals": list(s.signals),
        "social.observations": s.observations,
        "social.hostnames": list(s.hostnames),
    }


def _text(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


class RowEncoder:
    """One session as a JSON line (the `ecs_record`) and a CSV row (`Session.to_csv_row()`).

    Most of a record repeats from session to session: the place and period
    part for a school day, and the flags, exemption and signals (the longest
    text). Those parts are encoded once per distinct value, in bounded caches,
    and spliced between the per-session fields, which are escaped with the
    json module's own string encoder. The output is byte-for-byte
    `json.dumps(ecs_record(...), ensure_ascii=False)`; a test holds it there."""

    CACHE = 8192

    def __init__(self, show_session_ids: bool = True) -> None:
        # the store's session id would link a pseudonymised export back to the store and to
        # other exports: only an identified export carries it
        self.show_session_ids = show_session_ids
        self._encode = json.JSONEncoder(ensure_ascii=False).encode
        self._middles: dict[tuple[Any, ...], str] = {}
        self._hosts: dict[tuple[str, ...], str] = {}

    def _keep(self, cache: dict, key: Any, text: str) -> str:
        if len(cache) >= self.CACHE:  # bounded, whatever the data
            cache.clear()
        cache[key] = text
        return text

    def _middle(self, s: Session, flagged: bool) -> str:
        return self._encode({
            "social.platform": s.platform, "social.platform_name": s.platform_name,
            "social.category": s.category, "social.school": s.school, "social.zone": s.zone,
            "social.zone_kind": s.zone_kind, "social.pupil_area": s.pupil_area,
            "social.local_date": s.local_date, "social.week": s.week, "social.period": s.period,
            "social.period_kind": s.period_kind, "social.flagged": flagged,
            "social.flags": [f.to_dict() for f in s.flags],
            "social.exemption": s.exemption.to_dict() if s.exemption else None,
            "social.signals": list(s.signals),
        })[1:-1]

    def encode(self, s: Session, device: str, mac: str | None, owner: str | None) -> tuple[str, tuple]:
        start, end = iso_ms(s.first_seen), iso_ms(s.last_seen)
        duration = round((s.last_seen - s.first_seen) * 1e9)
        flagged = bool(s.flags) and s.exemption is None
        key = (s.platform, s.platform_name, s.category, s.school, s.zone, s.zone_kind, s.pupil_area,
               s.local_date, s.week, s.period, s.period_kind, s.flags, s.exemption, s.signals)
        middle = self._middles.get(key)
        if middle is None:
            middle = self._keep(self._middles, key, self._middle(s, flagged))
        hosts = self._hosts.get(s.hostnames)
        if hosts is None:
            hosts = self._keep(self._hosts, s.hostnames, self._encode(list(s.hostnames)))
        sid = s.id if self.show_session_ids else None
        sid_json = "null" if sid is None else int(sid)
        line = (
            f'{{"event.start": "{start}", "event.end": "{end}", "event.duration": {duration}, '
            f'"host.id": {_json_str(device)}, "host.mac": {_json_str(mac)}, '
            f'"host.type": {_json_str(s.device_kind)}, "user.id": {_json_str(owner)}, '
            f'"social.session_id": {sid_json}, {middle}, '
            f'"social.observations": {int(s.observations)}, "social.hostnames": {hosts}}}\n'
        )
        row = (
            start, end, duration, device, mac, s.device_kind, owner, sid, s.platform, s.platform_name,
            s.category, s.school, s.zone, s.zone_kind, _text(s.pupil_area), s.local_date, s.week, s.period,
            s.period_kind, _text(flagged), ";".join(f"{f.name} ({f.clause})" for f in s.flags),
            s.exemption.name if s.exemption else "", ";".join(s.signals), s.observations,
            ";".join(s.hostnames),
        )
        return line, row


def _json_str(value: str | None) -> str:
    return "null" if value is None else _encode_string(value)


class ExportWriter:
    """Writes one export directory under a temporary name, then renames it into place."""

    def __init__(self, out: Path):
        self.out = out
        if out.exists():
            raise ExportError(f"{out}: already exists; an export is never written over (choose a new --out)")
        parent = out.parent
        try:
            _make_private_dirs(parent)
            self.tmp = parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
            os.mkdir(self.tmp, DIR_MODE)
        except OSError as exc:
            raise ExportError(f"{parent}: cannot create the export directory: {exc.strerror}") from None
        self.files: dict[str, dict[str, Any]] = {}

    def open_text(self, name: str):
        return os.fdopen(create_private(self.tmp / name), "w", encoding="utf-8", newline="")

    def add_text(self, name: str, text: str) -> None:
        with self.open_text(name) as fh:
            fh.write(text)

    def seal(
        self, manifest: dict[str, Any], before_rename: Callable[[Path, str], Any] | None = None
    ) -> tuple[Path, str]:
        """Hash every file into the manifest, write it, and rename the directory into place.

        `before_rename(out, manifest_sha256)` runs last before the rename (the export log's
        append): if it fails, no export appears without its log entry."""
        for name in sorted(os.listdir(self.tmp)):
            digest, size = sha256_file(self.tmp / name)
            self.files[name] = {"sha256": digest, "bytes": size}
        manifest["files"] = self.files
        text = json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
        self.add_text(MANIFEST, text)
        manifest_hash = hashlib.sha256(text.encode()).hexdigest()
        if before_rename is not None:
            before_rename(self.out, manifest_hash)
        try:
            os.rename(self.tmp, self.out)
        except OSError as exc:
            self.abort()
            raise ExportError(f"{self.out}: cannot move the export into place: {exc.strerror}") from None
        return self.out, manifest_hash

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _make_private_dirs(path: Path) -> None:
    """Create missing parents 0700 (existing ones are left as they are)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        os.mkdir(d, DIR_MODE)


Labeller = Callable[[Session], tuple[str, str | None, str | None]]


def identity(s: Session) -> tuple[str, str | None, str | None]:
    return s.device, s.device_mac, s.owner


def write_sessions(
    writer: ExportWriter,
    sessions: Iterable[Session],
    *,
    labels: Labeller = identity,
    observe: Callable[[Session, str, str | None], None] | None = None,
) -> int:
    """sessions.csv and sessions.jsonl in one pass; `labels` gives (device, MAC, owner) as shown."""
    n = 0
    encode = RowEncoder(show_session_ids=labels is identity).encode
    with writer.open_text("sessions.csv") as csv_fh, writer.open_text("sessions.jsonl") as json_fh:
        rows = csv.writer(csv_fh, lineterminator="\n")
        rows.writerow(ECS_FIELDS)
        write_row = rows.writerow
        write_json = json_fh.write
        for s in sessions:
            device, mac, owner = labels(s)
            line, row = encode(s, device, mac, owner)
            write_row(row)
            write_json(line)
            if observe is not None:
                observe(s, device, owner)
            n += 1
    return n


# --- the export -------------------------------------------------------------------------------


@dataclass(slots=True)
class ExportRequest:
    school: str
    first_day: date
    last_day: date  # inclusive
    out: Path
    flagged_only: bool = False
    identify: bool = False
    reason: str | None = None


@dataclass(slots=True)
class ExportResult:
    out: Path
    sessions: int
    flagged: int
    manifest_sha256: str
    seconds: float
    log_entry: LogEntry | None = None
    manifest: dict[str, Any] = field(default_factory=dict)


def check_identify(identify: bool, reason: str | None) -> str | None:
    """`--identify` needs a reason in words; without it nothing is exported."""
    reason = (reason or "").strip() or None
    if identify and reason is None:
        raise ExportError("--identify reveals asset tags and staff ids and needs --reason TEXT "
                          "(e.g. --reason 'investigation 2026-07 under clause 3.3'); nothing was exported")
    return reason


def expand_out(template: str, **values: str) -> Path:
    """`--out` may name `{school}`, `{from}`, `{to}`, `{now}` so a timer writes a new directory each run."""
    try:
        return Path(template.format(**values))
    except (KeyError, IndexError, ValueError) as exc:
        raise ExportError(f"--out {template!r}: unknown placeholder {exc} (use {{school}}, {{from}}, "
                          "{to} or {now})") from None


def _base_manifest(config: Config, kind: str, user: str, now: float) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "tool": {"name": "social-monitor", "version": __version__},
        "created_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "created_by": user,
        "host": socket.gethostname(),
        "trust": config.trust.name,
        "config_fingerprint": config.fingerprint,
    }


@contextlib.contextmanager
def read_snapshot(store: SessionStore) -> Iterator[None]:
    """One read transaction for the whole export, while the daemon keeps writing (WAL).

    The chain head in the manifest, the aliases and every row then come from
    the same moment, so the head anchors exactly what was exported."""
    con = getattr(store, "_con", None)
    if con is None or con.in_transaction:
        yield
        return
    con.execute("BEGIN")
    try:
        yield
    finally:
        if con.in_transaction:
            con.execute("COMMIT")


def run_export(config: Config, store: SessionStore, request: ExportRequest, **kw: Any) -> ExportResult:
    """Write one export directory and append it to the export log (`log_path`)."""
    with read_snapshot(store):
        return _export(config, store, request, **kw)


def _export(
    config: Config,
    store: SessionStore,
    request: ExportRequest,
    *,
    log_path: Path | None = None,
    now: float | None = None,
    user: str | None = None,
    key: bytes | None = None,
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
    filters: dict[str, Any] = {"school": school.id, "since": since, "until": until}
    if request.flagged_only:
        filters["flagged"] = True

    head = store.chain_head()  # the first read: the snapshot the whole export comes from
    if request.identify:
        pseudo = None
    else:
        devices, owners = distinct_people(store, **filters)
        pseudo = Pseudonymiser({"Device": devices, "Staff": owners}, key=key)

    labels: Labeller = identity
    if pseudo is not None:
        device_alias: dict[str, str] = {}
        owner_alias: dict[str | None, str | None] = {None: None}

        def labels(s: Session) -> tuple[str, str | None, str | None]:
            device = device_alias.get(s.device)
            if device is None:
                device = device_alias[s.device] = pseudo.alias("Device", s.device) or ""
            if s.owner not in owner_alias:
                owner_alias[s.owner] = pseudo.alias("Staff", s.owner)
            return device, None, owner_alias[s.owner]

    stats = ReportStats(tz)
    writer = ExportWriter(request.out)
    try:
        n = write_sessions(writer, store.sessions(**filters), labels=labels, observe=stats.add)
        manifest = _base_manifest(config, "export", user, now)
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
            "sessions": n,
            "flagged": stats.flagged,
            "chain_head": {"record_id": head.record_id, "hash": head.hash},
            "export_log_head": log_head(log_path) if log_path is not None else None,
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
        )
        writer.add_text("report.html", render_report(context, stats))
        entry = None

        def log_it(out: Path, manifest_hash: str) -> None:
            nonlocal entry
            if log_path is not None:
                entry = append(log_path, LogEntry(
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
                ))

        out, manifest_hash = writer.seal(manifest, before_rename=log_it)
    except BaseException:
        writer.abort()
        raise
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


# --- subject access requests ------------------------------------------------------------------


def subject_sessions(config: Config, store: SessionStore, staff_id: str) -> Iterator[Session]:
    """Every stored session about one person, oldest first, each once.

    Sessions that name the person as owner, and sessions of the devices the
    inventory says they own, except those that name someone else as owner (a
    proxy login by a colleague is the colleague's data, not theirs)."""
    found: dict[int, Session] = {}
    for s in store.sessions(owner=staff_id):
        found[s.id or 0] = s
    for device in sorted({d.asset_tag for d in config.devices if d.owner == staff_id}):
        for s in store.sessions(device=device):
            if s.owner in (None, staff_id):
                found[s.id or 0] = s
    yield from sorted(found.values(), key=lambda s: (s.first_seen, s.id or 0))


def run_sar(config: Config, store: SessionStore, staff_id: str, out: Path, **kw: Any) -> ExportResult:
    """A subject access request: everything stored about one person, with a manifest, logged."""
    with read_snapshot(store):
        return _sar(config, store, staff_id, out, **kw)


def _sar(
    config: Config,
    store: SessionStore,
    staff_id: str,
    out: Path,
    *,
    log_path: Path | None = None,
    reference: str | None = None,
    now: float | None = None,
    user: str | None = None,
) -> ExportResult:
    started = time.perf_counter()
    staff_id = staff_id.strip()
    if not staff_id:
        raise ExportError("--staff: give the person's staff id (as in the inventory)")
    now = time.time() if now is None else now
    user = user or current_user()
    head = store.chain_head()
    writer = ExportWriter(out)
    try:
        flagged = 0

        def count(s: Session, _device: str, _owner: str | None) -> None:
            nonlocal flagged
            flagged += s.flagged

        n = write_sessions(writer, subject_sessions(config, store, staff_id), observe=count)
        devices = sorted(d.asset_tag for d in config.devices if d.owner == staff_id)
        writer.add_text("README.txt", _sar_readme(config, staff_id, devices, n))
        manifest = _base_manifest(config, "sar", user, now)
        manifest.update({
            "subject": staff_id,
            "devices": devices,
            "reference": reference,
            "identified": True,
            "sessions": n,
            "flagged": flagged,
            "retention_days": config.model.retention_days,
            "chain_head": {"record_id": head.record_id, "hash": head.hash},
            "export_log_head": log_head(log_path) if log_path is not None else None,
        })
        entry = None

        def log_it(out: Path, manifest_hash: str) -> None:
            nonlocal entry
            if log_path is not None:
                entry = append(log_path, LogEntry(
                    kind="sar", at=manifest["created_at"], user=user, out=str(out.resolve()),
                    manifest_sha256=manifest_hash, sessions=n, identified=True,
                    reason=reference or "subject access request", subject=staff_id,
                ))

        out, manifest_hash = writer.seal(manifest, before_rename=log_it)
    except BaseException:
        writer.abort()
        raise
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


# --- verification -----------------------------------------------------------------------------


def verify_export(directory: str | Path, log_path: str | Path | None = None) -> tuple[bool, list[str]]:
    """Check every file of an export against its manifest; name each file that differs.

    Returns (ok, lines): one line per file, and a last line with the verdict.
    A file missing, changed or added is a failure. With `log_path`, the
    manifest itself must be the one the export log recorded, so rewriting a
    file *and* its manifest entry is caught too."""
    d = Path(directory)
    lines: list[str] = []
    try:
        manifest = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(files, dict):
            raise ValueError("not a social-monitor export manifest")
    except FileNotFoundError:
        return False, [f"{d}: no {MANIFEST}: not an export directory"]
    except (ValueError, KeyError, TypeError) as exc:
        return False, [f"{d / MANIFEST}: unreadable manifest: {exc}"]
    ok = True
    for name in sorted(files):
        expected = files[name]
        path = d / name
        if not path.is_file() or Path(name).name != name:
            lines.append(f"{name}: MISSING")
            ok = False
            continue
        digest, size = sha256_file(path)
        if digest != expected.get("sha256"):
            where = _first_difference(size, expected.get("bytes"))
            lines.append(f"{name}: CHANGED ({where}; sha256 {digest[:16]}…, manifest says "
                         f"{str(expected.get('sha256'))[:16]}…)")
            ok = False
        else:
            lines.append(f"{name}: ok ({size} bytes, sha256 {digest[:16]}…)")
    for name in sorted(os.listdir(d)):
        if name != MANIFEST and name not in files:
            lines.append(f"{name}: NOT IN MANIFEST (added after the export)")
            ok = False
    if log_path is not None:
        ok = _check_log(d, Path(log_path), lines) and ok
    head = manifest.get("chain_head") or {}
    verdict = "export ok" if ok else "export FAILED verification"
    lines.append(f"{d}: {verdict}: {len(files)} files; store chain head at export: record "
                 f"{head.get('record_id')} {str(head.get('hash'))[:16]}…")
    return ok, lines


def _check_log(d: Path, log_path: Path, lines: list[str]) -> bool:
    digest, _ = sha256_file(d / MANIFEST)
    check = read_log(log_path)
    match = next((x for x in check.entries if x.manifest_sha256 == digest), None)
    ok = check.ok
    if match is not None:
        lines.append(f"manifest.json: matches export log entry {match.seq} ({match.at}, by {match.user})")
    else:
        ok = False
        lines.append(f"manifest.json: NOT IN THE EXPORT LOG {log_path} (the manifest was changed after the "
                     "export, or the export was not made from this store)")
    if not check.ok:
        lines.append(f"export log: {check.problem}")
    return ok


def _first_difference(size: int, expected: Any) -> str:
    if isinstance(expected, int) and expected != size:
        return f"{size} bytes, manifest says {expected}"
    return "same size, content differs"


__all__ = [
    "ExportError",
    "ExportRequest",
    "ExportResult",
    "Pseudonymiser",
    "check_identify",
    "day_bounds",
    "expand_out",
    "last_week",
    "parse_day",
    "run_export",
    "run_sar",
    "subject_sessions",
    "verify_export",
]
