"""`classify` (pcap files) and `sense` (live interfaces): the packet sensor's observations as JSON lines."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from monitor.errors import UserError
from monitor.observation import Observation
from monitor.tagging.catalog import default_catalog

if TYPE_CHECKING:
    from monitor.config.loader import Config

_PROGRESS_MIN_BYTES = 20 << 20  # a progress bar only for files that take a few seconds


def _given_config(config_path: str | None) -> Config | None:
    """The config named by --config, if any (named on stderr): these commands need none."""
    if not config_path:
        return None
    from monitor.commands.config_commands import load_chosen_config

    return load_chosen_config(config_path)


def _row_maker(config: Config | None, identified: bool = False
               ) -> tuple[Callable[[Observation], dict[str, Any]], Any]:
    """How an observation becomes an output row: through the core's tagger with a config (devices and
    owners under aliases unless `identified`: monitor.exports.tagged), else with the catalog's platform
    only. Returns (row maker, tagger or None)."""
    if config is not None:
        from monitor.exports.tagged import TaggedRows
        from monitor.tagging.tagger import Tagger

        tagger = Tagger(config)
        rows = TaggedRows(config, identified)
        return (lambda obs: rows.row(tagger.tag(obs))), tagger
    else:
        catalog = default_catalog()

    def row(obs: Observation) -> dict[str, Any]:
        out = obs.to_ecs()
        platform = catalog.lookup(obs.hostname)
        out["social.platform"] = platform.id if platform else None
        out["social.category"] = platform.category if platform else None
        return out

    return row, None


_TAILS_CAP = 8192  # hostnames whose platform fields are kept: memory bounded whatever the capture


def _platform_line() -> Callable[[Observation], str]:
    """The JSON line `_Writer` would print for `_row_maker(None)`'s row, built as text: the observation's
    fields (`Observation.ecs_json_head`), then the platform and category, looked up once per hostname."""
    catalog = default_catalog()
    encode = json.JSONEncoder(separators=(",", ":")).encode
    tails: dict[str, str] = {}

    def line(obs: Observation) -> str:
        host = obs.hostname
        tail = tails.get(host)
        if tail is None:
            platform = catalog.lookup(host)
            tail = (f',"social.platform":{encode(platform.id if platform else None)},'
                    f'"social.category":{encode(platform.category if platform else None)}}}\n')
            if len(tails) >= _TAILS_CAP:
                tails.clear()
            tails[host] = tail
        return obs.ecs_json_head() + tail

    return line


class _Writer:
    """JSON lines or a fixed-width table on stdout."""

    COLUMNS = (("@timestamp", 24, "TIME"), ("source.ip", 16, "CLIENT"), ("destination.ip", 16, "SERVER"),
               ("network.protocol", 5, "PROTO"), ("social.platform", 10, "PLATFORM"))

    def __init__(self, fmt: str, out: TextIO):
        self.fmt = fmt
        self.out = out
        self._encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps makes one per call
        if fmt == "table":
            head = " ".join(f"{title:<{w}}" for _name, w, title in self.COLUMNS)
            out.write(f"{head} HOSTNAME\n")

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.out.write(self._encode(row) + "\n")
            return
        host = row.get("tls.client.server_name") or row.get("dns.question.name") or row.get("url.domain")
        cells = " ".join(f"{row.get(name) or '-'!s:<{w}}" for name, w, _title in self.COLUMNS)
        self.out.write(f"{cells} {host}\n")


def _tagger_learns(tagger: Any):
    devices = getattr(tagger, "devices", None)
    if devices is None or not hasattr(devices, "learn"):
        return None
    return lambda b: devices.learn(b.ip, b.mac, hostname=b.hostname, at=b.at)


def _unwrap_sink_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Writing stdout is the sink here: a closed pipe (`| head`) must reach the CLI as itself."""
    def run(args: argparse.Namespace) -> int:
        from monitor.capture.sensor import SinkError

        try:
            return command(args)
        except SinkError as exc:
            if exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise

    return run


