"""The shared pipeline: what is counted, what reaches the store, and what never does."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import structlog

from monitor.config.loader import load_config
from monitor.metrics.registry import Metrics
from monitor.observation import AccessEvent, Observation
from monitor.tagging.gateway import NO_ADDRESSES, GatewayAddresses
from monitor.tagging.pipeline import Pipeline, sink_counts_accesses, storage_allowed
from monitor.tagging.tagger import Tagger
from tests.conftest import london

LESSON = london(2026, 11, 30, 10, 0)


class CallbackSink:
    """A monitor.sinks.Sink that hands each event to a function; `counts_accesses` as a store writer."""

    def __init__(self, submit: Callable[[AccessEvent], bool], counts_accesses: bool = False):
        self.submit = submit
        self.counts_accesses = counts_accesses

    def close(self, timeout: float = 5.0) -> bool:
        return True


def obs(client: str, host: str, mac: str | None = None, source: str = "sensor", at: float = LESSON,
        protocol: str = "tls", server: str = "198.51.100.7") -> Observation:
    transport = "udp" if protocol in ("dns", "quic") else "tcp"
    return Observation(at, client, 50000, server, 443, transport, protocol, host,  # type: ignore[arg-type]
                       source=source, client_mac=mac)


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
        pipeline = Pipeline(Tagger(config or example_config), sink=CallbackSink(submit), metrics=metrics,
                            gateway=NO_ADDRESSES)
        pipeline.submit(observation)
        return received, metrics

    return go


OUTCOMES = ("recorded", "not_social", "sensitive", "not_trust_device", "unmonitored_zone", "not_stored",
            "queue_full", "sink_failed", "gateway_own")


def outcome(metrics: Metrics, source: str = "sensor", protocol: str = "tls") -> dict[str, float]:
    return {
        o: metrics.registry.get_sample_value("social_monitor_observations_total",
                                             {"source": source, "protocol": protocol, "outcome": o}) or 0
        for o in OUTCOMES
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
                        metrics=metrics, gateway=NO_ADDRESSES)
    with structlog.testing.capture_logs() as logs:
        for port in range(3):
            o = obs("10.20.10.41", "www.facebook.com")
            o.client_port = 50000 + port
            pipeline.submit(o)
    assert len(stored) == 3
    value = metrics.registry.get_sample_value
    # three connections within the idle gap: one access (this sink does not count, so the pipeline does)
    assert value("social_monitor_flagged_accesses_total",
                 {"school": "ash-secondary", "flag": "pupil_area"}) == 1
    assert value("social_monitor_accesses_total", {"school": "ash-secondary", "zone": "classrooms",
                                                   "platform": "facebook", "period_kind": "contact",
                                                   "flagged": "true"}) == 1
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
    assert outcome(metrics)["sink_failed"] == 1


def test_no_storage_without_dpia_and_purpose(run, write_config, example_data):
    del example_data["trust"]["dpia_reference"]
    config = load_config(write_config(example_data))
    assert "trust.dpia_reference" in storage_allowed(Tagger(config))
    with structlog.testing.capture_logs() as logs:
        received, metrics = run(obs("10.20.10.41", "www.facebook.com"), config=config)
    assert received == []
    assert outcome(metrics)["not_stored"] == 1
    assert not [entry for entry in logs if entry["event"] == "access_flagged"]


# --- counting each access once ------------------------------------------------------------------

GATEWAY_LAN = "10.20.10.1"  # the gateway's own address in the classroom network: where its proxy listens
GATEWAY = GatewayAddresses(frozenset({GATEWAY_LAN, "192.0.2.2"}))
TEACHER = "10.20.10.41"  # ASH-LT-0002, a trust device in a monitored classroom
VISITOR = "10.20.10.99"  # not a trust device
GAP = 300


def guest(host: str) -> Observation:
    """ASH-LT-0005, a trust device, on the unmonitored guest Wi-Fi."""
    return obs("10.20.99.7", host, mac="3c:52:82:20:00:05")


def proxied_visit(client: str, host: str, at: float = LESSON) -> list[Observation]:
    """What one explicitly proxied HTTPS visit leaves: CONNECT and TLS hello to the proxy, and the proxy's."""
    return [obs(client, host, at=at, protocol="http", server=GATEWAY_LAN),
            obs(client, host, at=at + 0.01, server=GATEWAY_LAN),
            obs(client, host, at=at + 0.02, source="proxy")]


