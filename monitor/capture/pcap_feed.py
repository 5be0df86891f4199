"""A classic pcap file fed to a `Sensor` straight from 4 MB blocks, each record read in place.

`feed_file` takes either format: a pcapng file goes to `pcapng_feed.py`.

Each block is read into one reused buffer and its records handed to the
frame triage (`triage.py`): only a frame whose few deciding bytes say it can
matter is sliced and handed to `Sensor.feed`; the others only move their
flow's life. The output is the same as feeding every frame:
`tests/capture/test_pcap_feed.py` checks it on the shared captures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from monitor.capture.pcapng_feed import feed_pcapng
from monitor.capture.sensor import Sensor
from monitor.capture.sources import PCAP_MAGICS, ReadBuffer, ReadStats, open_capture, pcap_header
from monitor.capture.triage import Triage


def feed_file(sensor: Sensor, path: str | Path, stats: ReadStats,
              progress: Callable[[int], None] | None = None, stop: threading.Event | None = None) -> None:
    """Feed every frame of the pcap or pcapng file at `path` to `sensor` through the triage; `progress`
    gets the frames read so far after each 4 MB block, and `stop`, once set, ends the reading there."""
    f, magic = open_capture(path)
    if magic in PCAP_MAGICS:
        feed_pcap(sensor, f, magic, stats, progress, stop)
    else:
        feed_pcapng(sensor, f, stats, progress, stop)


def feed_pcap(sensor: Sensor, f: BinaryIO, magic: bytes, stats: ReadStats,
              progress: Callable[[int], None] | None = None, stop: threading.Event | None = None) -> None:
    """Feed every record of the pcap `f` (its 4-byte `magic` already read) to `sensor`; closes `f`.

    The same records as `sources.read_frames`, the same `stats` (frames, a truncated tail)."""
    try:
        _feed(sensor, f, magic, stats, progress, stop)
    finally:
        f.close()


def _feed(sensor: Sensor, f: BinaryIO, magic: bytes, stats: ReadStats,
          progress: Callable[[int], None] | None, stop: threading.Event | None) -> None:
    opened = pcap_header(f, magic, stats)
    if opened is None:
        return
    order, tick, linktype = opened
    records = Triage(sensor).records
    big_endian = order == ">"
    reader = ReadBuffer(f)
    pos = 0  # records from `pos` on are still to read
    packets_before = sensor.packets  # `feed` and the triage count the frames they are given
    try:
        while True:
            got = reader.refill(pos)
            if not got:
                break
            if stop is not None and stop.is_set():
                return
            if progress is not None:
                progress(sensor.packets - packets_before)
            pos = records(reader.buf, 0, reader.n, big_endian, tick, linktype)
            if pos < 0:  # a record longer than any capture holds: the file is damaged from there
                stats.truncated = True
                return
        stats.truncated = reader.n > 0
    finally:
        reader.release()
        stats.frames = sensor.packets - packets_before