def classify(args: argparse.Namespace) -> int:
    from monitor.capture.sources import open_capture

    reason = None
    if args.config or args.identified:
        from monitor.exports.tagged import check_tagged

        if args.identified and not args.config:
            raise UserError("--identified names the devices and people the config's inventory gives; "
                            "add --config PATH")
        reason = check_tagged(args.identified, args.reason)
    for path in args.pcap:  # fail before any output on a missing or foreign file
        f, _magic = open_capture(path)
        f.close()
    config = _given_config(args.config)
    if config is not None and reason is not None:  # a first pass finds whom it names, logged before a row
        _log_identified_classify(args, config, reason)
    if config is None and args.format == "jsonl":  # the common case: each line written as text, no dict
        line, write = _platform_line(), sys.stdout.write
        _, problems = _read_captures(args.pcap, lambda obs: write(line(obs)), None, config)
    else:
        row, tagger = _row_maker(config, args.identified)
        writer = _Writer(args.format, sys.stdout)
        _, problems = _read_captures(args.pcap, lambda obs: writer.write(row(obs)), tagger, config)
    sys.stdout.flush()
    if problems:
        print(f"social-monitor: parse errors: {', '.join(problems)}", file=sys.stderr)
    return 0


def _read_captures(paths: list[str], emit: Callable[[Observation], object], tagger: Any,
                   config: Config | None, progress: bool = True) -> tuple[Any, list[str]]:
    """Feed every file through one sensor (each file its own capture); (the sensor, the problems met)."""
    from monitor.capture.pcap_feed import feed_file
    from monitor.capture.sensor import Sensor
    from monitor.capture.sources import ReadStats

    sensor = Sensor(emit, on_binding=_tagger_learns(tagger),
                    idle_gap=config.model.store.idle_gap_seconds if config else 300.0)
    truncated = []
    bad_times: list[str] = []
    for path in paths:
        stats = ReadStats()
        size = os.path.getsize(path)
        bar = _Progress(path, size) if progress and sys.stderr.isatty() and size >= _PROGRESS_MIN_BYTES \
            else None
        # pcap or pcapng: the common packets read in place, through the frame triage (pcap_feed.py)
        feed_file(sensor, path, stats, bar.update if bar is not None else None)
        sensor.close()  # each file is its own capture: its flows end with it
        if bar is not None:
            bar.done()
        if stats.truncated:
            truncated.append(path)
        if stats.bad_timestamps:
            bad_times.append(f"{path}: {stats.bad_timestamps} frames with a time out of range skipped")
    errors = {k: v for k, v in sensor.error_counts.items() if v}
    problems = [f"{v} {k}" for k, v in sorted(errors.items())]
    return sensor, problems + [f"{p}: truncated" for p in truncated] + bad_times


def _log_identified_classify(args: argparse.Namespace, config: Config, reason: str) -> None:
    """Tag the files once without printing, to enter in the export log whom the rows will name."""
    from monitor.exports.tagged import Inclusion, log_tagged
    from monitor.tagging.tagger import Tagger

    tagger = Tagger(config)  # a fresh tagger: the printing pass learns the same bindings in the same order
    inclusion = Inclusion()
    _read_captures(args.pcap, lambda obs: inclusion.add(tagger.tag(obs)), tagger, config, progress=False)
    entry = log_tagged(config, inclusion, command="classify", reason=reason, inputs=args.pcap,
                       shown=f"stdout (classify --config --format {args.format})")
    print(f"social-monitor: identified classify of {entry.sessions} rows, logged as export {entry.seq}",
          file=sys.stderr)


class _Progress:
    """A one-line bar on stderr, by bytes read (estimated from packets)."""

    def __init__(self, path: str, size: int):
        self.path = Path(path).name
        self.size = size
        self.started = time.monotonic()

    def update(self, packets: int) -> None:
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r{self.path}: {packets:,} packets, {elapsed:.1f}s")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")