def count(example_config, observations: list[Observation], *, store_counts: bool = False,
          accepted: bool = True) -> dict[str, float]:
    metrics = Metrics()
    sink = CallbackSink(lambda e: accepted, counts_accesses=store_counts)
    pipeline = Pipeline(Tagger(example_config), sink=sink, metrics=metrics, gateway=GATEWAY)
    for o in observations:
        pipeline.submit(o)

    def total(name: str) -> float:
        return sum(s.value for family in metrics.registry.collect() for s in family.samples if s.name == name)

    return {"accesses": total("social_monitor_accesses_total"),
            "flagged": total("social_monitor_flagged_accesses_total"),
            "signals": total("social_monitor_observations_total"),
            "sensitive": total("social_monitor_sensitive_accesses_total")}


@pytest.mark.parametrize(
    ("observations", "store_counts", "accepted", "accesses", "signals"),
    [
        # a visitor's proxied HTTPS visit: 3 signals, 1 access (the proxy's; the sensor leaves it)
        (proxied_visit(VISITOR, "www.facebook.com"), False, True, 1, 3),
        # a stored teacher's visit: the store writer counts it, never the pipeline
        (proxied_visit(TEACHER, "www.facebook.com"), True, True, 0, 3),
        # the same with a sink that does not count (JSON lines only, say): the pipeline counts it once
        (proxied_visit(TEACHER, "www.facebook.com"), False, True, 1, 3),
        # the store's queue was full: counted here, so a dropped event is not a lost access
        (proxied_visit(TEACHER, "www.facebook.com")[-1:], True, False, 1, 1),
        # DNS then QUIC for the same platform: one access
        ([obs(VISITOR, "www.tiktok.com", protocol="dns", server="192.0.2.53"),
          obs(VISITOR, "www.tiktok.com", at=LESSON + 0.2, protocol="quic")], False, True, 1, 2),
        # a second access after the idle gap
        (proxied_visit(VISITOR, "www.facebook.com") + proxied_visit(VISITOR, "www.facebook.com",
                                                                    at=LESSON + GAP + 5), False, True, 2, 6),
        # within the gap of the last sighting (not the first): still the same access
        ([obs(VISITOR, "www.facebook.com", at=LESSON + k * 200) for k in range(4)], False, True, 1, 4),
        # two platforms, or two devices: two accesses
        ([obs(VISITOR, "www.facebook.com"), obs(VISITOR, "www.tiktok.com")], False, True, 2, 2),
        ([obs(VISITOR, "www.facebook.com"), obs("10.20.10.98", "www.facebook.com")], False, True, 2, 2),
        # an unmonitored zone: counted, never stored
        ([guest("www.facebook.com"), guest("www.facebook.com")], True, True, 1, 2),
        # the gateway's own upstream lookups: signals, never accesses
        ([obs("192.0.2.2", "www.facebook.com", protocol="dns", server="192.0.2.53"),
          obs("192.0.2.2", "www.facebook.com")], False, True, 0, 2),
        # DNS to the gateway's own resolver is a client's access, not the proxy's
        ([obs(VISITOR, "www.facebook.com", protocol="dns", server=GATEWAY_LAN)], False, True, 1, 1),
        # not a platform: neither
        ([obs(VISITOR, "www.bbc.co.uk")], False, True, 0, 1),
    ],
)
def test_an_access_is_counted_once(example_config, observations, store_counts, accepted, accesses, signals):
    counted = count(example_config, observations, store_counts=store_counts, accepted=accepted)
    assert (counted["accesses"], counted["signals"]) == (accesses, signals)


@pytest.mark.parametrize(
    ("observations", "flagged"),
    [
        (proxied_visit(TEACHER, "www.facebook.com"), 2),  # one access, two flags (contact time, pupil area)
        (proxied_visit(TEACHER, "www.facebook.com") * 2, 2),
        ([guest("www.facebook.com")], 0),  # guest Wi-Fi is counted, not monitored: never flagged
        (proxied_visit(VISITOR, "www.facebook.com"), 0),  # not a trust device
    ],
)
def test_flags_are_counted_once_per_access(example_config, observations, flagged):
    assert count(example_config, observations)["flagged"] == flagged


@pytest.mark.parametrize(
    ("observations", "sensitive", "signals"),
    [
        ([obs(TEACHER, "www.neu.org.uk")], 1, 1),
        ([obs(TEACHER, "www.neu.org.uk", at=LESSON + k) for k in range(3)], 1, 3),
        ([obs(TEACHER, "www.neu.org.uk"), obs(TEACHER, "www.neu.org.uk", at=LESSON + GAP + 1)], 2, 2),
    ],
)
def test_sensitive_accesses_are_counted_once_unlabelled(example_config, observations, sensitive, signals):
    counted = count(example_config, observations)
    assert (counted["sensitive"], counted["accesses"], counted["signals"]) == (sensitive, 0, signals)


