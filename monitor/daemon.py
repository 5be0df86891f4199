"""`social-monitor run`: the sensor, the proxy, the store writer and the metrics endpoint.

One process owns the packet sensor (a thread reading live interfaces, or a
capture file), the store writer thread and the metrics endpoint. The proxy
runs as a supervised child process (mitmdump with the addon, `monitor/proxy/launcher.py`,
supervised by `monitor/proxy/supervisor.py`): a proxy that crashes or leaks must not take
the sensor or the store down with it, and a child is restarted with back-off and counted.
Both processes write to the same store (SQLite in WAL mode, one transaction per
batch) and count into the same metrics (prometheus-client's multi-process mode),
so the endpoint shows one picture.

A coverage recorder (`monitor/ledger.py`) writes what was observed, interval by
interval, into the store's hash chain, so exports can say how complete a period was.

Signals: SIGTERM/SIGINT stop capture, stop the proxy, flush the writer's
queue, close the store and exit 0. SIGHUP reloads the config: a broken one is
rejected with its field-path errors (the old one keeps running) and counted.

Under systemd (`Type=notify`, `WatchdogSec=`) the main loop says READY=1 once
running, pings the watchdog only while the sensor, the writer and the proxy's
supervision (the loop itself) are alive, and says STOPPING=1 on the way out.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from monitor import __version__
from monitor.config.loader import Config, load_config
from monitor.errors import ConfigError, UserError
from monitor.ledger import CoverageRecorder, Sources, Totals
from monitor.metrics.registry import Metrics, SensorMetrics, exposition_registry
from monitor.metrics.server import MetricsServer, load_basic_auth
from monitor.proxy.supervisor import ProxyChild
from monitor.sdnotify import Watchdog
from monitor.sinks import SinkSet, open_sinks
from monitor.store.coverage import append_to_file
from monitor.tagging.pipeline import OBSCURED_KINDS, Pipeline
from monitor.tagging.tagger import Tagger

if TYPE_CHECKING:  # imported where capture starts: a proxy-only daemon needs no scapy
    from monitor.capture.live import InterfaceState, LiveCapture
    from monitor.capture.sensor import Sensor
from monitor.tempdirs import owned_tempdir, reap_stale

log = structlog.get_logger("social_monitor.daemon")


@dataclass
class RunOptions:
    config_path: Path
    config_source: str = "from --config"  # why this config: ConfigChoice.reason, logged at start
    interfaces: list[str] | None = None  # None: from the config (empty there: the default interface)
    pcap: list[Path] | None = None  # read capture files instead of live interfaces
    capture: bool = True
    proxy: bool = True
    metrics_listen: str | None = None  # override listen.metrics (tests use port 0)
    proxy_listen: str | None = None


class Daemon:
    def __init__(self, options: RunOptions):
        self.options = options
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.metrics = Metrics()
        self.config: Config | None = None
        self.pipeline: Pipeline | None = None
        self.sinks: SinkSet | None = None  # the store's writer (monitor.sinks)
        self.sensor_thread: threading.Thread | None = None
        self.ship_thread: threading.Thread | None = None  # store-and-forward to store.central, if set
        self.live: LiveCapture | None = None  # when capturing live
        self.runtime_dir: Path | None = None
        self.snapshots = 0
        self.sensor_failed = False
        self.sensor: Sensor | None = None
        self.proxy: ProxyChild | None = None
        self.metrics_server: MetricsServer | None = None
        self.sensor_stats: dict[str, int] = {}
        self.writer_failed = False
        self.watchdog = Watchdog(self.dead_components)
        self.ledger: CoverageRecorder | None = None

    # --- life cycle ---------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.config = load_config(self.options.config_path)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("config_invalid", error=line)
            print("\n".join(exc.errors), file=sys.stderr)
            return 1
        config = self.config
        log.info("starting", version=__version__, pid=os.getpid())
        reap_stale("run")  # config snapshots of a daemon killed with SIGKILL (it could not remove them)
        log.info("config_loaded", config=str(config.path), config_source=self.options.config_source,
                 trust=config.trust.name,
                 fingerprint=config.fingerprint[:12], schools=len(config.schools),
                 devices=len(config.devices), platforms=len(config.catalog))
        if config.model.listen.insecure:  # check-config let it through only with a reason: repeat it
            log.warning("listen_insecure", reason=config.model.listen.insecure_reason)
        self._install_signals()
        self.metrics.declare_known_series()
        try:
            self._start_store(config)
            tagger = Tagger(config)
            self.pipeline = Pipeline(tagger, sink=self.sinks, metrics=self.metrics)
            self._start_metrics(config)
            self.ledger = self._ledger(config)  # its first interval opens before capture starts
            if self.options.capture and config.model.capture.enabled:
                try:
                    self._start_sensor(config)
                except Exception as exc:
                    # e.g. no CAP_NET_RAW on a newcomer's laptop: the proxy still serves, and
                    # component_up{component="sensor"} 0 raises the alert on a real gateway
                    self.metrics.up.labels("sensor").set(0)
                    log.error("sensor_unavailable", error=str(exc) if isinstance(exc, UserError)
                              else repr(exc))
            if self.options.proxy and config.model.capture.proxy_enabled:
                self.proxy = ProxyChild(self.options.proxy_listen, config, self.metrics,
                                        self._snapshot(config))
                self.proxy.start()
            self.ledger.start()
        except UserError as exc:
            log.error("start_failed", error=str(exc))
            print(f"social-monitor: {exc}", file=sys.stderr)
            self._shutdown()
            return 1
        log.info("running", config=str(config.path), config_source=self.options.config_source,
                 metrics=self._metrics_address(), proxy=bool(self.proxy),
                 sensor=self.sensor_thread is not None or self.live is not None,
                 capture={name: state.describe() for name, state in self.live.states().items()}
                 if self.live is not None else None)
        self.watchdog.ready(f"running, metrics on {self._metrics_address()}")
        while not self.stop_event.is_set():
            self.stop_event.wait(0.2)
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            if self.proxy is not None:
                self.proxy.supervise()  # the proxy's supervision is this loop: a hung loop pings no more
            self._check_sensor()
            self._check_writer()
            self.watchdog.tick()
        self._shutdown()
        return 0

    def _metrics_address(self) -> str | None:
        if self.metrics_server is None:
            return None
        host = str(self.metrics_server.httpd.server_address[0])
        return f"{host}:{self.metrics_server.port}"

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: object) -> None:
            log.info("stop_requested", signal=signal.Signals(signum).name)
            self.stop_event.set()

        def hup(_signum: int, _frame: object) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    def _start_store(self, config: Config) -> None:
        self.sinks = open_sinks(config, self.metrics)  # the store's writer thread: it closes the store
        self.metrics.up.labels("writer").set(1)
        if config.model.store.central:  # store-and-forward to the trust's central store (psycopg only then)
            from monitor.store.postgres.shipper import ShipMetrics, shipper_for

            shipper = shipper_for(config, ShipMetrics(self.metrics.registry))
            self.ship_thread = threading.Thread(target=shipper.run,  # type: ignore[union-attr]
                                                args=(self.stop_event,), name="shipper", daemon=True)
            self.ship_thread.start()

    def _ledger(self, config: Config) -> CoverageRecorder:
        """The coverage ledger (monitor.ledger): what was up, and the counters' increases, per interval."""
        registry = exposition_registry(self.metrics)  # the series /metrics serves, every process's

        def sensor() -> tuple[str, bool]:
            if self.live is not None:
                return "live", self.live.alive() and not self.sensor_failed
            if self.sensor_thread is not None:
                return "file", self.sensor_thread.is_alive()
            return "off", False

        def school_days(now: float) -> dict[str, bool]:
            clocks = self.pipeline.tagger.clocks if self.pipeline is not None else {}
            return {school: clock.at(now).day == "school-day" for school, clock in clocks.items()}

        for school in config.schools:  # every series from zero, so increase() sees the first flow
            for zone in school.zones:
                for kind in OBSCURED_KINDS:
                    self.metrics.obscured_flows.labels(school.id, zone.name, kind)
        recorder = CoverageRecorder(Sources(
            totals=lambda: Totals.read(registry.collect()),
            interfaces=lambda: {k: s.up for k, s in self.live.states().items()} if self.live else {},
            sensor=sensor,
            proxy=lambda: None if self.proxy is None else self.proxy.listening,
            storage_refused=lambda: self.pipeline is not None and self.pipeline.refusal is not None,
            write=lambda interval: append_to_file(config.store_path, interval, time.time()),
            school_days=school_days, metrics=self.metrics,
        ), config.model.store.coverage_interval_seconds)
        recorder.begin()
        return recorder

    def _start_metrics(self, config: Config) -> None:
        listen = config.model.listen
        users = load_basic_auth(config.resolve(listen.metrics_basic_auth_file)) \
            if listen.metrics_basic_auth_file else None
        self.metrics_server = MetricsServer(
            self.options.metrics_listen or listen.metrics,
            exposition_registry(self.metrics),
            certfile=str(config.resolve(listen.metrics_tls_cert)) if listen.metrics_tls_cert else None,
            keyfile=str(config.resolve(listen.metrics_tls_key)) if listen.metrics_tls_key else None,
            basic_auth=users,
            client_ca=str(config.resolve(listen.metrics_tls_client_ca))
            if listen.metrics_tls_client_ca else None,
        ).start()
        self.metrics.up.labels("metrics").set(1)
        # `--metrics-listen 127.0.0.1:0` picks a free port: tell whoever started us
        log.info("metrics_listening", address=self._metrics_address())

    def _start_sensor(self, config: Config) -> None:
        from monitor.capture.sensor import Sensor

        pipeline = self.pipeline
        assert pipeline is not None

        def learn(binding) -> None:
            pipeline.tagger.devices.learn(binding.ip, binding.mac, binding.hostname, at=binding.at)

        sensor = self.sensor = Sensor(pipeline.submit, learn, SensorMetrics(self.metrics),
                                      idle_gap=config.model.store.idle_gap_seconds,
                                      bypass_catalog=pipeline.tagger.config.bypass_catalog)
        if self.options.pcap:
            self.sensor_thread = threading.Thread(target=self._guard_sensor,
                                                  args=(self._read_files, sensor, self.options.pcap),
                                                  name="sensor", daemon=True)
            self.sensor_thread.start()
        else:
            from monitor.capture.live import LiveCapture

            names = self.options.interfaces if self.options.interfaces is not None \
                else config.model.capture.interfaces
            # each interface on its own, reopened with back-off; none named: follow the default route
            self.live = LiveCapture(sensor, names, follow_default_route=not names,
                                    on_change=self._capture_changed)
            for name in self.live.names:  # bounded: the names in the config (or "default")
                self.metrics.capture_up.labels(name).set(0)
                self.metrics.capture_outages.labels(name)
            self.live.start()  # first attempt on each interface here; only a lack of permission raises
            log.info("capture_started", interfaces=self.live.names)
        self.metrics.up.labels("sensor").set(1)

    def _capture_changed(self, state: InterfaceState) -> None:
        """One interface's capture came up or went down (called once per change, from the capture thread)."""
        self.metrics.capture_up.labels(state.interface).set(1 if state.up else 0)
        if state.up:
            log.info("capture_up", interface=state.interface, device=state.device,
                     down_seconds=state.down_seconds)
        else:
            self.metrics.capture_outages.labels(state.interface).inc()
            log.warning("capture_down", interface=state.interface, device=state.device, reason=state.reason,
                        detail=state.detail)

    def _guard_sensor(self, target, *args) -> None:
        try:
            target(*args)
        except Exception as exc:  # the sensor is down: say so loudly, keep the rest serving
            log.error("sensor_failed", error=repr(exc))
            self.sensor_failed = True
            self.metrics.up.labels("sensor").set(0)

    def _read_files(self, sensor, paths: list[Path]) -> None:
        from monitor.capture.pcap_feed import feed_file
        from monitor.capture.sources import ReadStats

        for path in paths:
            stats = ReadStats()
            feed_file(sensor, path, stats, stop=self.stop_event)  # through the triage, as `classify` reads
            if self.stop_event.is_set():
                return
            sensor.close()  # each file is its own capture: its flows end with it
            self.metrics.packets.labels(f"file:{Path(path).name}"[:64]).inc(stats.frames)
            log.info("capture_file_read", file=str(path), packets=stats.frames,
                     parse_errors=sum(sensor.error_counts.values()))

    def _snapshot(self, config: Config) -> Path:
        """Freeze a valid config for the proxy child: if the file on disk is later saved broken
        (and its reload rejected), a child restarted after a crash still starts.

        Each snapshot is a new folder; `current` is a symlink swapped atomically to
        the newest, so the child's path never changes and a SIGHUP makes it re-read."""
        if self.runtime_dir is None:
            self.runtime_dir = owned_tempdir("run")  # a SIGKILLed daemon's is removed at next start
        self.snapshots += 1
        folder = f"config-{self.snapshots}"
        config.snapshot(self.runtime_dir / folder)
        link = self.runtime_dir / ".current.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(folder)
        link.replace(self.runtime_dir / "current")
        shutil.rmtree(self.runtime_dir / f"config-{self.snapshots - 2}", ignore_errors=True)
        return self.runtime_dir / "current" / "config.yaml"

    def _check_sensor(self) -> None:
        """Main loop: a live capture thread that died is reported once, loudly."""
        live = self.live
        if live is not None and live.error is not None and not self.sensor_failed:
            self.sensor_failed = True
            self.metrics.up.labels("sensor").set(0)
            for name in live.names:  # nothing reads the sockets any more, whatever their last state
                self.metrics.capture_up.labels(name).set(0)
            log.error("sensor_failed", error=repr(live.error))

    def _check_writer(self) -> None:
        """Main loop: a store writer thread that died is reported once, loudly (its gauge goes to 0)."""
        if self.sinks is not None and not self.sinks.alive and not self.writer_failed:
            self.writer_failed = True
            self.metrics.up.labels("writer").set(0)
            log.error("writer_failed", detail="accesses are no longer stored")

    def dead_components(self) -> list[str]:
        """What the watchdog waits on: components that were started and have died since."""
        return [name for name, failed in (("sensor", self.sensor_failed), ("writer", self.writer_failed))
                if failed]

    def reload(self) -> bool:
        """SIGHUP: swap in a new config if it is valid; otherwise keep the old one running."""
        try:
            config = load_config(self.options.config_path)
        except ConfigError as exc:
            self.metrics.config_reloads.labels("failure").inc()
            for line in exc.errors:
                log.error("config_reload_rejected", error=line)
            return False
        except Exception as exc:  # never let a reload take the daemon down
            self.metrics.config_reloads.labels("failure").inc()
            log.error("config_reload_rejected", error=repr(exc))
            return False
        assert self.pipeline is not None
        tagger = Tagger(config)
        tagger.devices.adopt_learned(self.pipeline.tagger.devices)  # DHCP leases seen so far still hold
        self.pipeline.reconfigure(tagger)  # storage gate, the gateway's own addresses, then the tagger
        if self.sensor is not None:
            self.sensor.bypass = config.bypass_catalog  # one attribute: old or new names, never half
        from monitor.store.writer import StoreWriter, daily_upkeep

        if self.sinks is not None and isinstance(self.sinks.store, StoreWriter):
            self.sinks.store.retention_days = config.model.retention_days
            self.sinks.store.upkeep = daily_upkeep(config)  # exports folder and log periods may change
        old_model = self.config.model if self.config else None
        if old_model is not None:
            from monitor.config.listen import metrics_settings

            needs_restart = [  # the proxy's listen fields are not here: its child restarts on them now
                name for name, before, after in (
                    ("store", old_model.store, config.model.store),
                    ("listen.metrics", metrics_settings(old_model.listen),
                     metrics_settings(config.model.listen)),
                    ("capture", old_model.capture, config.model.capture),
                ) if before != after
            ]
            if needs_restart:
                log.warning("config_reload_partial", restart_needed=needs_restart,
                            detail="these sections take effect when the service restarts")
        old = self.config
        self.config = config
        proxy = self.proxy.reload(config, self._snapshot(config)) if self.proxy is not None else None
        self.metrics.config_reloads.labels("success").inc()
        log.info("config_reloaded", config=str(config.path), fingerprint=config.fingerprint[:12],
                 changed=old is None or old.fingerprint != config.fingerprint, proxy=proxy)
        return True

    def _shutdown(self) -> None:
        started = time.monotonic()
        self.stop_event.set()
        self.watchdog.stopping()
        if self.proxy is not None:
            self.proxy.stop()
        if self.live is not None:
            self.live.stop(timeout=5)
        if self.sensor_thread is not None:
            self.sensor_thread.join(timeout=5)
        if self.live is not None or self.sensor_thread is not None:
            self.metrics.up.labels("sensor").set(0)
        if self.live is not None:
            for name in self.live.names:
                self.metrics.capture_up.labels(name).set(0)
        if self.ledger is not None:
            self.ledger.stop()  # the last interval ends here: what follows is a gap until the next start
        flushed = True
        if self.sinks is not None:
            flushed = self.sinks.close(timeout=10)
            self.metrics.up.labels("writer").set(0)
        if self.ship_thread is not None:
            self.ship_thread.join(timeout=5)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        log.info("stopped", seconds=round(time.monotonic() - started, 2), flushed=flushed)


