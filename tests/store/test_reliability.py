"""Reliability with real processes and real files: kill -9, a full disk, two writers and a reader."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.metrics.registry import Metrics
from monitor.store.filter import SessionFilter
from monitor.store.sqlite import open_store
from monitor.store.writer import StoreWriter
from tests.store_helpers import T0, event

PROC = Path(__file__).resolve().parents[1] / "store_proc.py"


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(PROC), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.integration
def test_kill_9_mid_burst_loses_nothing_committed(tmp_path):
    db = tmp_path / "s.db"
    proc = spawn("burst", str(db), "--chunk-size", "50")
    committed: list[int] = []
    deadline = time.monotonic() + 30
    try:
        assert proc.stdout is not None
        while len(committed) < 20 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed.append(int(line.split()[1]))
        time.sleep(0.05)  # let it get into the middle of the next chunk
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert len(committed) >= 20, proc.stderr.read() if proc.stderr else ""
    with open_store(db) as store:
        assert store.verify().ok
        stored = {s.device: s.observations for s in store.sessions()}
    for chunk in committed:
        assert stored[f"D{chunk:06d}"] == 50


@pytest.mark.integration
def test_two_writers_and_a_reader(tmp_path):
    """Sensor and proxy processes write the same accesses at once; a reader lists and verifies."""
    db = tmp_path / "s.db"
    open_store(db).close()  # create the schema once, as the daemon does at start
    events, devices = 3000, 20
    writers = [spawn("steady", str(db), "--source", source, "--events", str(events),
                     "--devices", str(devices), "--batch-size", "50") for source in ("sensor", "proxy")]
    reads, problems = 0, []
    with open_store(db) as reader:
        deadline = time.monotonic() + 60
        while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
            list(reader.sessions(SessionFilter(school="oak-primary", flagged=True)))
            result = reader.verify()
            if not result.ok:
                problems.append(result.problem)
            reads += 1
    outputs = [w.communicate(timeout=30) for w in writers]
    for w, (out, err) in zip(writers, outputs, strict=True):
        assert w.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err
        assert out.strip() == f"done {events} 0"
    assert not problems and reads > 0
    with open_store(db) as store:
        assert store.verify().ok
        sessions = list(store.sessions())
    assert sum(s.observations for s in sessions) == 2 * events
    # every device's access is one session carrying both sources' signals
    assert len(sessions) == devices
    assert all(s.signals == ("http", "proxy") or set(s.signals) >= {"tls", "proxy"} for s in sessions)


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, timeout=10)
    return done.returncode == 0


@pytest.mark.integration
def test_full_disk_counts_keeps_running_and_resumes(tmp_path):
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "3m"):
        pytest.skip("needs root and mount to create a small tmpfs")
    try:
        ballast = mnt / "ballast"
        ballast.write_bytes(b"\0" * 2_000_000)  # removed later: the space that "returns"
        metrics = Metrics()
        writer = StoreWriter(open_store(mnt / "s.db"), metrics, queue_size=20000, batch_size=200,
                             max_delay=0.01, retry_initial=0.05, retry_max=0.2).start()
        for i in range(50):
            writer.submit(event(T0 + i, device=f"EARLY{i:03d}"))
        assert writer.flush(10)
        full = lambda: metrics.registry.get_sample_value(  # noqa: E731
            "social_monitor_store_write_errors_total", {"reason": "disk_full"}) or 0
        submitted = 50
        deadline = time.monotonic() + 30
        while not full() and time.monotonic() < deadline:
            for _ in range(100):
                writer.submit(event(T0 + submitted, device=f"LATE{submitted:05d}",
                                    hostname=f"h{submitted}-{'x' * 40}.facebook.com"))
                submitted += 1
            time.sleep(0.01)
        assert full() > 0, "the disk never filled"
        deadline = time.monotonic() + 20
        while full() < 3 and time.monotonic() < deadline:  # the daemon keeps running and receiving
            for _ in range(10):
                writer.submit(event(T0 + submitted, device=f"LATE{submitted:05d}",
                                    hostname=f"h{submitted}-{'x' * 40}.facebook.com"))
                submitted += 1
            time.sleep(0.05)
        assert full() >= 3 and writer._thread.is_alive()
        with open_store(mnt / "s.db", create=False) as reader:  # nothing earlier is lost
            assert {f"EARLY{i:03d}" for i in range(50)} <= {s.device for s in reader.sessions()}
        ballast.unlink()
        assert writer.flush(20), writer.last_error
        assert writer.close(5)
        with open_store(mnt / "s.db") as store:
            assert store.verify().ok
            assert sum(s.observations for s in store.sessions()) == submitted
        assert metrics.registry.get_sample_value("social_monitor_store_queue_dropped_total") == 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)
