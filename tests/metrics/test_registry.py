"""The metrics contract on a fresh registry per test: names, labels, zero series, the sensor's counters."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.capture.counters import CaptureCounters
from monitor.metrics.multiprocess import MULTIPROC_ENV
from monitor.metrics.registry import Metrics, SensorMetrics, exposition_registry


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.mark.parametrize(
    ("count", "sample", "labels", "value"),
    [
        (lambda m: m.accesses.labels("oak", "hall", "youtube", "contact", "true").inc(2),
         "social_monitor_accesses_total",
         {"school": "oak", "zone": "hall", "platform": "youtube", "period_kind": "contact",
          "flagged": "true"}, 2),
        (lambda m: m.flagged.labels("oak", "pupil_area").inc(), "social_monitor_flagged_accesses_total",
         {"school": "oak", "flag": "pupil_area"}, 1),
        (lambda m: m.observations.labels("sensor", "quic", "recorded").inc(3),
         "social_monitor_observations_total",
         {"source": "sensor", "protocol": "quic", "outcome": "recorded"}, 3),
        (lambda m: m.sensitive_accesses.inc(), "social_monitor_sensitive_accesses_total", {}, 1),
        (lambda m: m.packets.labels("eth1").inc(10), "social_monitor_packets_total",
         {"interface": "eth1"}, 10),
        (lambda m: m.packets_dropped.labels("eth1").set(4), "social_monitor_kernel_dropped_packets",
         {"interface": "eth1"}, 4),
        (lambda m: m.parse_errors.labels("dns").inc(), "social_monitor_parse_errors_total",
         {"protocol": "dns"}, 1),
        (lambda m: m.flow_evictions.labels("flows").inc(), "social_monitor_flow_evictions_total",
         {"table": "flows"}, 1),
        (lambda m: m.proxy_connections.labels("passthrough").inc(), "social_monitor_proxy_connections_total",
         {"handling": "passthrough"}, 1),
        (lambda m: m.addon_errors.labels("request").inc(), "social_monitor_addon_errors_total",
         {"hook": "request"}, 1),
        (lambda m: m.store_writes.inc(5), "social_monitor_store_writes_total", {}, 5),
        (lambda m: m.store_write_errors.labels("disk_full").inc(), "social_monitor_store_write_errors_total",
         {"reason": "disk_full"}, 1),
        (lambda m: m.store_queue_dropped.inc(), "social_monitor_store_queue_dropped_total", {}, 1),
        (lambda m: m.store_queue_depth.set(17), "social_monitor_store_queue_depth", {}, 17),
        (lambda m: m.store_write_latency.observe(0.003), "social_monitor_store_write_latency_seconds_bucket",
         {"le": "0.005"}, 1),
        (lambda m: m.store_write_latency.observe(0.003), "social_monitor_store_write_latency_seconds_bucket",
         {"le": "0.0025"}, 0),
        (lambda m: m.config_reloads.labels("success").inc(), "social_monitor_config_reloads_total",
         {"result": "success"}, 1),
        (lambda m: m.child_restarts.labels("proxy").inc(), "social_monitor_child_restarts_total",
         {"child": "proxy"}, 1),
        (lambda m: m.up.labels("sensor").set(1), "social_monitor_component_up", {"component": "sensor"}, 1),
    ],
    ids=["accesses", "flagged", "observations", "sensitive-accesses", "packets", "kernel-dropped",
         "parse-errors", "evictions",
         "proxy-connections", "addon-errors", "store-writes", "store-write-errors", "queue-dropped",
         "queue-depth", "latency-bucket-above", "latency-bucket-below", "config-reloads", "child-restarts",
         "component-up"],
)
def test_each_metric_has_its_name_and_labels(registry, count, sample, labels, value):
    count(Metrics(registry))
    assert registry.get_sample_value(sample, labels) == value


def test_build_info_is_set_on_creation(registry):
    Metrics(registry)
    assert registry.get_sample_value("social_monitor_build_info", {"version": __version__}) == 1


@pytest.mark.parametrize(
    ("sample", "labels"),
    [
        ("social_monitor_config_reloads_total", {"result": "success"}),
        ("social_monitor_config_reloads_total", {"result": "failure"}),
        ("social_monitor_child_restarts_total", {"child": "proxy"}),
        *[("social_monitor_store_write_errors_total", {"reason": reason})
          for reason in ("disk_full", "locked", "readonly", "corrupt", "io", "other", "sink")],
        ("social_monitor_store_queue_dropped_total", {}),
    ],
    ids=["reload-success", "reload-failure", "proxy-restarts", "disk-full", "locked", "readonly", "corrupt",
         "io", "other", "sink", "queue-dropped"],
)
def test_declare_known_series_exports_zero(registry, sample, labels):
    metrics = Metrics(registry)
    if labels:  # a labelled series does not exist until declared
        assert registry.get_sample_value(sample, labels) is None
    metrics.declare_known_series()
    assert registry.get_sample_value(sample, labels) == 0


def test_each_registry_has_its_own_series():
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first).store_writes.inc(2)
    Metrics(second)
    assert (first.get_sample_value("social_monitor_store_writes_total"),
            second.get_sample_value("social_monitor_store_writes_total")) == (2, 0)


def test_one_registry_takes_one_metrics(registry):
    Metrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Metrics(registry)


def test_exposition_registry_is_the_metrics_registry_in_one_process(monkeypatch, registry):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    metrics = Metrics(registry)
    assert exposition_registry(metrics) is registry


def test_exposition_registry_reads_the_directory_in_multi_process_mode(monkeypatch, tmp_path, registry):
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    metrics = Metrics(registry)
    metrics.store_writes.inc()  # in this (single-process) interpreter: in memory, not in the directory
    served = exposition_registry(metrics)
    assert served is not registry
    assert list(served.collect()) == []  # the directory is empty


def test_sensor_metrics_implements_capture_counters(registry):
    assert isinstance(SensorMetrics(Metrics(registry)), CaptureCounters)


@pytest.mark.parametrize(
    ("bind", "calls", "sample", "labels", "value"),
    [
        (lambda s: s.parse_error_counter("tls"), [(), ()], "social_monitor_parse_errors_total",
         {"protocol": "tls"}, 2),
        (lambda s: s.parse_error_counter("quic"), [], "social_monitor_parse_errors_total",
         {"protocol": "quic"}, 0),
        (lambda s: s.eviction_counter("dns_answers"), [()], "social_monitor_flow_evictions_total",
         {"table": "dns_answers"}, 1),
        (lambda s: s.packet_counter("eth2"), [(5,), (7,)], "social_monitor_packets_total",
         {"interface": "eth2"}, 12),
        (lambda s: s.dropped_setter("eth2"), [(9,), (4,)], "social_monitor_kernel_dropped_packets",
         {"interface": "eth2"}, 4),
    ],
    ids=["parse-errors-add", "bound-label-exports-zero", "evictions", "packets-add", "drops-set"],
)
def test_sensor_metrics_counts_into_the_series(registry, bind, calls, sample, labels, value):
    count = bind(SensorMetrics(Metrics(registry)))
    for args in calls:
        count(*args)
    assert registry.get_sample_value(sample, labels) == value
