"""`social-monitor run`: the sensor, the proxy, the store writer and the metrics endpoint.

One process owns the packet sensor (a thread reading live interfaces, or a
capture file), the store writer thread and the metrics endpoint. The proxy
runs as a supervised child process (mitmdump with the addon, `monitor/proxy/launcher.py`):
a proxy that crashes or leaks must not take the sensor or the store down with
it, and a child is restarted with back-off and counted. Both processes write
to the same store (SQLite in WAL mode, one transaction per batch) and count
into the same metrics (prometheus-client's multi-process mode), so the
endpoint shows one picture.

Signals: SIGTERM/SIGINT stop capture, stop the proxy, flush the writer's
queue, close the store and exit 0. SIGHUP reloads the config: a broken one is
rejected with its field-path errors (the old one keeps running) and counted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from monitor import __version__
from monitor.config.loader import Config, load_config
from monitor.errors import ConfigError, UserError
from monitor.metrics.registry import Metrics, SensorMetrics, exposition_registry
from monitor.metrics.server import MetricsServer, load_basic_auth
from monitor.sinks import SinkSet, open_sinks
from monitor.tagging.pipeline import Pipeline
from monitor.tagging.tagger import Tagger

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


class Backoff:
    """Restart delays for a crashing child: 1, 2, 4 ... 60 s, reset after a minute of health."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, healthy_after: float = 60.0):
        self.initial, self.maximum, self.healthy_after = initial, maximum, healthy_after
        self.delay = initial

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= self.healthy_after:
            self.delay = self.initial
        delay = self.delay
        self.delay = min(self.delay * 2, self.maximum)
        return delay


