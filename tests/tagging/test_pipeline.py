"""The shared pipeline: what is counted, what reaches the store, and what never does."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import structlog

from monitor.config.loader import load_config
from monitor.metrics.registry import Metrics
from monitor.observation import AccessEvent, Observation
from monitor.tagging.pipeline import Pipeline, storage_allowed
from monitor.tagging.tagger import Tagger
from tests.conftest import london

LESSON = london(2026, 11, 30, 10, 0)


class CallbackSink:
    """A monitor.sinks.Sink that hands each event to a function."""

    def __init__(self, submit: Callable[[AccessEvent], bool]):
        self.submit = submit

    def close(self, timeout: float = 5.0) -> bool:
        return True


def obs(client: str, host: str, mac: str | None = None, source: str = "sensor") -> Observation:
    return Observation(LESSON, client, 50000, "198.51.100.7", 443, "tcp", "tls", host, source=source,
                       client_mac=mac)


@pytest.fixture
def run(example_config):
    def go(observation: Observation, sink_result: bool | Exception = True, config=None):
        received: list[AccessEvent] = []

        def submit(event: AccessEvent) -> bool:
            if isinstance(sink_result, Exception):
                raise sink_result
            received.append(event)
            return sink_result

        metrics = Metrics()
        pipeline = Pipeline(Tagger(config or example_config), sink=CallbackSink(submit), metrics=metrics)
        pipeline.submit(observation)
        return received, metrics

    return go


def outcome(metrics: Metrics, source: str = "sensor") -> dict[str, float]:
    return {
        o: metrics.registry.get_sample_value("social_monitor_observations_total",
                                             {"source": source, "outcome": o}) or 0
        for o in ("recorded", "not_social", "sensitive", "not_trust_device", "unmonitored_zone",
                  "not_stored", "queue_full")
    }


@pytest.mark.parametrize(
    ("observation", "stored", "expected_outcome"),
    [
        (obs("10.20.10.41", "www.facebook.com"), True, "recorded"),
        (obs("10.20.10.41", "www.bbc.co.uk"), False, "not_social"),
        (obs("10.20.10.41", "www.neu.org.uk"), False, "sensitive"),  # trade union: never recorded
        (obs("10.20.10.99", "www.facebook.com"), False, "not_trust_device"),
        (obs("10.20.99.7", "www.facebook.com", mac="3c:52:82:20:00:05"), False, "unmonitored_zone"),
        (obs("10.20.10.41", "www.facebook.com", source="proxy"), True, "recorded"),
    ],
)
def test_outcomes(run, observation, stored, expected_outcome):
    received, metrics = run(observation)
    assert bool(received) == stored
    counts = outcome(metrics, observation.source)
    assert counts[expected_outcome] == 1
    assert sum(counts.values()) == 1


def test_sensitive_access_leaves_no_platform_label(run):
    _, metrics = run(obs("10.20.30.10", "www.nasuwt.org.uk"))
    exposition = "\n".join(
        f"{s.name}{s.labels}" for family in metrics.registry.collect() for s in family.samples
    )
    assert "nasuwt" not in exposition and "trade-union" not in exposition


def test_flagged_access_is_counted_by_flag_and_logged_once(run, example_config):
    metrics = Metrics()
    stored: list[AccessEvent] = []
    pipeline = Pipeline(Tagger(example_config), sink=CallbackSink(lambda e: stored.append(e) or True),
                        metrics=metrics)
    with structlog.testing.capture_logs() as logs:
        for port in range(3):
            o = obs("10.20.10.41", "www.facebook.com")
            o.client_port = 50000 + port
            pipeline.submit(o)
    assert len(stored) == 3
    value = metrics.registry.get_sample_value
    assert value("social_monitor_flagged_accesses_total",
                 {"school": "ash-secondary", "flag": "pupil_area"}) == 3
    assert value("social_monitor_accesses_total", {"school": "ash-secondary", "zone": "classrooms",
                                                   "platform": "facebook", "period_kind": "contact",
                                                   "flagged": "true"}) == 3
    flagged = [entry for entry in logs if entry["event"] == "access_flagged"]
    assert len(flagged) == 1  # one line per device, platform and period, not per observation
    assert flagged[0]["flags"] == ["contact_time (4.3)", "pupil_area (4.3)"]
    # neither address nor device nor person: logs outlive retention and the export log
    assert not {"10.20.10.41", "ASH-LT-0002", "S2002"} & {str(v) for v in flagged[0].values()}


def test_exempt_access_is_stored_but_not_flagged(run):
    received, metrics = run(obs("10.20.40.12", "www.linkedin.com"))  # marketing, clause 4.1
    assert received and received[0].exemption is not None and not received[0].flagged
    assert metrics.registry.get_sample_value(
        "social_monitor_flagged_accesses_total", {"school": "ash-secondary", "flag": "contact_time"}) is None


def test_full_queue_is_counted(run):
    _, metrics = run(obs("10.20.10.41", "www.facebook.com"), sink_result=False)
    assert outcome(metrics)["queue_full"] == 1


def test_failing_sink_is_counted_never_raised(run):
    _, metrics = run(obs("10.20.10.41", "www.facebook.com"), sink_result=OSError("disk gone"))
    assert metrics.registry.get_sample_value("social_monitor_store_write_errors_total",
                                             {"reason": "sink"}) == 1


def test_no_storage_without_dpia_and_purpose(run, write_config, example_data):
    del example_data["trust"]["dpia_reference"]
    config = load_config(write_config(example_data))
    assert "trust.dpia_reference" in storage_allowed(Tagger(config))
    with structlog.testing.capture_logs() as logs:
        received, metrics = run(obs("10.20.10.41", "www.facebook.com"), config=config)
    assert received == []
    assert outcome(metrics)["not_stored"] == 1
    assert not [entry for entry in logs if entry["event"] == "access_flagged"]
