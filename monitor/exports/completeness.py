"""How complete an export's period was: the coverage ledger, day by day, beside the figures it qualifies.

"None was flagged" is evidence only if the monitor was looking. From the
ledger (`monitor.store.coverage`) each day of the period gets one status:

- ``complete``: every second observed, each capture interface and the proxy up, no packet or
  observation lost, storage open;
- ``incomplete``: the daemon was not running for part of it (a gap in the ledger), a sensor
  interface or the proxy was down, or the kernel or the writer's queue dropped something;
- ``not recorded``: the DPIA gate kept accesses out of the store (trust.dpia_reference or
  trust.purpose not set);
- ``purged``: before the store's last retention cutoff;
- ``not over``: the day has not ended yet;
- ``outside history``: before the ledger's oldest interval (or the store keeps none).

The report's summary says "None was flagged" only when every day is complete
(`none_flagged_sentence`); the page shows the figures (`coverage_html`) and the
manifest carries them (`Completeness.manifest`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from monitor.store.coverage import Interval, LedgerView
from monitor.store.sessions import Session

TOLERANCE = 2.0  # seconds of a day that may go unaccounted (a daemon's first sample) and still be whole
STATUS_WORDS = {
    "complete": "fully observed", "incomplete": "incomplete", "not-recorded": "not recorded",
    "purged": "purged", "not-over": "not yet over", "outside-history": "outside the store's history",
}


@dataclass(slots=True)
class Day:
    day: date
    status: str  # a key of STATUS_WORDS
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "status": self.status, "reasons": self.reasons}


@dataclass(slots=True)
class Completeness:
    """The period's coverage: shares are of the part of the period that has passed (`elapsed_seconds`)."""

    elapsed_seconds: float
    observed_seconds: float
    interfaces: dict[str, float]  # capture label -> share of the elapsed period it was up
    sensor_share: float | None  # None: no sensor ran in the period
    proxy_share: float | None  # None: no proxy configured in the period
    packets: int
    kernel_drops: int
    parse_errors: int
    observations: int
    refused: int
    queue_dropped: int
    obscured: dict[str, int]
    dns_only: int
    days: list[Day]
    outages: list[dict[str, Any]] = field(default_factory=list)  # when, what was down (outage_windows)

    @property
    def drop_rate(self) -> float:
        seen = self.packets + self.kernel_drops
        return self.kernel_drops / seen if seen else 0.0

    @property
    def fully_observed(self) -> bool:
        return bool(self.days) and all(d.status == "complete" for d in self.days)

    def obscured_share(self, kind: str) -> float:
        return self.obscured.get(kind, 0) / self.observations if self.observations else 0.0

    def manifest(self) -> dict[str, Any]:
        def share(x: float | None) -> float | None:
            return None if x is None else round(x, 6)

        return {
            "fully_observed": self.fully_observed,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "observed_share": share(self.observed_seconds / self.elapsed_seconds
                                    if self.elapsed_seconds else 0),
            "interfaces_up_share": {k: share(v) for k, v in sorted(self.interfaces.items())},
            "sensor_up_share": share(self.sensor_share), "proxy_up_share": share(self.proxy_share),
            "packets": self.packets, "kernel_drops": self.kernel_drops, "drop_rate": share(self.drop_rate),
            "parse_errors": self.parse_errors, "observations": self.observations,
            "refused_observations": self.refused, "queue_dropped": self.queue_dropped,
            "obscured": {k: {"flows": n, "share": share(self.obscured_share(k))}
                         for k, n in sorted(self.obscured.items())},
            "dns_only_sessions": self.dns_only,
            "days": [d.to_dict() for d in self.days],
            "outages": self.outages,
        }


