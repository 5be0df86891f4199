"""Prometheus metrics: one `Metrics` object per process, on an injectable registry.

Labels are bounded sets only (school, zone, platform, period kind, flag,
protocol, result): never a device, a person or an address, so a flood of
random hostnames cannot grow the number of series. Platform labels come from
the catalog (or "none"), zone and school labels from the config (or
"unknown"), so every label set is known when the config is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor import __version__
from monitor.metrics.multiprocess import MULTIPROC_ENV


def exposition_registry(metrics: Metrics) -> CollectorRegistry:
    """The registry to serve: in multi-process mode, a collector over every process's files."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return metrics.registry


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # a gauge, not an Info: Info does not work in multi-process mode
        self.build_info = Gauge(
            "social_monitor_build_info", "Version of social-monitor", ["version"], registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(__version__).set(1)
        # Accesses, not observations: one per device, platform and idle-gap session, the store's
        # unit (monitor.tagging.counting says where each is counted, and why exactly once)
        self.accesses = Counter(
            "social_monitor_accesses_total",
            "Accesses to in-scope platforms (one per device, platform and idle-gap session), from trust"
            " devices and (flagged=false) other devices",
            ["school", "zone", "platform", "period_kind", "flagged"],
            registry=r,
        )
        self.flagged = Counter(
            "social_monitor_flagged_accesses_total",
            "Accesses flagged by a policy rule, once per flag (an access: a device, platform and idle-gap"
            " session)",
            ["school", "flag"],
            registry=r,
        )
        self.sensitive_accesses = Counter(
            "social_monitor_sensitive_accesses_total",
            "Accesses to platforms of a sensitive category (never stored; no label names them)",
            registry=r,
        )
        # Flows that hide their destination (monitor/capture/bypass.py): one per flow, from any device
        self.obscured_flows = Counter(
            "social_monitor_obscured_flows_total",
            "Flows that hide their destination (encrypted DNS, VPN, Tor, ECH), by school, zone and kind",
            ["school", "zone", "kind"],
            registry=r,
        )
        # Signals: one per observation (a proxied HTTPS visit is 3: CONNECT, TLS hello, proxy)
        self.observations = Counter(
            "social_monitor_observations_total",
            "Observations (signals) handed to the pipeline, by source, protocol and outcome",
            # outcome: recorded, not_social, not_trust_device, sensitive, unmonitored_zone,
            # not_stored, queue_full, sink_failed, gateway_own
            ["source", "protocol", "outcome"],
            registry=r,
        )
        self.packets = Counter(
            "social_monitor_packets_total", "Packets seen by the sensor", ["interface"], registry=r
        )
        self.packets_dropped = Gauge(
            "social_monitor_kernel_dropped_packets",
            "Packets the kernel dropped before the sensor read them (pcap statistics)",
            ["interface"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.capture_up = Gauge(
            "social_monitor_capture_up",
            "1 while the sensor captures on an interface named in the config (or \"default\", the route's)",
            ["interface"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.capture_outages = Counter(
            "social_monitor_capture_outages_total",
            "Times capture on an interface stopped: link down, interface missing or deleted, socket error",
            ["interface"],
            registry=r,
        )
        self.parse_errors = Counter(
            "social_monitor_parse_errors_total",
            "Packets that could not be parsed, by protocol",
            ["protocol"],
            registry=r,
        )
        self.flow_evictions = Counter(
            "social_monitor_flow_evictions_total",
            "Flows evicted from a full flow or reassembly table",
            ["table"],
            registry=r,
        )
        self.proxy_connections = Counter(
            "social_monitor_proxy_connections_total",
            "Client connections seen by the proxy addon, by how TLS was handled",
            ["handling"],  # passthrough, decrypted, plain; refused (client outside the trust)
            registry=r,
        )
        self.addon_errors = Counter(
            "social_monitor_addon_errors_total",
            "Failures inside the proxy addon (traffic kept flowing)",
            ["hook"],
            registry=r,
        )
        self.store_writes = Counter(
            "social_monitor_store_writes_total", "Sessions written to the store", registry=r
        )
        self.store_write_errors = Counter(
            "social_monitor_store_write_errors_total",
            "Failed store writes, by reason",
            ["reason"],
            registry=r,
        )
        self.store_queue_dropped = Counter(
            "social_monitor_store_queue_dropped_total",
            "Events dropped because the writer queue was full",
            registry=r,
        )
        self.store_damaged = Gauge(
            "social_monitor_store_damaged",
            "1 while the store file is damaged and the writer refuses to write to it",
            registry=r, multiprocess_mode="livemax",
        )
        self.store_queue_depth = Gauge(
            "social_monitor_store_queue_depth", "Events waiting for the store writer", registry=r,
            multiprocess_mode="livesum",
        )
        self.store_write_latency = Histogram(
            "social_monitor_store_write_latency_seconds",
            "Time to commit one batch to the store",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.config_reloads = Counter(
            "social_monitor_config_reloads_total", "Config reloads, by result", ["result"], registry=r
        )
        self.child_restarts = Counter(
            "social_monitor_child_restarts_total",
            "Restarts of supervised child processes",
            ["child"],
            registry=r,
        )
        # the coverage ledger's live side (monitor.ledger): what alerts and the dashboard's coverage row read
        self.school_day = Gauge(
            "social_monitor_school_day", "1 during a school's day by its timetable (term, hours)", ["school"],
            registry=r, multiprocess_mode="livemax",
        )
        self.school_observed = Gauge(
            "social_monitor_school_observed",
            "1 while a capture interface or the proxy observes the school's traffic", ["school"],
            registry=r, multiprocess_mode="livemax",
        )
        self.coverage_intervals = Counter(
            "social_monitor_coverage_intervals_total",
            "Coverage intervals closed by the daemon, by whether the store took them", ["result"], registry=r,
        )
        self.up = Gauge(
            "social_monitor_component_up", "1 when a component is running", ["component"], registry=r,
            multiprocess_mode="livemax",
        )

    def declare_known_series(self) -> None:
        """Export 0 for label sets that alerts watch, so the first failure is an increase."""
        for result in ("success", "failure"):
            self.config_reloads.labels(result)
        self.child_restarts.labels("proxy")
        for reason in ("disk_full", "locked", "readonly", "corrupt", "io", "other", "sink"):
            self.store_write_errors.labels(reason)
        self.store_queue_dropped.inc(0)
        for result in ("written", "failed"):
            self.coverage_intervals.labels(result)
        self.sensitive_accesses.inc(0)


class SensorMetrics:
    """The packet sensor's counts as this process's series.

    Implements `monitor.capture.counters.CaptureCounters`: each method binds a
    label once and hands the sensor the child's own `inc`/`set`, so the hot
    path makes the same single call it made when it held the counters itself.
    """

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def parse_error_counter(self, protocol: str) -> Callable[[], None]:
        return self.metrics.parse_errors.labels(protocol=protocol).inc

    def eviction_counter(self, table: str) -> Callable[[], None]:
        return self.metrics.flow_evictions.labels(table=table).inc

    def packet_counter(self, interface: str) -> Callable[[int], None]:
        return self.metrics.packets.labels(interface=interface).inc

    def dropped_setter(self, interface: str) -> Callable[[int], None]:
        return self.metrics.packets_dropped.labels(interface=interface).set
