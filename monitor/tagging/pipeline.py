"""The shared pipeline both sources feed: tag, count, log, and hand on to the store.

The sensor and the proxy addon build `Observation`s and call `submit`. It
tags the observation, updates the low-cardinality metrics, logs a flagged
access once per device, platform and period, and passes recordable events to
the sink (`monitor.sinks`: the store writer, non-blocking). Nothing here blocks:
the sink must return at once, and a sink failure is counted, never raised.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import structlog

from monitor.metrics.registry import Metrics
from monitor.observation import AccessEvent, Observation
from monitor.sinks import Sink
from monitor.tagging.tagger import Tagger

log = structlog.get_logger("social_monitor.pipeline")


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


class Pipeline:
    def __init__(
        self,
        tagger: Tagger,
        sink: Sink | None = None,
        metrics: Metrics | None = None,
        flagged_log_memory: int = 4096,
    ):
        self.tagger = tagger
        self.sink = sink
        self.metrics = metrics or Metrics()
        self.refusal = storage_allowed(tagger)
        self._logged: OrderedDict[tuple, None] = OrderedDict()
        self._logged_cap = flagged_log_memory
        # label children resolved once: `Counter.labels()` costs more than the rest of a submit
        # (label values are bounded sets, so this stays small)
        self._children: dict[tuple, Any] = {}
        if self.refusal:
            log.warning("store_refused", reason=self.refusal)

    def submit(self, obs: Observation) -> AccessEvent | None:
        """Tag one observation and hand it on; returns the event for in-scope platforms."""
        m = self.metrics
        event = self.tagger.tag(obs)
        if event.platform is None:
            self._inc(m.observations, obs.source, "not_social")
            return None
        if event.sensitive:
            # a sensitive category is counted without any label naming it
            self._inc(m.observations, obs.source, "sensitive")
            return None
        flagged = event.trust_device and event.flagged
        self._inc(
            m.accesses,
            event.school or "unknown",
            event.zone or "unknown",
            event.platform,
            event.period_kind,
            "true" if flagged else "false",
        )
        if not event.trust_device:
            self._inc(m.observations, obs.source, "not_trust_device")
            return event
        if not event.monitored:
            self._inc(m.observations, obs.source, "unmonitored_zone")
            return event
        if flagged:
            for flag in event.flags:
                self._inc(m.flagged, event.school or "unknown", flag.name)
            if not self.refusal:
                self._log_flagged(event)
        if self.refusal or self.sink is None:
            self._inc(m.observations, obs.source, "not_stored")
            return event
        try:
            accepted = self.sink.submit(event)
        except Exception as exc:  # a broken sink must not stop capture or the proxy
            self._inc(m.store_write_errors, "sink")
            log.error("sink_failed", error=repr(exc))
            return event
        self._inc(m.observations, obs.source, "recorded" if accepted else "queue_full")
        return event

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