class DnsOnlyTally:
    """Counts exported sessions seen only by a DNS answer (weaker evidence), as the export streams them."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, session: Session, _device: str = "", _owner: str | None = None) -> None:
        self.count += session.signals == ("dns",)


def _overlap(interval: Interval, start: float, end: float) -> float:
    return max(0.0, min(interval.end, end) - max(interval.start, start))


def _day_status(day: date, start: float, end: float, now: float, view: LedgerView | None) -> Day:
    if start >= now:
        return Day(day, "not-over", ["has not begun"])
    if view is None:
        return Day(day, "outside-history", ["this store keeps no coverage ledger"])
    if view.purged_before is not None and start < view.purged_before:
        return Day(day, "purged", ["before the store's retention cutoff"])
    horizon = min(end, now)
    if view.history_start is None or horizon <= view.history_start:
        return Day(day, "outside-history", ["before the coverage ledger's first interval"])
    parts = [(i, _overlap(i, start, horizon)) for i in view.intervals]
    parts = [(i, s) for i, s in parts if s > 0]
    if any(i.storage_refused for i, _ in parts):
        return Day(day, "not-recorded", ["storage refused by the DPIA gate (trust.dpia_reference or "
                                         "trust.purpose not set)"])
    reasons = _losses(parts, horizon - start)
    if end > now:
        return Day(day, "not-over", reasons)
    return Day(day, "incomplete" if reasons else "complete", reasons)


def _losses(parts: list[tuple[Interval, float]], span: float) -> list[str]:
    """Why a stretch of `span` seconds, of which `parts` were covered by intervals, was not whole."""
    reasons = []
    covered = sum(s for _, s in parts)
    if covered < span - TOLERANCE:
        reasons.append(f"monitor not running for {_duration(span - covered)}")
    for label in sorted({k for i, _ in parts for k in i.interfaces}):
        up = sum(i.interfaces.get(label, {}).get("up_seconds", 0.0) * s / i.seconds
                 for i, s in parts if i.seconds)
        if up < covered - TOLERANCE:
            reasons.append(f"capture on {label} down for {_duration(covered - up)}")
    proxy_time = sum(s for i, s in parts if i.proxy)
    proxy_up = sum(i.proxy_up_seconds * s / i.seconds for i, s in parts if i.proxy and i.seconds)
    if proxy_up < proxy_time - TOLERANCE:
        reasons.append(f"proxy down for {_duration(proxy_time - proxy_up)}")
    drops = sum(i.kernel_drops for i, _ in parts)
    queue = sum(i.queue_dropped for i, _ in parts)
    if drops:
        reasons.append(f"{drops:,} packets dropped by the kernel")
    if queue:
        reasons.append(f"{queue:,} observations dropped (writer queue full)")
    return reasons


def outage_windows(view: LedgerView | None, since: float, until: float, tz: ZoneInfo) -> list[dict[str, Any]]:
    """When something was not observing, at the ledger's resolution (one interval): gaps in the ledger
    (the monitor not running), capture interfaces and the proxy down. Consecutive intervals merge."""
    if view is None or view.history_start is None:
        return []
    found: list[dict[str, Any]] = []

    def note(what: str, a: float, b: float, down: float) -> None:
        last = next((w for w in reversed(found) if w["what"] == what), None)
        if last is not None and abs(last["_to"] - a) <= TOLERANCE:
            last["_to"], last["down_seconds"] = b, last["down_seconds"] + down
        else:
            found.append({"what": what, "_from": a, "_to": b, "down_seconds": down})

    cursor = max(since, view.history_start, view.purged_before or since)
    for i in sorted(view.intervals, key=lambda i: i.start):
        a, b = max(i.start, since), min(i.end, until)
        if a - cursor > TOLERANCE:
            note("monitor not running", cursor, a, a - cursor)
        cursor = max(cursor, b)
        slack = min(TOLERANCE, i.seconds / 2)  # up time is sampled once a second
        for label, entry in sorted(i.interfaces.items()):
            if entry.get("up_seconds", 0.0) < i.seconds - slack:
                note(f"capture on {label}", a, b, i.seconds - entry.get("up_seconds", 0.0))
        if i.proxy and i.proxy_up_seconds < i.seconds - slack:
            note("proxy", a, b, i.seconds - i.proxy_up_seconds)
    if until - cursor > TOLERANCE:
        note("monitor not running", cursor, until, until - cursor)
    return [{"what": w["what"], "from": datetime.fromtimestamp(w["_from"], tz).isoformat(timespec="seconds"),
             "to": datetime.fromtimestamp(w["_to"], tz).isoformat(timespec="seconds"),
             "down_seconds": round(w["down_seconds"], 1)} for w in found]


def _duration(length: float) -> str:
    seconds = round(length)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def assess(view: LedgerView | None, first: date, last: date, tz: ZoneInfo, now: float,
           dns_only: int = 0) -> Completeness:
    """The period [first, last] (local days, both included) as the ledger saw it, at `now`."""
    days = []
    day = first
    while day <= last:
        start = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
        after = day + timedelta(days=1)
        end = datetime(after.year, after.month, after.day, tzinfo=tz).timestamp()
        days.append(_day_status(day, start, end, now, view))
        day = after
    since = datetime(first.year, first.month, first.day, tzinfo=tz).timestamp()
    after = last + timedelta(days=1)
    until = min(datetime(after.year, after.month, after.day, tzinfo=tz).timestamp(), now)
    elapsed = max(0.0, until - since)
    parts = [(i, _overlap(i, since, until)) for i in (view.intervals if view else [])]
    parts = [(i, s) for i, s in parts if s > 0]

    def share(seconds: float) -> float:
        return min(1.0, seconds / elapsed) if elapsed else 0.0

    def scaled(value: float, i: Interval, s: float) -> float:
        return value * s / i.seconds if i.seconds else 0.0

    labels = sorted({k for i, _ in parts for k in i.interfaces})
    sensed = [(i, s) for i, s in parts if i.sensor != "off"]
    proxied = [(i, s) for i, s in parts if i.proxy]
    obscured: dict[str, int] = {}
    for i, _ in parts:
        for kind, n in i.obscured.items():
            obscured[kind] = obscured.get(kind, 0) + n
    return Completeness(
        elapsed_seconds=elapsed,
        observed_seconds=sum(s for _, s in parts),
        interfaces={k: share(sum(scaled(i.interfaces.get(k, {}).get("up_seconds", 0.0), i, s)
                                 for i, s in parts)) for k in labels},
        sensor_share=share(sum(scaled(i.sensor_up_seconds, i, s) for i, s in sensed)) if sensed else None,
        proxy_share=share(sum(scaled(i.proxy_up_seconds, i, s) for i, s in proxied)) if proxied else None,
        packets=sum(i.packets for i, _ in parts), kernel_drops=sum(i.kernel_drops for i, _ in parts),
        parse_errors=sum(i.parse_errors for i, _ in parts),
        observations=sum(i.observations for i, _ in parts),
        refused=sum(i.refused for i, _ in parts), queue_dropped=sum(i.queue_dropped for i, _ in parts),
        obscured=obscured, dns_only=dns_only, days=days, outages=outage_windows(view, since, until, tz),
    )


def none_flagged_sentence(lead: str, c: Completeness | None) -> str:
    """The summary's sentence when nothing was flagged: "None was flagged" only of a fully observed period."""
    if c is None or c.fully_observed:
        return f"{lead} <strong>None was flagged</strong> under clause 4.3 of the Social Media Policy."
    statuses = {d.status for d in c.days}
    if statuses == {"not-recorded"}:
        return (f"{lead} <strong>Not recorded</strong>: storage was refused for this period (no DPIA "
                "reference or purpose in the config), so whether anything would have been flagged is "
                "unknown.")
    counts = ", ".join(f"{sum(d.status == s for d in c.days)} {STATUS_WORDS[s]}" for s in STATUS_WORDS
                       if s in statuses)
    return (f"{lead} Nothing was flagged in what was recorded, but the period was <strong>not fully "
            f"observed</strong> ({counts} of {len(c.days)} days; see Coverage), so this is not evidence "
            "that nothing happened.")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%" if x < 0.9995 or x == 1 else f"{x * 100:.2f}%"


