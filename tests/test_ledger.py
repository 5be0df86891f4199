"""The coverage recorder: intervals on wall-clock boundaries, up time per interface, counters' increases."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from monitor.ledger import MAX_UNWRITTEN, CoverageRecorder, Sources, Totals
from monitor.metrics.registry import Metrics
from monitor.store.coverage import Interval


@dataclass
class World:
    """What the recorder looks at, changed by each test between ticks."""

    totals: Totals = field(default_factory=Totals)
    links: dict[str, bool] = field(default_factory=lambda: {"lan1": True})
    proxy: bool | None = True
    refused: bool = False
    written: list[Interval] = field(default_factory=list)
    fail: bool = False
    metrics: Metrics = field(default_factory=Metrics)

    def write(self, interval: Interval) -> None:
        if self.fail:
            raise OSError("database is locked")
        self.written.append(interval)

    def recorder(self, start: float, interval: float = 300.0) -> CoverageRecorder:
        clock = iter([start]).__next__
        rec = CoverageRecorder(Sources(
            totals=lambda: Totals(**{k: (dict(v) if isinstance(v, dict) else v)
                                     for k, v in vars_of(self.totals).items()}),
            interfaces=lambda: dict(self.links), sensor=lambda: ("live", True), proxy=lambda: self.proxy,
            storage_refused=lambda: self.refused, write=self.write,
            school_days=lambda _now: {"oak": True}, metrics=self.metrics,
        ), interval, clock=clock)
        rec.begin()
        return rec


def vars_of(t: Totals) -> dict:
    return {name: getattr(t, name) for name in Totals.__slots__}  # type: ignore[attr-defined]


def run(world: World, start: float, steps: list[tuple[float, dict]]) -> list[Interval]:
    """Tick once a second from `start`; at each (time, change) apply the change to the world first."""
    changes = dict(steps)
    for key, value in changes.get(start, {}).items():
        setattr(world, key, value)
    rec = world.recorder(start)
    t = start
    end = max(changes) if changes else start
    while t < end:
        t += 1
        for key, value in changes.get(t, {}).items():
            setattr(world, key, value)
        rec.tick(t)
    rec.clock = lambda: end
    rec.stop()
    return world.written


@pytest.mark.parametrize(("start", "end", "bounds"), [
    (1000.0, 1200.0, [(1000, 1200)]),  # shorter than an interval: one, closed at stop
    (1000.0, 1300.0, [(1000, 1200), (1200, 1300)]),  # aligned to multiples of 300 s
    (1200.0, 1800.0, [(1200, 1500), (1500, 1800)]),
])
def test_intervals_close_on_wall_clock_boundaries_and_at_stop(start, end, bounds):
    written = run(World(), start, [(end, {})])
    assert [(i.start, i.end) for i in written] == bounds


@pytest.mark.parametrize(("down_from", "down_to", "up_seconds"), [
    (None, None, 300.0),
    (1050.0, 1110.0, 240.0),  # a minute down
    (1000.0, 1300.0, 0.0),
])
def test_up_time_is_credited_per_interface(down_from, down_to, up_seconds):
    steps: list[tuple[float, dict]] = [(1200.0, {})]
    if down_from is not None:
        steps = [(down_from, {"links": {"lan1": False}}), (down_to, {"links": {"lan1": True}}), (1300.0, {})]
    else:
        steps = [(1300.0, {})]
    written = run(World(), 1000.0, steps)
    assert sum(i.interfaces["lan1"]["up_seconds"] for i in written) == pytest.approx(up_seconds, abs=1)


@pytest.mark.parametrize(("field_name", "before", "after", "read", "expected"), [
    ("kernel_drops", {"lan1": 10.0}, {"lan1": 25.0}, lambda i: i.kernel_drops, 15),
    ("packets", {"lan1": 100.0}, {"lan1": 160.0}, lambda i: i.packets, 60),
    ("parse_errors", 1.0, 4.0, lambda i: i.parse_errors, 3),
    ("refused", 0.0, 7.0, lambda i: i.refused, 7),
    ("queue_dropped", 2.0, 2.0, lambda i: i.queue_dropped, 0),
    ("obscured", {"ech": 1.0}, {"ech": 3.0, "vpn": 2.0}, lambda i: i.obscured, {"ech": 2, "vpn": 2}),
    ("kernel_drops", {"lan1": 10.0}, {"lan1": 4.0}, lambda i: i.kernel_drops, 4),  # went back: a reset
])
def test_an_interval_holds_the_increase_of_each_counter(field_name, before, after, read, expected):
    world = World()
    setattr(world.totals, field_name, before)
    rec = world.recorder(1000.0)
    setattr(world.totals, field_name, after)
    rec.clock = lambda: 1100.0
    rec.stop()
    assert read(world.written[0]) == expected


def test_a_gate_shut_for_a_moment_marks_the_interval():
    written = run(World(), 1000.0, [(1100.0, {"refused": True}), (1101.0, {"refused": False}), (1500.0, {})])
    assert [i.storage_refused for i in written] == [True, False]


def test_a_failed_write_is_kept_and_written_later_in_order():
    world = World(fail=True)
    rec = world.recorder(1000.0)
    for t in range(1001, 1601):
        rec.tick(float(t))
    assert world.written == [] and len(rec.unwritten) == 2
    world.fail = False
    rec.tick(1601.0)
    assert [i.start for i in world.written] == [1000.0, 1200.0]
    assert world.metrics.registry.get_sample_value("social_monitor_coverage_intervals_total",
                                                   {"result": "failed"}) >= 1


def test_held_intervals_are_bounded():
    world = World(fail=True)
    rec = world.recorder(0.0, interval=1.0)
    for t in range(1, MAX_UNWRITTEN + 50):
        rec.tick(float(t))
    assert len(rec.unwritten) == MAX_UNWRITTEN


@pytest.mark.parametrize(("links", "proxy", "observed"), [
    ({"lan1": True}, None, 1.0),
    ({"lan1": False}, True, 1.0),
    ({"lan1": False}, False, 0.0),
    ({}, None, 0.0),
])
def test_the_school_observed_gauge_follows_what_is_up(links, proxy, observed):
    world = World(links=links, proxy=proxy)
    rec = world.recorder(1000.0)
    rec.tick(1001.0)
    value = world.metrics.registry.get_sample_value("social_monitor_school_observed", {"school": "oak"})
    assert value == observed


@pytest.mark.parametrize(("name", "labels", "value", "read"), [
    ("packets", ("lan1",), 5, lambda t: t.packets == {"lan1": 5.0}),
    ("parse_errors", ("dns",), 2, lambda t: t.parse_errors == 2),
    ("store_queue_dropped", (), 3, lambda t: t.queue_dropped == 3),
    ("obscured_flows", ("oak", "classrooms", "ech"), 4, lambda t: t.obscured == {"ech": 4.0}),
])
def test_totals_read_the_series_prometheus_serves(name, labels, value, read):
    metrics = Metrics()
    counter = getattr(metrics, name)
    (counter.labels(*labels) if labels else counter).inc(value)
    assert read(Totals.read(metrics.registry.collect()))


@pytest.mark.parametrize(("outcome", "refused"), [("not_stored", 3), ("recorded", 0)])
def test_refused_observations_are_those_the_gate_kept_out(outcome, refused):
    metrics = Metrics()
    metrics.observations.labels("sensor", "dns", outcome).inc(3)
    totals = Totals.read(metrics.registry.collect())
    assert (totals.observations, totals.refused) == (3, refused)


def test_kernel_drops_are_read_from_the_gauge():
    metrics = Metrics()
    metrics.packets_dropped.labels("lan1").set(42)
    assert Totals.read(metrics.registry.collect()).kernel_drops == {"lan1": 42.0}