class CountingSink:
    counts_accesses = True


@pytest.mark.parametrize(
    ("sink", "counts"),
    [
        (None, False),
        (CallbackSink(lambda e: True), False),
        (CountingSink(), True),
    ],
)
def test_which_sinks_count_their_accesses(sink, counts):
    assert sink_counts_accesses(sink) is counts


def test_own_addresses_are_read_again_on_reload(example_config):
    pipeline = Pipeline(Tagger(example_config), metrics=Metrics())
    pipeline.gateway = GatewayAddresses(frozenset({"203.0.113.9"}))  # as if read before an address change
    pipeline.reconfigure(Tagger(example_config))
    assert not pipeline.gateway.owns("203.0.113.9")
    assert pipeline.gateway.owns("127.0.0.1") is pipeline.gateway.loopback_is_own


@pytest.mark.parametrize(("obscured", "obscured_by", "host", "counted"), [
    (True, None, "cloudflare-ech.com", {"ech": 1.0}),  # the older boolean mark: Encrypted Client Hello
    (True, "vpn", None, {"vpn": 1.0}),  # a kind named by the sensor (no hostname: WireGuard, ESP)
    (True, "made-up", "cloudflare-ech.com", {"ech": 1.0}),  # an unknown kind never becomes a label
    (False, None, "www.instagram.com", {}),
])
def test_hidden_destinations_are_counted_by_kind(run, obscured, obscured_by, host, counted):
    base = obs("10.20.1.15", host)
    observation = dataclasses.replace(base, obscured_by=obscured_by)
    observation.obscured = obscured
    _, metrics = run(observation)
    found = {s.labels["kind"]: s.value for f in metrics.registry.collect() for s in f.samples
             if s.name == "social_monitor_obscured_flows_total" and s.value}
    assert found == counted


# --- flows that hide their destination (issue 16) ------------------------------------------------


def hidden(client: str, kind: str, protocol: str = "wireguard", host: str = "", mac: str | None = None):
    transport = "tcp" if protocol in ("tls", "http") else "udp"
    return Observation(LESSON, client, 40000, "198.51.100.9", 51820, transport, protocol, host,  # type: ignore[arg-type]
                       client_mac=mac, obscured=True, obscured_by=kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("observation", "stored", "school", "zone", "kind", "expected_outcome"),
    [
        (hidden("10.20.10.41", "vpn"), True, "ash-secondary", "classrooms", "vpn", "recorded"),
        (hidden("10.20.10.41", "encrypted-dns", "tls", "dns.google"), True, "ash-secondary", "classrooms",
         "encrypted-dns", "recorded"),
        (hidden("10.20.10.41", "tor", "tls", "www.ct7ctrgb6cr7.com"), True, "ash-secondary", "classrooms",
         "tor", "recorded"),
        (hidden("10.20.10.99", "vpn"), False, "ash-secondary", "classrooms", "vpn", "not_trust_device"),
        (hidden("10.20.99.7", "vpn", mac="3c:52:82:20:00:05"), False, "ash-secondary", "guest-wifi", "vpn",
         "unmonitored_zone"),
        (hidden("203.0.113.5", "ech", "tls", "cloudflare-ech.com"), False, "unknown", "unknown", "ech",
         "not_trust_device"),
    ],
)
def test_a_hidden_destination_is_counted_by_school_zone_and_kind(run, observation, stored, school, zone, kind,
                                                                 expected_outcome):
    received, metrics = run(observation)
    assert bool(received) == stored
    value = metrics.registry.get_sample_value
    assert value("social_monitor_obscured_flows_total", {"school": school, "zone": zone, "kind": kind}) == 1
    assert outcome(metrics, protocol=observation.protocol)[expected_outcome] == 1
    if stored:
        event = received[0]
        assert (event.platform, event.flagged, event.recordable) == (None, False, True)
        assert event.school == school and event.zone == zone and event.period_kind == "contact"
    # never an access to a platform, never flagged
    exposition = [s for family in metrics.registry.collect() for s in family.samples
                  if s.name.startswith(("social_monitor_accesses", "social_monitor_flagged"))]
    assert [s for s in exposition if s.value] == []


def test_an_unmarked_nameless_observation_is_not_social(run):
    nameless = Observation(LESSON, "10.20.10.41", 40000, "198.51.100.9", 9, "udp", "wireguard", "")
    received, metrics = run(nameless)
    assert received == [] and outcome(metrics, protocol="wireguard")["not_social"] == 1
