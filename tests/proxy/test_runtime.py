"""The addon's runtime: config, pipeline and sinks built from the options, reloaded off the loop, swapped."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import urllib.request
from pathlib import Path

import pytest
from mitmproxy import exceptions
from structlog.testing import capture_logs

from monitor.metrics.registry import Metrics
from monitor.observation import AccessEvent
from monitor.proxy.options import ProxySettings
from monitor.proxy.runtime import MetricsEndpoint, ProxyRuntime, file_identity
from monitor.sinks import SinkSet
from tests.proxy_helpers import TEST_CONFIG, free_port


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[AccessEvent] = []
        self.closed = threading.Event()

    def submit(self, event: AccessEvent) -> bool:
        self.events.append(event)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        self.closed.set()
        return True


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    shutil.copy(TEST_CONFIG.parent / "devices.csv", tmp_path / "devices.csv")
    shutil.copy(TEST_CONFIG, tmp_path / "config.yaml")
    return tmp_path / "config.yaml"


@pytest.fixture
def runtime() -> ProxyRuntime:
    return ProxyRuntime(Metrics(), sink_factory=lambda config: RecordingSink())


def reloads(runtime: ProxyRuntime, outcome: str) -> float:
    return runtime.metrics.registry.get_sample_value(
        "social_monitor_config_reloads_total", {"result": outcome}) or 0.0


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


BROKEN = ("cidrs: [127.0.0.0/8", "cidrs: [127.0.0.300/8")


# --- apply (mitmproxy's configure) -------------------------------------------------------------


def test_empty_config_path_means_nothing_loaded(runtime, config_file):
    runtime.apply(ProxySettings(str(config_file)))
    sink = runtime.current.sink.store
    runtime.apply(ProxySettings(""))
    assert runtime.current is None
    assert sink.closed.wait(5)  # the replaced sink is flushed and closed, in a thread


@pytest.mark.parametrize(
    ("file_name", "decrypt", "message"),
    [
        ("nope.yaml", (), "social_monitor_config: .*no such file"),
        ("config.yaml", ("myspace",), "social_monitor_decrypt: unknown platform"),
    ],
)
def test_bad_settings_are_an_options_error_naming_the_option(runtime, config_file, file_name, decrypt,
                                                             message):
    with pytest.raises(exceptions.OptionsError, match=re.compile(message, re.S)):
        runtime.apply(ProxySettings(str(config_file.with_name(file_name)), decrypt=decrypt))
    assert runtime.current is None


def test_invalid_config_names_the_field(runtime, config_file):
    edit(config_file, *BROKEN)
    with pytest.raises(exceptions.OptionsError, match=r"schools\[0\]\.zones\[0\]\.cidrs"):
        runtime.apply(ProxySettings(str(config_file)))


@pytest.mark.parametrize(
    ("second", "success", "failure"),
    [
        (None, 0, 0),  # the first load is a start, not a reload
        ("good", 1, 0),
        ("broken", 0, 1),
    ],
)
def test_only_later_option_changes_count_as_reloads(runtime, config_file, second, success, failure):
    runtime.apply(ProxySettings(str(config_file)))
    first = runtime.current
    if second == "good":
        runtime.apply(ProxySettings(str(config_file), decrypt=("tiktok",)))
    elif second == "broken":
        edit(config_file, *BROKEN)
        with pytest.raises(exceptions.OptionsError):
            runtime.apply(ProxySettings(str(config_file)))
        assert runtime.current is first  # the old set keeps running
    assert (reloads(runtime, "success"), reloads(runtime, "failure")) == (success, failure)


@pytest.mark.parametrize(
    ("store", "events_jsonl", "members"),
    [(True, False, ("store",)), (True, True, ("store", "events_jsonl")), (False, True, ("events_jsonl",)),
     (False, False, None)],
)
def test_sinks_follow_the_store_and_jsonl_options(runtime, config_file, store, events_jsonl, members):
    jsonl = str(config_file.parent / "events.jsonl") if events_jsonl else ""
    runtime.apply(ProxySettings(str(config_file), store=store, events_jsonl=jsonl))
    sink = runtime.current.sink
    try:
        if members is None:
            assert sink is None  # the pipeline counts `not_stored`
        else:
            assert isinstance(sink, SinkSet)
            assert tuple(m for m in ("store", "events_jsonl") if getattr(sink, m) is not None) == members
    finally:
        runtime.close()


# --- build: keeping the store writer across a reload -------------------------------------------


@pytest.mark.parametrize(
    ("reuse", "change", "kept"),
    [
        (True, None, True),  # SIGHUP, same store: the running writer and its queue stay
        (True, ("loopback-class", "loopback-renamed"), True),  # other sections changed
        (True, ("path: store.db", "path: other.db"), False),  # another store: opened afresh
        (False, None, False),  # an option change opens its sinks afresh
    ],
)
def test_reload_keeps_the_sink_when_the_store_is_the_same(runtime, config_file, reuse, change, kept):
    runtime.apply(ProxySettings(str(config_file)))
    before = runtime.current.sink
    if change:
        edit(config_file, *change)
    loaded = runtime.build(ProxySettings(str(config_file)), reuse_sinks=reuse)
    assert (loaded.sink is before) is kept


@pytest.mark.parametrize("same_sink", [True, False])
def test_swap_closes_only_a_sink_no_longer_used(runtime, config_file, same_sink):
    runtime.apply(ProxySettings(str(config_file)))
    old = runtime.current.sink.store
    runtime.swap(runtime.build(ProxySettings(str(config_file)), reuse_sinks=same_sink))
    assert old.closed.wait(0.5 if same_sink else 5) is not same_sink


def test_close_flushes_the_sinks(runtime, config_file):
    runtime.apply(ProxySettings(str(config_file)))
    sink = runtime.current.sink.store
    runtime.close()
    assert sink.closed.is_set() and runtime.current is None


# --- SIGHUP: rebuilt in a thread, swapped on the loop -------------------------------------------


def reload_on_a_loop(runtime: ProxyRuntime, settings: ProxySettings) -> list[bool]:
    """Run `reload` from a real event loop until it settles; whether the loop kept turning meanwhile."""
    turned: list[bool] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        runtime.reload(settings, loop)
        deadline = loop.time() + 20
        while runtime.reloading and loop.time() < deadline:
            turned.append(True)
            await asyncio.sleep(0.005)

    asyncio.run(main())
    return turned


@pytest.mark.parametrize(
    ("change", "swapped", "event", "errors"),
    [
        (("loopback-class", "loopback-renamed"), True, "proxy_config_reloaded", 0),
        (BROKEN, False, "proxy_config_reload_rejected", 1),
    ],
)
def test_sighup_reload(runtime, config_file, change, swapped, event, errors):
    runtime.apply(ProxySettings(str(config_file)))
    before = runtime.current
    edit(config_file, *change)
    with capture_logs() as logs:
        turned = reload_on_a_loop(runtime, ProxySettings(str(config_file)))
    assert (runtime.current is not before) is swapped
    assert not runtime.reloading and turned  # the loop kept serving while the config was read
    assert any(e["event"] == event for e in logs)
    assert (runtime.metrics.registry.get_sample_value(
        "social_monitor_addon_errors_total", {"hook": "reload"}) or 0) == errors
    assert reloads(runtime, "success") == 0  # the daemon counts reloads, not its proxy child


def test_rejected_reload_logs_each_field_error(runtime, config_file):
    runtime.apply(ProxySettings(str(config_file)))
    edit(config_file, *BROKEN)
    with capture_logs() as logs:
        reload_on_a_loop(runtime, ProxySettings(str(config_file)))
    (rejected,) = [e for e in logs if e["event"] == "proxy_config_reload_rejected"]
    line = next(n for n, text in enumerate(config_file.read_text().splitlines(), 1) if BROKEN[1] in text)
    assert rejected["errors"] == [
        f"{config_file}:{line}: schools[0].zones[0].cidrs[0]: '127.0.0.300/8' is not a network"]


def test_reload_without_a_config_does_nothing(runtime):
    assert reload_on_a_loop(runtime, ProxySettings("")) == []
    assert runtime.current is None


@pytest.mark.parametrize(
    ("replace", "stale"),
    [(False, False), (True, True)],
)
def test_stale_when_the_file_was_replaced_after_loading(runtime, config_file, replace, stale):
    runtime.apply(ProxySettings(str(config_file)))
    if replace:
        fresh = config_file.with_name("fresh.yaml")
        fresh.write_text(config_file.read_text())
        os.replace(fresh, config_file)  # a new inode, as an editor's save or the daemon's snapshot
    assert runtime.stale() is stale


@pytest.mark.parametrize(
    ("target", "known"),
    [("config.yaml", True), ("missing.yaml", False)],
)
def test_file_identity_follows_symlinks(config_file, target, known):
    link = config_file.parent / "current.yaml"
    link.symlink_to(target)
    identity = file_identity(link)
    assert (identity is not None) is known
    if known:
        assert identity == file_identity(config_file)


# --- the metrics endpoint ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "message"),
    [("9465", "social_monitor_metrics"), ("127.0.0.1:http", "social_monitor_metrics"),
     ("127.0.0.1:70000", "social_monitor_metrics")],
)
def test_bad_listen_is_an_options_error(listen, message):
    endpoint = MetricsEndpoint(Metrics().registry)
    with pytest.raises(exceptions.OptionsError, match=message):
        endpoint.serve(listen)
    assert not endpoint.serving


def test_endpoint_serves_then_stops():
    metrics = Metrics()
    metrics.addon_errors.labels("next_layer").inc()
    endpoint = MetricsEndpoint(metrics.registry)
    port = free_port()
    endpoint.serve(f"127.0.0.1:{port}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert 'social_monitor_addon_errors_total{hook="next_layer"} 1.0' in resp.read().decode()
    finally:
        endpoint.serve("")  # empty: stop
    assert not endpoint.serving
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
