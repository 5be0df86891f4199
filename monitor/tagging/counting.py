"""Counting an access once: one per device, platform and idle-gap session, the store's unit.

A visit leaves several observations: a proxied HTTPS page is seen three times
(the sensor reads the CONNECT and the TLS hello, the proxy records it), a
DNS lookup followed by QUIC twice. `social_monitor_accesses_total` counts the
access, not the observations (those are `social_monitor_observations_total`,
one per signal). Where the counting happens:

- **Stored accesses** (trust devices in monitored zones, storage allowed):
  counted by the store writer when its transaction inserts a new session row
  (`monitor.store.writer`). The sensor (daemon process) and the proxy (its
  child process) write to the same store, and each transaction merges into the
  open session of the other process's writes under SQLite's write lock, so "a
  new row was inserted" happens exactly once per access across both processes.
- **Accesses that are never stored** (other devices, unmonitored zones, a
  config whose DPIA gate refuses storage, sensitive categories, no store):
  counted here, by `AccessCounter`, a bounded in-memory session table per
  process with the same key and idle gap as the store. It is never written
  anywhere. Each process counts on its own, so an access seen by both the
  sensor and the proxy may count in each; the sensor leaves connections to
  the gateway's own proxy listener to the proxy (the pipeline does that), which
  covers the explicit proxy. On a transparent-proxy zone, a device that is not
  stored can count once per process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from monitor.observation import AccessEvent

SessionKey = tuple[str, ...]


def counting_key(event: AccessEvent) -> SessionKey:
    """The store's session key (`monitor.store.sessions.session_key`), with the client address
    standing in for a device the trust does not own. Held in memory only, never exported."""
    obs = event.observation
    lt = event.local_time
    return (
        event.asset_tag or event.device_mac or obs.client_mac or obs.client_ip,
        event.platform or "",
        event.school or "",
        event.zone or "",
        event.period or "",
        lt[:10] if lt else "",
        event.owner or "",
    )


class AccessCounter:
    """Says whether an event starts a new access (session) or continues one; bounded by `capacity`.

    An entry is (first seen, last seen); an event within the idle gap of either
    side continues it, as in `monitor.store.sessions.SessionMerger`. Entries are
    kept in the order they were last touched: those idle for longer than the gap
    are dropped as newer events arrive, and when the table is full the least
    recently touched one is evicted (counted through `on_evict`): its device's
    next event then counts as a new access.
    """

    def __init__(self, idle_gap: float, capacity: int = 65536, on_evict: Callable[[], None] | None = None):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.idle_gap = float(idle_gap)
        self.capacity = capacity
        self.on_evict = on_evict
        self._open: OrderedDict[SessionKey, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def is_new(self, key: SessionKey, ts: float) -> bool:
        """Record one event at `ts`; True when it opens a new access."""
        gap = self.idle_gap
        table = self._open
        seen = table.get(key)
        if seen is not None and seen[0] - gap <= ts <= seen[1] + gap:
            if ts > seen[1]:
                seen[1] = ts
            elif ts < seen[0]:
                seen[0] = ts
            table.move_to_end(key)
            self._expire(ts)
            return False
        if seen is not None and ts < seen[0]:
            return True  # an older, separate session arriving late: counted, the newer one kept
        table[key] = [ts, ts]
        table.move_to_end(key)
        self._expire(ts)
        while len(table) > self.capacity:
            table.popitem(last=False)
            if self.on_evict is not None:
                self.on_evict()
        return True

    def _expire(self, now: float) -> None:
        """Drop the least recently touched entries that have been idle for longer than the gap."""
        table = self._open
        horizon = now - self.idle_gap
        while table:
            key, seen = next(iter(table.items()))
            if seen[1] >= horizon:
                return
            del table[key]


__all__ = ["AccessCounter", "SessionKey", "counting_key"]