def coverage_html(c: Completeness | None) -> str:
    """The inside of the report's coverage section (first page, after the summary): escaped HTML."""
    if c is None:
        return ""
    rows = [("Period observed (monitor running)", _pct(c.observed_seconds / c.elapsed_seconds
                                                      if c.elapsed_seconds else None))]
    rows += [(f"Capture on {label} up", _pct(v)) for label, v in sorted(c.interfaces.items())]
    if c.sensor_share is not None and not c.interfaces:
        rows.append(("Packet sensor running", _pct(c.sensor_share)))
    rows.append(("Proxy up", _pct(c.proxy_share) if c.proxy_share is not None else "not configured"))
    rows += [
        ("Packets dropped by the kernel", f"{c.kernel_drops:,} of {c.packets + c.kernel_drops:,} "
                                          f"({_pct(c.drop_rate)})"),
        ("Observations refused by the DPIA gate (not stored)", f"{c.refused:,}"),
        ("Observations dropped (writer queue full)", f"{c.queue_dropped:,}"),
        ("Malformed packets", f"{c.parse_errors:,}"),
    ]
    rows += [(f"Destination hidden ({kind})",
              f"{n:,} flows ({_pct(c.obscured_share(kind))} of observations)")
             for kind, n in sorted(c.obscured.items())]
    rows.append(("Sessions seen only by a DNS answer (weaker evidence)", f"{c.dns_only:,}"))
    table = "".join(f"<tr><th scope='row'>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    days = "".join(
        f"<li class='day-{d.status}'><span class='day'>{d.day.isoformat()}</span>: "
        f"<strong>{escape(STATUS_WORDS[d.status])}</strong>"
        f"{(' (' + escape('; '.join(d.reasons)) + ')') if d.reasons and d.status != 'complete' else ''}</li>"
        for d in c.days)
    outages = "".join(f"<li>{escape(w['what'])}: {escape(w['from'])} to {escape(w['to'])} "
                      f"({escape(_duration(w['down_seconds']))} not observed)</li>" for w in c.outages)
    verdict = ("Every day of the period was fully observed." if c.fully_observed else
               "<strong>Not every day was fully observed</strong>: figures below cover only what was seen.")
    return (f"<p>{verdict}</p><table class='coverage'>{table}</table><ul class='days'>{days}</ul>"
            + (f"<h3>Not observed</h3><ul class='outages'>{outages}</ul>" if outages else ""))


__all__ = ["STATUS_WORDS", "Completeness", "Day", "DnsOnlyTally", "assess", "coverage_html",
           "none_flagged_sentence", "outage_windows"]
