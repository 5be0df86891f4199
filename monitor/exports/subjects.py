"""Who a person is in the records, and whom their records were given to (UK GDPR art. 15(1)(c)).

A person's identity reaches the store in several forms: the staff id the
inventory assigns a device to, a proxy sign-in the login map turned into that
staff id, and a sign-in it did not know, stored as typed (`TRUST\\bjones`,
`bjones@trust.org`, `BJONES`). `identity_forms` gathers them all, so a subject
access request finds the person under every one and says which it searched.

Every entry of the export log records whom its output included, as keyed
hashes (`inclusion_tokens`): one per person (their login's normal form) and
one per device for sessions that named no person. The key lives beside the
log (`<log>.key`, 0600, never exported), so the log names nobody to whoever
reads it without the key, and outlives the sessions it describes without
keeping who they were about in clear; the SAR computes the same tokens for its
subject and lists the entries that hold one (`disclosures`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config.loader import Config
from monitor.exports.log import ExportLogError, LogEntry, read_log
from monitor.store.base import SessionReader
from monitor.store.files import make_private_dirs
from monitor.store.sessions import Session
from monitor.tagging.devices import staff_id_for_login

KEY_BYTES = 32
# kinds of log entry that disclose data to someone other than the person it is about
DISCLOSING_KINDS = ("export", "listing", "investigation")


def normal_form(name: str) -> str:
    """A sign-in or staff id as the directory means it: no case, no `DOMAIN\\`, no `@domain`."""
    key = name.strip().lower()
    return key.rsplit("\\", 1)[-1].split("@", 1)[0]


@dataclass(slots=True)
class IdentityForms:
    """Every form under which one person's data was searched for."""

    staff_id: str
    logins: list[str] = field(default_factory=list)  # login-map entries naming this staff id
    owners: list[str] = field(default_factory=list)  # owner values as stored on sessions
    devices: list[str] = field(default_factory=list)  # devices the inventory assigns to the person
    names: set[str] = field(default_factory=set)  # normal forms: what an owner is matched by

    def is_theirs(self, owner: str | None) -> bool:
        return owner is not None and normal_form(owner) in self.names

    def to_dict(self) -> dict[str, Any]:
        return {"staff_id": self.staff_id, "logins": self.logins, "stored_owners": self.owners,
                "devices": self.devices, "normal_forms": sorted(self.names)}


def identity_forms(config: Config, store: SessionReader, asked: str) -> IdentityForms:
    """The forms of the person `asked` names (a staff id or any of their sign-ins)."""
    staff_id = staff_id_for_login(config.logins, asked.strip())
    logins = sorted(login for login, sid in config.logins.items() if sid == staff_id)
    names = {normal_form(staff_id), *(normal_form(login) for login in logins)}
    names.discard("")
    _, stored = store.devices_and_owners()
    owners = sorted(o for o in stored if normal_form(o) in names)
    devices = sorted({d.asset_tag for d in config.devices if d.owner == staff_id})
    return IdentityForms(staff_id, logins, owners, devices, names)


def subject_sessions(store: SessionReader, forms: IdentityForms) -> list[Session]:
    """Every session about the person, oldest first, each once: the sessions naming them in any form,
    and the sessions of their devices that name nobody (a colleague's sign-in is the colleague's)."""
    from monitor.store.filter import SessionFilter

    found: dict[int, Session] = {}
    for owner in forms.owners:
        for s in store.sessions(SessionFilter(owner=owner)):
            found[s.id or 0] = s
    for device in forms.devices:
        for s in store.sessions(SessionFilter(device=device)):
            if s.owner is None or forms.is_theirs(s.owner):
                found[s.id or 0] = s
    return sorted(found.values(), key=lambda s: (s.first_seen, s.id or 0))


# --- the inclusion tokens of the export log ---------------------------------------------------------


def key_path_for(log_path: str | Path) -> Path:
    path = Path(log_path)
    return path.with_name(path.name + ".key")


def log_key(log_path: str | Path) -> bytes:
    """The export log's inclusion key, made once (0600, published atomically: two exports racing agree)."""
    path = key_path_for(log_path)
    if not path.exists():
        make_private_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        tmp.unlink()
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ExportLogError(f"{path}: cannot read the export log's key: {exc.strerror or exc}") from None
    if len(key) != KEY_BYTES:
        raise ExportLogError(f"{path}: not an export log key ({len(key)} bytes, expected {KEY_BYTES})")
    return key


def _token(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


class Included:
    """Collects whom an output includes, session by session: a person, else the device."""

    def __init__(self) -> None:
        self.people: set[str] = set()
        self.devices: set[str] = set()

    def add(self, s: Session, *_: Any) -> None:
        self.add_access(s.owner, s.device)

    def add_access(self, owner: str | None, device: str) -> None:
        """One access (a session, or a tagged row that was never stored): its owner, else its device."""
        if owner:
            self.people.add(normal_form(owner))
        elif device:
            self.devices.add(device)

    def tokens(self, log_path: str | Path) -> list[str]:
        key = log_key(log_path)
        return sorted({_token(key, "person", p) for p in self.people}
                      | {_token(key, "device", d) for d in self.devices})


def subject_tokens(log_path: str | Path, forms: IdentityForms) -> set[str]:
    key = log_key(log_path)
    return {_token(key, "person", n) for n in forms.names} | {_token(key, "device", d) for d in forms.devices}


@dataclass(slots=True)
class Disclosures:
    """The log entries whose output included the person; entries that did not record whom they held."""

    entries: list[LogEntry]
    unrecorded: int

    def rows(self) -> list[dict[str, Any]]:
        return [{"seq": e.seq, "at": e.at, "kind": e.kind, "by": e.user, "identified": e.identified,
                 "reason": e.reason, "school": e.school, "from": e.period_from, "to": e.period_to}
                for e in self.entries]


def disclosures(log_path: str | Path, forms: IdentityForms, entries: Iterable[LogEntry] | None = None
                ) -> Disclosures:
    """Every export, listing or investigation in the log that included the person (their SARs are not
    disclosures to anyone else).

    A live stream's first entry is read through the entry that completes it (`monitor.exports.live_tagged`);
    one never completed (the stream was killed) did not record whom it held."""
    entries = read_log(log_path).entries if entries is None else list(entries)
    completed = {e.extra["completes"] for e in entries if isinstance(e.extra.get("completes"), int)}
    mine = subject_tokens(log_path, forms)
    found: list[LogEntry] = []
    unrecorded = 0
    for e in entries:
        if e.kind not in DISCLOSING_KINDS or e.seq in completed:
            continue
        included = e.extra.get("included")
        if included is None:
            unrecorded += 1
        elif mine.intersection(included):
            found.append(e)
    return Disclosures(found, unrecorded)


__all__ = [
    "DISCLOSING_KINDS",
    "Disclosures",
    "IdentityForms",
    "Included",
    "disclosures",
    "identity_forms",
    "key_path_for",
    "log_key",
    "normal_form",
    "subject_sessions",
    "subject_tokens",
]
