"""Sinks: the JSON-lines writer thread, the set a config opens, and the one Sink protocol."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from monitor.config.loader import Config, load_config
from monitor.metrics.registry import Metrics
from monitor.observation import AccessEvent, Observation
from monitor.sinks import JsonLinesSink, Sink, SinkSet, open_sinks
from monitor.store.sqlite import open_store
from monitor.store.writer import StoreWriter
from tests.proxy_helpers import TEST_CONFIG


def event(host: str = "www.tiktok.com") -> AccessEvent:
    obs = Observation(1.0, "127.0.0.1", 5, "1.2.3.4", 443, "tcp", "tls", host, source="proxy")
    return AccessEvent(obs, platform="tiktok", trust_device=True)


class FixedSink:
    """Answers `submit` and `close` with given results and remembers what it saw."""

    def __init__(self, accepts: bool = True, flushed: bool = True):
        self.accepts, self.flushed = accepts, flushed
        self.events: list[AccessEvent] = []
        self.closed = False

    def submit(self, event: AccessEvent) -> bool:
        self.events.append(event)
        return self.accepts

    def close(self, timeout: float = 5.0) -> bool:
        self.closed = True
        return self.flushed


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """The proxy test trust, its store (store.db) in tmp_path."""
    shutil.copy(TEST_CONFIG.parent / "devices.csv", tmp_path / "devices.csv")
    shutil.copy(TEST_CONFIG, tmp_path / "config.yaml")
    return load_config(tmp_path / "config.yaml")


# --- JSON lines ----------------------------------------------------------------------------


def test_jsonl_sink_writes_ecs_lines(tmp_path: Path):
    sink = JsonLinesSink(tmp_path / "out" / "events.jsonl")
    assert all(sink.submit(event()) for _ in range(3))
    assert sink.close() is True
    lines = [json.loads(x) for x in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert [x["social.platform"] for x in lines] == ["tiktok"] * 3
    assert lines[0]["tls.client.server_name"] == "www.tiktok.com"


class StalledSink(JsonLinesSink):
    """A writer thread that waits for `go`, so the queue can be filled deterministically."""

    def __init__(self, *args, **kwargs):
        self.go = threading.Event()
        super().__init__(*args, **kwargs)

    def _run(self) -> None:
        self.go.wait(10)
        super()._run()


def test_jsonl_sink_drops_and_counts_when_full(tmp_path: Path):
    metrics = Metrics()
    sink = StalledSink(tmp_path / "events.jsonl", metrics, queue_size=2)
    results = [sink.submit(event()) for _ in range(5)]
    sink.go.set()
    sink.close()
    assert results == [True, True, False, False, False]
    assert metrics.registry.get_sample_value("social_monitor_store_queue_dropped_total") == 3
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 2


# --- the set -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("store", "jsonl", "accepted"),
    [
        (True, True, True),
        (True, False, True),  # accepted if any one accepted it
        (False, True, True),
        (False, False, False),
        (True, None, True),
        (None, False, False),
        (None, None, False),  # an empty set accepts nothing
    ],
)
def test_sink_set_accepts_if_any_member_accepts(store, jsonl, accepted):
    members = [None if x is None else FixedSink(accepts=x) for x in (store, jsonl)]
    sinks = SinkSet(*members)
    assert sinks.submit(event()) is accepted
    assert [len(m.events) for m in members if m is not None] == [1] * sum(m is not None for m in members)


@pytest.mark.parametrize(
    ("store", "jsonl", "flushed"),
    [(True, True, True), (False, True, False), (True, False, False), (True, None, True), (None, None, True)],
)
def test_sink_set_close_closes_every_member_and_reports_loss(store, jsonl, flushed):
    members = [None if x is None else FixedSink(flushed=x) for x in (store, jsonl)]
    assert SinkSet(*members).close() is flushed
    assert all(m.closed for m in members if m is not None)


@pytest.mark.parametrize(
    ("store", "events_jsonl", "has_store", "has_jsonl"),
    [(True, "", True, False), (True, "events.jsonl", True, True), (False, "events.jsonl", False, True),
     (False, "", False, False)],
)
def test_open_sinks_opens_what_the_options_ask_for(tmp_path, config, store, events_jsonl, has_store,
                                                  has_jsonl):
    injected = FixedSink()
    sinks = open_sinks(config, Metrics(), store=store,
                       events_jsonl=str(tmp_path / events_jsonl) if events_jsonl else "",
                       open_store=lambda c, m: injected)
    try:
        opened = (sinks.store is injected, isinstance(sinks.events_jsonl, JsonLinesSink))
        assert opened == (has_store, has_jsonl)
        assert sinks.empty is not (has_store or has_jsonl)
    finally:
        sinks.close()


def test_open_sinks_by_default_writes_the_config_store(tmp_path, config):
    """The daemon's and the addon's store sink: the store writer, started, purging by retention."""
    sinks = open_sinks(config, Metrics())
    assert isinstance(sinks.store, StoreWriter) and sinks.events_jsonl is None
    assert sinks.store.retention_days == config.model.retention_days
    from monitor.tagging.tagger import Tagger

    now = 1_795_000_000.0
    tagged = Tagger(config).tag(Observation(now, "127.0.0.1", 5, "1.2.3.4", 443, "tcp", "tls",
                                            "www.tiktok.com", source="proxy"))
    assert tagged.recordable
    assert sinks.submit(tagged) is True
    assert sinks.close() is True
    with open_store(tmp_path / "store.db", create=False) as store:
        assert [s.platform for s in store.sessions()] == ["tiktok"]


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp, config: JsonLinesSink(tmp / "e.jsonl"),
        lambda tmp, config: StoreWriter.from_config(config).start(),
        lambda tmp, config: SinkSet(),
    ],
    ids=["jsonl", "store-writer", "set"],
)
def test_every_sink_is_a_sink(tmp_path, config, make):
    sink = make(tmp_path, config)
    try:
        assert isinstance(sink, Sink)
    finally:
        sink.close()


# --- liveness (the daemon's watchdog asks) ----------------------------------------------------


class DyingJsonLinesSink(JsonLinesSink):
    """Its thread ends at once, as one that met a bug would (without the traceback)."""

    def _run(self) -> None:
        return


@pytest.mark.parametrize(
    ("make", "closed", "alive"),
    [
        (lambda tmp, config: JsonLinesSink(tmp / "e.jsonl"), False, True),
        (lambda tmp, config: JsonLinesSink(tmp / "e.jsonl"), True, False),
        (lambda tmp, config: DyingJsonLinesSink(tmp / "e.jsonl"), False, False),
        (lambda tmp, config: StoreWriter.from_config(config).start(), False, True),
        (lambda tmp, config: StoreWriter.from_config(config).start(), True, False),
        (lambda tmp, config: SinkSet(FixedSink(), JsonLinesSink(tmp / "e.jsonl")), False, True),
        (lambda tmp, config: SinkSet(FixedSink(), DyingJsonLinesSink(tmp / "e.jsonl")), False, False),
        (lambda tmp, config: SinkSet(FixedSink()), False, True),  # a sink without a thread cannot die
        (lambda tmp, config: SinkSet(), False, True),
    ],
    ids=["jsonl", "jsonl-closed", "jsonl-died", "store-writer", "store-writer-closed", "set",
         "set-with-a-dead-member", "set-threadless", "set-empty"],
)
def test_alive_while_the_writing_thread_runs(tmp_path, config, make, closed: bool, alive: bool):
    sink = make(tmp_path, config)
    try:
        if closed:
            sink.close()
        for _ in range(100):  # a dying thread needs a moment to end
            if sink.alive is alive:
                break
            time.sleep(0.01)
        assert sink.alive is alive
    finally:
        sink.close(timeout=0.1)