class ProxyChild:
    """mitmdump with the addon, restarted with back-off when it exits unasked."""

    def __init__(self, options: RunOptions, config: Config, metrics: Metrics, config_file: Path):
        self.options = options
        self.config = config
        self.config_file = config_file  # the daemon's snapshot of the last valid config
        self.metrics = metrics
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.restart_at: float | None = None
        self.backoff = Backoff()
        self.restarts = 0
        self.running_command: list[str] = []

    def command(self) -> list[str]:
        from monitor.proxy.launcher import proxy_arguments

        listen = self.options.proxy_listen or self.config.model.listen.proxy
        mode = self.config.model.listen.proxy_mode
        # mitmdump with the addon built in (monitor/proxy/launcher.py says why not `mitmdump -s`)
        return [sys.executable, "-m", "monitor.proxy.launcher", "--quiet",
                *proxy_arguments(listen, mode, self.config_file)]

    def start(self) -> None:
        cmd = self.running_command = self.command()
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        self.started_at = time.monotonic()
        self.restart_at = None
        self.metrics.up.labels("proxy").set(1)
        log.info("proxy_started", pid=self.process.pid, listen=cmd[cmd.index("--listen-host") + 1] + ":" +
                 cmd[cmd.index("--listen-port") + 1], mode=self.config.model.listen.proxy_mode)

    def supervise(self) -> None:
        """Called from the main loop: notice a dead child, restart it when its back-off is over."""
        now = time.monotonic()
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            forget_process(self.process.pid)
            ran_for = now - self.started_at
            delay = self.backoff.next_delay(ran_for)
            self.metrics.up.labels("proxy").set(0)
            log.error("proxy_exited", code=code, ran_seconds=round(ran_for, 1), restart_in=delay)
            self.process = None
            self.restart_at = now + delay
        if self.process is None and self.restart_at is not None and now >= self.restart_at:
            self.restarts += 1
            self.metrics.child_restarts.labels("proxy").inc()
            self.start()

    def reload(self, config: Config, config_file: Path) -> None:
        """A new config: SIGHUP, and the child's addon swaps it in while the proxy keeps serving.

        Only a change of listen address or mode restarts the child (a brief gap
        in proxy service); a child waiting to be restarted reads the new one."""
        self.config = config
        self.config_file = config_file
        if self.process is None:
            return  # in back-off: it starts on the new config
        if self.process.poll() is None and self.command() == self.running_command:
            self.process.send_signal(signal.SIGHUP)
            log.info("proxy_reload_signalled", pid=self.process.pid)
            return
        self.stop()
        self.start()

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.process = self.process, None
        self.restart_at = None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        forget_process(proc.pid)
        self.metrics.up.labels("proxy").set(0)


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
        self.live = None  # monitor.capture.live.LiveCapture, when capturing live
        self.runtime_dir: Path | None = None
        self.snapshots = 0
        self.sensor_failed = False
        self.proxy: ProxyChild | None = None
        self.metrics_server: MetricsServer | None = None
        self.sensor_stats: dict[str, int] = {}

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
        log.info("config_loaded", config=str(config.path), config_source=self.options.config_source,
                 trust=config.trust.name,
                 fingerprint=config.fingerprint[:12], schools=len(config.schools),
                 devices=len(config.devices), platforms=len(config.catalog))
        self._install_signals()
        self.metrics.declare_known_series()
        try:
            self._start_store(config)
            tagger = Tagger(config)
            self.pipeline = Pipeline(tagger, sink=self.sinks, metrics=self.metrics)
            self._start_metrics(config)
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
                self.proxy = ProxyChild(self.options, config, self.metrics, self._snapshot(config))
                self.proxy.start()
        except UserError as exc:
            log.error("start_failed", error=str(exc))
            print(f"social-monitor: {exc}", file=sys.stderr)
            self._shutdown()
            return 1
        log.info("running", config=str(config.path), config_source=self.options.config_source,
                 metrics=self._metrics_address(), proxy=bool(self.proxy),
                 sensor=self.sensor_thread is not None or self.live is not None)
        while not self.stop_event.is_set():
            self.stop_event.wait(0.2)
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            if self.proxy is not None:
                self.proxy.supervise()
            self._check_sensor()
        self._shutdown()
        return 0

    def _metrics_address(self) -> str | None:
        if self.metrics_server is None:
            return None
        host = self.metrics_server.httpd.server_address[0]
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

        sensor = Sensor(pipeline.submit, learn, SensorMetrics(self.metrics))
        if self.options.pcap:
            self.sensor_thread = threading.Thread(target=self._guard_sensor,
                                                  args=(self._read_files, sensor, self.options.pcap),
                                                  name="sensor", daemon=True)
            self.sensor_thread.start()
        else:
            from monitor.capture.live import LiveCapture

            names = self.options.interfaces if self.options.interfaces is not None \
                else config.model.capture.interfaces
            self.live = LiveCapture(sensor, names or [default_interface()])
            self.live.start()  # opens the interfaces here, so a failure reaches run()
            log.info("capture_started", interfaces=self.live.names)
        self.metrics.up.labels("sensor").set(1)

    def _guard_sensor(self, target, *args) -> None:
        try:
            target(*args)
        except Exception as exc:  # the sensor is down: say so loudly, keep the rest serving
            log.error("sensor_failed", error=repr(exc))
            self.metrics.up.labels("sensor").set(0)

    def _read_files(self, sensor, paths: list[Path]) -> None:
        from monitor.capture.sources import read_frames

        for path in paths:
            packets = 0
            for ts, linktype, frame in read_frames(path):
                if self.stop_event.is_set():
                    return
                sensor.feed(ts, linktype, frame)
                packets += 1
            self.metrics.packets.labels(f"file:{Path(path).name}"[:64]).inc(packets)
            log.info("capture_file_read", file=str(path), packets=packets,
                     parse_errors=sum(sensor.error_counts.values()))

    def _snapshot(self, config: Config) -> Path:
        """Freeze a valid config for the proxy child: if the file on disk is later saved broken
        (and its reload rejected), a child restarted after a crash still starts.

        Each snapshot is a new folder; `current` is a symlink swapped atomically to
        the newest, so the child's path never changes and a SIGHUP makes it re-read."""
        if self.runtime_dir is None:
            self.runtime_dir = Path(tempfile.mkdtemp(prefix="social-monitor-run-"))
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
            log.error("sensor_failed", error=repr(live.error))

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
        from monitor.store.writer import StoreWriter

        if self.sinks is not None and isinstance(self.sinks.store, StoreWriter):
            self.sinks.store.retention_days = config.model.retention_days
        old_model = self.config.model if self.config else None
        if old_model is not None:
            needs_restart = [
                name for name, before, after in (
                    ("store", old_model.store, config.model.store),
                    ("listen", old_model.listen, config.model.listen),
                    ("capture", old_model.capture, config.model.capture),
                ) if before != after
            ]
            if needs_restart:
                log.warning("config_reload_partial", restart_needed=needs_restart,
                            detail="these sections take effect when the service restarts")
        old = self.config
        self.config = config
        if self.proxy is not None:
            self.proxy.reload(config, self._snapshot(config))
        self.metrics.config_reloads.labels("success").inc()
        log.info("config_reloaded", config=str(config.path), fingerprint=config.fingerprint[:12],
                 changed=old is None or old.fingerprint != config.fingerprint)
        return True

    def _shutdown(self) -> None:
        started = time.monotonic()
        self.stop_event.set()
        if self.proxy is not None:
            self.proxy.stop()
        if self.live is not None:
            self.live.stop(timeout=5)
        if self.sensor_thread is not None:
            self.sensor_thread.join(timeout=5)
        if self.live is not None or self.sensor_thread is not None:
            self.metrics.up.labels("sensor").set(0)
        flushed = True
        if self.sinks is not None:
            flushed = self.sinks.close(timeout=10)
            self.metrics.up.labels("writer").set(0)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        log.info("stopped", seconds=round(time.monotonic() - started, 2), flushed=flushed)


def forget_process(pid: int) -> None:
    """A dead child's live gauges (queue depth, component up) must leave the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def default_interface() -> str:
    """The interface of the default route (a newcomer's laptop: its Wi-Fi or Ethernet)."""
    try:
        with open("/proc/net/route") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "00000000":
                    return fields[0]
    except OSError:
        pass
    return "lo"
