"""The shared pipeline both sources feed: tag, count, log, and hand on to the store.

The sensor and the proxy addon build `Observation`s and call `submit`. It
tags the observation, updates the low-cardinality metrics, logs a flagged
access once per device, platform and period, and passes recordable events to
the sink (`monitor.sinks`: the store writer, non-blocking). Nothing here blocks:
the sink must return at once, and a sink failure is counted, never raised.

Two families count two different things (docs/deploy.md, "What an access is"):

- `social_monitor_observations_total{source, protocol, outcome}`: one per
  observation, i.e. per signal (a proxied HTTPS visit is three of them).
- `social_monitor_accesses_total` and `social_monitor_flagged_accesses_total`:
  one per access, i.e. per device, platform and idle-gap session, the unit the
  store uses. A stored access is counted by the store writer when it inserts
  the session's row (exactly once across the sensor and proxy processes); any
  other access by this process's `AccessCounter` (`monitor.tagging.counting`).

A flow that hides its destination (`Observation.obscured_by`: a VPN, encrypted DNS, Tor, ECH)
usually has no platform: it is counted in `social_monitor_obscured_flows_total{school, zone, kind}`
and, from a trust device, stored as a session with no platform, never flagged.

The gateway's own traffic (its upstream lookups, `monitor.tagging.gateway`) is
neither: it is counted as `outcome="gateway_own"` and goes no further.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import structlog

from monitor.metrics.registry import Metrics
from monitor.observation import AccessEvent, Observation
from monitor.sinks import Sink
from monitor.tagging.counting import AccessCounter, counting_key
from monitor.tagging.gateway import GatewayAddresses
from monitor.tagging.tagger import Tagger

log = structlog.get_logger("social_monitor.pipeline")
OWN_ADDRESSES_REFRESH = 60.0  # seconds: a DHCP-assigned uplink address may change while running


def storage_allowed(tagger: Tagger) -> str | None:
    """None when identifiable sessions may be stored; else why not.

    Monitoring workers is lawful only when it has been assessed and its purpose
    stated (UK GDPR, the ICO's guidance on monitoring workers), so the store
    stays closed until the config names both."""
    trust = tagger.config.trust
    missing = [name for name in ("dpia_reference", "purpose") if not getattr(trust, name)]
    if missing:
        return f"trust.{' and trust.'.join(missing)} not set: accesses are counted but not stored"
    return None


OBSCURED_KINDS = ("ech", "encrypted-dns", "tor", "vpn")
"""`social.obscured_by` values: the kinds of `social_monitor_obscured_flows_total` and of the ledger."""


def obscured_kind(obs: Observation) -> str | None:
    """How an observation hides its destination: `obscured_by` when the sensor names it, else "ech" for
    the older boolean mark (a TLS or QUIC hello with Encrypted Client Hello); None when it does not."""
    kind = getattr(obs, "obscured_by", None)
    if kind in OBSCURED_KINDS:
        return str(kind)
    return "ech" if obs.obscured else None


def sink_counts_accesses(sink: Sink | None) -> bool:
    """Whether the sink counts the accesses it stores (the store writer does, on each new session)."""
    return bool(getattr(sink, "counts_accesses", False))


class Pipeline:
    def __init__(
        self,
        tagger: Tagger,
        sink: Sink | None = None,
        metrics: Metrics | None = None,
        flagged_log_memory: int = 4096,
        gateway: GatewayAddresses | None = None,
        counting_capacity: int = 65536,
    ):
        self.tagger = tagger
        self.sink = sink
        self.metrics = metrics or Metrics()
        self.refusal = storage_allowed(tagger)
        self._store_counts = sink_counts_accesses(sink)
        self._logged: OrderedDict[tuple, None] = OrderedDict()
        self._logged_cap = flagged_log_memory
        # label children resolved once: `Counter.labels()` costs more than the rest of a submit
        # (label values are bounded sets, so this stays small)
        self._children: dict[tuple, Any] = {}
        self._fixed_gateway = gateway is not None  # tests pass their own; otherwise read from the kernel
        self.gateway = gateway if gateway is not None else GatewayAddresses.of_config(tagger.config.schools)
        self._gateway_due = time.monotonic() + OWN_ADDRESSES_REFRESH
        self.counter = AccessCounter(
            tagger.config.model.store.idle_gap_seconds, counting_capacity,
            on_evict=self.metrics.flow_evictions.labels("access_sessions").inc,
        )
        if self.refusal:
            log.warning("store_refused", reason=self.refusal)

    def reconfigure(self, tagger: Tagger) -> None:
        """A reloaded config (daemon SIGHUP): new tagger, storage gate and own addresses.

        The tagger is one attribute swap, so the sensor sees the old or the new one, never half."""
        self.refusal = storage_allowed(tagger)
        self.tagger = tagger
        self.counter.idle_gap = float(tagger.config.model.store.idle_gap_seconds)
        self.refresh_gateway()

    def refresh_gateway(self) -> None:
        """Re-read the gateway's own addresses (start, reload, and once a minute from `submit`)."""
        self._gateway_due = time.monotonic() + OWN_ADDRESSES_REFRESH
        if not self._fixed_gateway:
            self.gateway = GatewayAddresses.of_config(self.tagger.config.schools)

    def submit(self, obs: Observation) -> AccessEvent | None:
        """Tag one observation and hand it on; returns the event for in-scope platforms."""
        m = self.metrics
        if not self._fixed_gateway and time.monotonic() >= self._gateway_due:
            self.refresh_gateway()
        if self.gateway.owns(obs.client_ip):
            self._inc(m.observations, obs.source, obs.protocol, "gateway_own")
            return None
        event = self.tagger.tag(obs)
        if kind := obscured_kind(obs):  # before any early return: a hidden destination has no platform
            self._inc(m.obscured_flows, event.school or "unknown", event.zone or "unknown", kind)
        if event.platform is None:
            if obs.obscured_by is None:
                self._inc(m.observations, obs.source, obs.protocol, "not_social")
                return None
            return self._hidden(event)
        if event.sensitive:
            # a sensitive category is counted without any label naming it, once per session
            self._inc(m.observations, obs.source, obs.protocol, "sensitive")
            if self.counter.is_new(counting_key(event), obs.timestamp):
                m.sensitive_accesses.inc()
            return None
        # an unmonitored zone (guest Wi-Fi) is counted, never flagged: the trust does not monitor it
        flagged = event.trust_device and event.monitored and event.flagged
        if flagged and not self.refusal:
            self._log_flagged(event)
        outcome = self._hand_on(event)
        self._inc(m.observations, obs.source, obs.protocol, outcome)
        if outcome != "recorded" or not self._store_counts:
            self._count_access(event, flagged)
        return event

    def _hidden(self, event: AccessEvent) -> AccessEvent:
        """A flow that hides its destination: counted by school, zone and kind, stored (a trust device
        in a monitored zone) as a session with no platform, never flagged: no platform is guessed."""
        obs = event.observation  # counted in obscured_flows by `submit`, as every hidden destination is
        self._inc(self.metrics.observations, obs.source, obs.protocol, self._hand_on(event))
        return event

    def _hand_on(self, event: AccessEvent) -> str:
        """Give a recordable event to the sink; the observation's outcome."""
        if not event.trust_device:
            return "not_trust_device"
        if not event.monitored:
            return "unmonitored_zone"
        if self.refusal or self.sink is None:
            return "not_stored"
        try:
            accepted = self.sink.submit(event)
        except Exception as exc:  # a broken sink must not stop capture or the proxy
            self._inc(self.metrics.store_write_errors, "sink")
            log.error("sink_failed", error=repr(exc))
            return "sink_failed"
        return "recorded" if accepted else "queue_full"

    def _count_access(self, event: AccessEvent, flagged: bool) -> None:
        """Count an access the store will not count: once per device, platform and idle-gap session."""
        obs = event.observation
        if obs.source == "sensor" and obs.protocol in ("tls", "http") and self.gateway.serves(obs.server_ip):
            return  # a connection to this gateway's own proxy listener: the proxy counts that access
        if not self.counter.is_new(counting_key(event), obs.timestamp):
            return
        m = self.metrics
        school = event.school or "unknown"
        self._inc(m.accesses, school, event.zone or "unknown", event.platform or "none", event.period_kind,
                  "true" if flagged else "false")
        if flagged:
            for flag in event.flags:
                self._inc(m.flagged, school, flag.name)

    def _inc(self, counter: Any, *labels: str) -> None:
        key = (id(counter), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        child.inc()

    def _log_flagged(self, event: AccessEvent) -> None:
        key = (event.device_mac, event.platform, event.school, event.period, event.local_time[:10]
               if event.local_time else None)
        if key in self._logged:
            return
        self._logged[key] = None
        if len(self._logged) > self._logged_cap:
            self._logged.popitem(last=False)
        log.info(
            "access_flagged",
            school=event.school,
            zone=event.zone,
            platform=event.platform,
            period=event.period,
            period_kind=event.period_kind,
            flags=[f"{f.name} ({f.clause})" for f in event.flags],
        )  # no device or person: journald keeps logs beyond retention_days and outside the export log
