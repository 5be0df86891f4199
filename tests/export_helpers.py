"""Realistic stores for the export tests: observations of the example trust's devices, tagged, written.

Four weeks of Ash Grove Academy (2026-11-02 to 2026-11-29, in term, two-week
timetable), built through the real `Tagger` so zones, periods, flags and
exemptions are the ones the daemon would record.
"""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

from monitor.config.loader import Config
from monitor.observation import Observation
from monitor.store.base import SessionStore
from monitor.store.sqlite import open_store
from monitor.tagging.tagger import Tagger

from .conftest import london

FIRST = date(2026, 11, 2)  # a Monday
LAST = date(2026, 11, 29)  # a Sunday: four weeks
EVIL_HOST = '"><img src=x onerror=alert(1)><script>alert(2)</script>.youtube.com'

# (client ip, mac or None, hostname, hour, minute, weekdays): one access a day on those weekdays
PATTERN = [
    # ASH-LT-0002 (S2002) in a classroom: YouTube in P3, both 4.3 flags (or pupil area in a free period)
    ("10.20.10.41", None, "www.youtube.com", 11, 30, (0, 1, 2, 3, 4)),
    # ASH-LT-0003 (S2003) over IPv6 in a classroom at lunch: pupil-area flag
    ("2001:db8:20:10::41", None, "www.instagram.com", 12, 30, (0, 2, 4)),
    # the shared staff-room PC at lunch: allowed, no owner
    ("10.20.30.10", None, "reddit.com", 12, 20, (0, 1, 2, 3, 4)),
    # marketing in the offices during P2: flagged but exempt (4.1)
    ("10.20.40.12", None, "www.linkedin.com", 10, 0, (1, 3)),
    # ASH-LT-0005 (S2005) in the library during P4, known by MAC: both flags
    ("10.20.14.50", "3c:52:82:20:00:05", "www.facebook.com", 13, 20, (1, 2)),
    # guest Wi-Fi: never stored
    ("10.20.99.5", "3c:52:82:20:00:05", "www.tiktok.com", 11, 40, (0,)),
    # an attacker-chosen hostname, in P1 in a classroom
    ("10.20.10.41", None, EVIL_HOST, 9, 10, (4,)),
]


def observations(first: date = FIRST, last: date = LAST) -> list[Observation]:
    out = []
    day = first
    while day <= last:
        for client, mac, host, hour, minute, weekdays in PATTERN:
            if day.weekday() in weekdays:
                for k in range(3):  # three sightings a minute apart: one session
                    ts = london(day.year, day.month, day.day, hour, minute + k)
                    out.append(Observation(ts, client, 50000 + k, "198.51.100.7", 443, "tcp", "tls", host,
                                           client_mac=mac))
        day += timedelta(days=1)
    return out


def populate(config: Config, path: Path) -> SessionStore:
    """A store at `path` holding the four weeks; returned open."""
    tagger = Tagger(config)
    store = open_store(path)
    # as the daemon's pipeline does: only recordable events reach the store (guest Wi-Fi never does)
    store.write(e for e in (tagger.tag(o) for o in observations()) if e.recordable)
    return store


FILES = ("sessions.csv", "sessions.jsonl", "report.html", "manifest.json")


def rows(out: Path) -> list[dict[str, str]]:
    """An export's sessions.csv, one dict per row."""
    with (out / "sessions.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def jsonl(out: Path) -> list[dict]:
    """An export's sessions.jsonl, parsed."""
    return [json.loads(line) for line in (out / "sessions.jsonl").read_text().splitlines()]


def identity_trust(tmp: Path, owner_of: dict[str, str] | None = None) -> Config:
    """The example trust in `tmp`, its inventory's owners changed as `owner_of` says (asset -> staff id)."""
    import shutil

    import yaml

    from monitor.config.loader import load_config
    from tests.conftest import EXAMPLE

    for name in ("staff-timetable.csv", "logins.csv"):
        shutil.copy(EXAMPLE.parent / name, tmp / name)
    lines = (EXAMPLE.parent / "devices.csv").read_text().splitlines()
    for i, line in enumerate(lines):
        cells = line.split(",")
        if cells[1] in (owner_of or {}):
            cells[4] = (owner_of or {})[cells[1]]
            lines[i] = ",".join(cells)
    (tmp / "devices.csv").write_text("\n".join(lines) + "\n")
    data = yaml.safe_load(EXAMPLE.read_text())
    data["store"]["path"] = str(tmp / "store.db")
    (tmp / "trust.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(tmp / "trust.yaml")


# (day of November 2026, hour, minute, client ip, proxy sign-in or None, hostname)
Sighting = tuple[int, int, int, str, str | None, str]


def record(config: Config, store: SessionStore, sightings: list[Sighting], *, logins: bool = True) -> None:
    """Tag and store sightings through the real Tagger; `logins=False` as before the login map existed."""
    tagger = Tagger(config)
    if not logins:
        tagger.logins = {}
    obs = [Observation(london(2026, 11, day, hour, minute), ip, 50000, "198.51.100.7", 443, "tcp", "tls",
                       host, source="proxy" if user else "sensor", user=user)
           for day, hour, minute, ip, user, host in sightings]
    store.write(e for e in (tagger.tag(o) for o in obs) if e.recordable)
