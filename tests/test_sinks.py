"""Non-blocking sinks: the JSON-lines writer thread and fan-out."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from monitor.metrics.registry import Metrics
from monitor.observation import AccessEvent, Observation
from monitor.sinks import FanOut, JsonLinesSink


def event(host: str = "www.tiktok.com") -> AccessEvent:
    obs = Observation(1.0, "127.0.0.1", 5, "1.2.3.4", 443, "tcp", "tls", host, source="proxy")
    return AccessEvent(obs, platform="tiktok", trust_device=True)


def test_jsonl_sink_writes_ecs_lines(tmp_path: Path):
    sink = JsonLinesSink(tmp_path / "out" / "events.jsonl")
    assert all(sink(event()) for _ in range(3))
    sink.close()
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
    results = [sink(event()) for _ in range(5)]
    sink.go.set()
    sink.close()
    assert results == [True, True, False, False, False]
    assert metrics.registry.get_sample_value("social_monitor_store_queue_dropped_total") == 3
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 2


def test_fan_out_accepts_if_any_sink_accepts():
    seen: list[str] = []
    fan = FanOut([lambda e: False, lambda e: seen.append(e.platform) or True])
    assert fan(event()) is True and seen == ["tiktok"]