def sense(args: argparse.Namespace) -> int:
    from monitor.capture.live import InterfaceState, LiveCapture
    from monitor.capture.ring import RingSize
    from monitor.capture.sensor import Sensor
    from monitor.exports.live_tagged import LiveStream, check_live

    reason = check_live(args.identified, args.reason, args.config)  # before anything is captured
    config = _given_config(args.config)
    interfaces_named = args.interface or (config.model.capture.interfaces if config else [])
    if not interfaces_named:
        raise UserError("sense: name at least one --interface (or capture.interfaces in the config)")
    live = None
    if config is not None and reason is not None:  # identified: logged at start and at stop
        live = LiveStream(config, list(interfaces_named), reason,
                          f"stdout (sense --config --identified --format {args.format})")
        row, tagger = live.row_maker()
    else:
        row, tagger = _row_maker(config)
    writer = _Writer(args.format, sys.stdout)

    def write(obs: Observation) -> None:
        writer.write(row(obs))
        sys.stdout.flush()

    sensor = Sensor(write, on_binding=_tagger_learns(tagger),
                    idle_gap=config.model.store.idle_gap_seconds if config else 300.0)

    def report(capture: LiveCapture) -> None:
        parts = [f"{name}: {capture.packets[name]} packets, {capture.dropped[name]} kernel drops"
                 + (f", ring full {capture.freezes[name]} times" if capture.freezes[name] else "")
                 for name in capture.names]
        errors = sum(sensor.error_counts.values())
        print(f"social-monitor sense: {'; '.join(parts)}; {errors} parse errors", file=sys.stderr, flush=True)

    def changed(state: InterfaceState) -> None:
        said = "capturing" if state.up else f"not capturing ({state.reason}: {state.detail}), retrying"
        print(f"social-monitor sense: {state.interface} {said}", file=sys.stderr, flush=True)

    capture = LiveCapture(sensor, interfaces_named, extra_filter=args.filter, use_filter=not args.no_filter,
                          stats_interval=args.stats_interval, on_stats=report, on_change=changed,
                          ring=not args.no_ring, ring_size=RingSize.of_megabytes(args.ring_mb))
    capture.open()
    methods = ", ".join(sorted(set(capture.method.values()))) or "not yet open"
    print(f"social-monitor sense: capturing on {', '.join(interfaces_named)}"
          f" ({'no pre-filter' if args.no_filter else 'kernel pre-filter'}; read by {methods})",
          file=sys.stderr, flush=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: capture.request_stop())
    if live is None:
        capture.run()
        return 0
    started = live.start()  # before the first row
    print(f"social-monitor sense: identified live stream logged as export {started.seq}; completed "
          "in the export log when it stops", file=sys.stderr, flush=True)
    try:
        capture.run()
    finally:
        done = live.complete()
        print(f"social-monitor sense: identified live stream completed as export {done.seq}: "
              f"{done.extra['rows']} rows naming {done.extra['people']} staff and "
              f"{done.extra['devices']} devices", file=sys.stderr, flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="read pcap/pcapng files and print one line per observation")
    p.add_argument("pcap", nargs="+", metavar="PCAP", help="capture files (pcap or pcapng)")
    p.add_argument("--config", default=None, help="trust config: tag with the core (zones, periods, flags); "
                   "devices and staff under aliases unless --identified")
    p.add_argument("--format", choices=("jsonl", "table"), default="jsonl", help="output format")
    p.add_argument("--identified", action="store_true", help="with --config: asset tags and staff ids "
                   "instead of aliases (needs --reason; entered in the export log)")
    p.add_argument("--reason", help="why names are needed; recorded in the export log")
    p.set_defaults(func=_unwrap_sink_errors(classify))

    s = sub.add_parser("sense", help="capture live and print one line per observation")
    s.add_argument("--interface", "-i", action="append", default=[], help="interface (repeatable)")
    s.add_argument("--config", default=None, help="trust config: tag with the core, default interfaces")
    s.add_argument("--format", choices=("jsonl", "table"), default="jsonl", help="output format")
    s.add_argument("--filter", default=None, help="extra BPF expression, ANDed with the pre-filter")
    s.add_argument("--no-filter", action="store_true", help="no kernel pre-filter (parse every packet)")
    s.add_argument("--no-ring", action="store_true",
                   help="read each packet with recvmsg instead of the memory-mapped TPACKET_V3 ring")
    s.add_argument("--ring-mb", type=int, default=64,
                   help="size of each interface's ring in MiB (kernel memory, held while capturing)")
    s.add_argument("--stats-interval", type=float, default=10.0, help="seconds between counter lines")
    s.add_argument("--identified", action="store_true", help="with --config: asset tags and staff ids "
                   "instead of aliases (needs --reason; logged in the export log at start and at stop)")
    s.add_argument("--reason", help="why names are needed; recorded in the export log")
    s.set_defaults(func=_unwrap_sink_errors(sense))
