"""What the store writer committed moments ago, so a long session is re-versioned at most once per interval.

Every version of a session is a full, chained record: a 40-minute video stream merged once per batch
would leave thousands. The writer keeps, per session key, what the store last received (when, up to
when, its signals, flags, roles, exemption); a segment that only extends that (more of the same, within
the idle gap, nothing new) may wait until `extend_interval` has passed since that commit. Anything
material (a new access, a new flag or signal, the platform itself after its embeds only, an exemption)
is written with the next batch. Entries older than the interval are forgotten, so the table is bounded
by the sessions active in the last interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.observation import Flag
from monitor.store.sessions import Session


@dataclass(slots=True)
class Written:
    """What the store last received for a session key: a segment adding nothing to it may wait."""

    at: float  # monotonic time of the commit
    last_seen: float
    signals: set[str]
    flags: set[Flag]
    roles: set[str]
    exempt: bool


def written_key(seg: Session) -> tuple[str, ...]:
    """The session a segment belongs to (as the store merges it), as a tuple."""
    return (seg.device, seg.platform, seg.school, seg.zone, seg.period or "", seg.local_date, seg.owner or "")


class RecentWrites:
    """Per session key, what was committed within the last `extend_interval` seconds (writer thread only)."""

    def __init__(self, extend_interval: float, idle_gap: float):
        self.extend_interval = extend_interval
        self.idle_gap = idle_gap
        self._written: dict[tuple[str, ...], Written] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._written)

    def may_wait(self, seg: Session, now: float) -> bool:
        """Whether a segment only extends what was committed moments ago (more of the same)."""
        written = self._written.get(written_key(seg))
        if written is None:
            return False  # a new access is written promptly
        return (
            now - written.at < self.extend_interval
            and seg.first_seen <= written.last_seen + self.idle_gap
            and written.signals.issuperset(seg.signals)
            and written.flags.issuperset(seg.flags)
            # an embed-only session that reaches the platform itself becomes flaggable evidence
            and ("platform" in written.roles or "platform" not in seg.roles)
            and (written.exempt or seg.exemption is None)
        )

    def committed(self, segments: list[Session], now: float) -> None:
        """The store took these segments at `now`: remember what each session now holds."""
        for seg in segments:
            key = written_key(seg)
            before = self._written.get(key)
            if before is None or seg.first_seen > before.last_seen + self.idle_gap:
                self._written[key] = Written(now, seg.last_seen, set(seg.signals), set(seg.flags),
                                             set(seg.roles), seg.exemption is not None)
            else:
                before.at, before.last_seen = now, max(before.last_seen, seg.last_seen)
                before.signals.update(seg.signals)
                before.flags.update(seg.flags)
                before.roles.update(seg.roles)
                before.exempt = before.exempt or seg.exemption is not None

    def due_at(self, held: list[Session], now: float) -> float:
        """When the earliest of the held segments must be written (infinity when none is held)."""
        due = float("inf")
        for seg in held:
            written = self._written.get(written_key(seg))
            due = min(due, written.at + self.extend_interval if written else now)
        return due

    def forget_old(self, now: float) -> None:
        """Forget what can no longer be held (at most once per interval): bounded by active sessions."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + max(self.extend_interval, 1.0)
        for key in [k for k, w in self._written.items() if now - w.at >= self.extend_interval]:
            del self._written[key]
