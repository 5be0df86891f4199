"""The store writer: never blocks, counts drops, flushes, paces re-versioning, builds from config."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import yaml

from monitor.config.loader import load_config
from monitor.metrics.registry import Metrics
from monitor.observation import Exemption
from monitor.store.sqlite import open_store
from monitor.store.writer import StoreWriter, error_reason
from tests.store_helpers import CONTACT, PUPILS, T0, event


def test_writer_never_blocks_and_counts_drops(tmp_path):
    metrics = Metrics()
    writer = StoreWriter(open_store(tmp_path / "s.db"), metrics, queue_size=10)  # not started
    started = time.perf_counter()
    accepted = sum(writer.submit(event(T0 + i)) for i in range(100))
    assert time.perf_counter() - started < 1
    assert accepted == 10 and writer.dropped == 90
    assert metrics.registry.get_sample_value("social_monitor_store_queue_dropped_total") == 90
    assert writer.submit(event(T0, trust_device=False))  # refused by design, not a loss
    writer.start()
    assert writer.flush(5) and writer.close(5)
    with open_store(tmp_path / "s.db") as store:
        [s] = store.sessions()
        assert s.observations == 10


def test_writer_flush_from_another_thread(tmp_path):
    writer = StoreWriter(open_store(tmp_path / "s.db"), Metrics(), batch_size=64, max_delay=0.01).start()
    threads = [threading.Thread(target=lambda k=k: [writer.submit(event(T0 + i, device=f"T{k}"))
                                                    for i in range(500)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert writer.flush(10) and writer.close(5)
    with open_store(tmp_path / "s.db") as store:
        assert sorted(s.observations for s in store.sessions()) == [500] * 4
        assert store.verify().ok


def test_long_session_is_reversioned_at_most_once_per_interval(tmp_path):
    """More of the same waits for extend_interval; a new access or a new flag is written at once."""
    db = tmp_path / "s.db"
    writer = StoreWriter(open_store(db), Metrics(), max_delay=0.005, extend_interval=30).start()
    with open_store(db) as reader:

        def wait_for(check, seconds: float = 5.0) -> bool:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if check():
                    return True
                time.sleep(0.01)
            return False

        writer.submit(event(T0))
        assert wait_for(lambda: reader.count() == 1)
        for i in range(1, 20):  # twenty batches of more of the same
            writer.submit(event(T0 + i))
            time.sleep(0.02)
        assert reader.chain_head().record_id == 1  # held in memory, not re-versioned twenty times
        assert writer.pending == 19
        writer.submit(event(T0 + 30, flags=(PUPILS,)))  # a new flag is material
        assert wait_for(lambda: reader.chain_head().record_id == 2)
        assert reader.session(1).observations == 21 and len(reader.session(1).flags) == 2
        writer.submit(event(T0 + 31))
        assert writer.close(5)
        assert reader.session(1).observations == 22 and reader.verify().ok


@pytest.mark.parametrize(
    ("first_role", "then_role", "written_at_once"),
    [
        ("embed", "platform", True),  # the platform itself after its widgets only: material
        ("tracker", "platform", True),
        ("platform", "platform", False),  # more of the same waits for extend_interval
        ("platform", "embed", False),  # an embed seen beside the platform adds nothing to the flag
        ("embed", "embed", False),
    ],
)
def test_a_session_gaining_the_platform_role_is_rewritten_at_once(
    tmp_path, first_role: str, then_role: str, written_at_once: bool
):
    db = tmp_path / "s.db"
    writer = StoreWriter(open_store(db), Metrics(), max_delay=0.005, extend_interval=30).start()
    first, then = event(T0), event(T0 + 1)
    first.role, then.role = first_role, then_role
    with open_store(db) as reader:
        writer.submit(first)
        deadline = time.monotonic() + 5
        while reader.count() != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        writer.submit(then)
        deadline = time.monotonic() + (5 if written_at_once else 0.5)
        while reader.chain_head().record_id == 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (reader.chain_head().record_id == 2) is written_at_once
        assert writer.close(5)
        assert set(reader.session(1).roles) == {first_role, then_role}


def test_writer_from_config(tmp_path):
    folder = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", folder)
    raw = yaml.safe_load((folder / "example.yaml").read_text())
    raw["store"] = {"path": str(tmp_path / "x.db"), "idle_gap_seconds": 60, "queue_size": 50}
    (folder / "example.yaml").write_text(yaml.safe_dump(raw))
    writer = StoreWriter.from_config(load_config(folder / "example.yaml")).start()
    assert writer.store.idle_gap == 60 and writer.queue_size == 50 and writer.retention_days == 90
    writer.submit(event(T0))
    writer.submit(event(T0 + 61))
    assert writer.close(5)
    with open_store(tmp_path / "x.db") as store:
        assert store.count() == 2


def test_error_reasons_are_a_bounded_set():
    import sqlite3

    assert error_reason(sqlite3.OperationalError("database or disk is full")) == "disk_full"
    assert error_reason(sqlite3.OperationalError("database is locked")) == "locked"
    assert error_reason(sqlite3.DatabaseError("database disk image is malformed")) == "corrupt"
    assert error_reason(sqlite3.OperationalError("disk I/O error")) == "io"
    assert error_reason(OSError(28, "No space left on device")) == "io"
    assert error_reason(ValueError("surprise")) == "other"


def _config_with_store(tmp_path: Path, db: Path):
    folder = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", folder)
    raw = yaml.safe_load((folder / "example.yaml").read_text())
    raw["store"] = {"path": str(db)}
    (folder / "example.yaml").write_text(yaml.safe_dump(raw))
    return load_config(folder / "example.yaml")


def _damage_pages(db: Path) -> None:
    from tests.damaged_store import overwrite_pages

    overwrite_pages(db)


def _damage_wal(db: Path) -> None:
    from tests.damaged_store import break_frame, commit_frames

    break_frame(db, commit_frames(db)[5])


@pytest.mark.parametrize("damage", [_damage_pages, _damage_wal], ids=["pages mid-file", "WAL frame"])
def test_writer_on_a_damaged_store_writes_nothing_counts_and_lives(tmp_path, damage):
    from tests.damaged_store import crashed_with_wal, digest

    db = crashed_with_wal(tmp_path / "s.db")
    damage(db)
    files = [db, Path(f"{db}-wal")]
    before = digest(*files)
    metrics = Metrics()
    writer = StoreWriter.from_config(_config_with_store(tmp_path, db), metrics)
    writer.max_delay = 0.01
    writer.start()
    assert all(writer.submit(event(T0 + 10**7 + i, device=f"NEW{i}")) for i in range(30))
    started = time.monotonic()
    assert not writer.flush(5)  # at once: what cannot be stored is settled, not waited for, and said
    assert time.monotonic() - started < 4
    assert writer.damaged and writer._thread.is_alive() and writer.discarded == 30
    value = metrics.registry.get_sample_value
    assert value("social_monitor_store_damaged") == 1
    assert value("social_monitor_store_write_errors_total", {"reason": "corrupt"}) >= 2
    assert value("social_monitor_store_writes_total") == 0
    assert value("social_monitor_store_queue_dropped_total") == 0  # taken and counted, not dropped
    assert not writer.close(5)  # events were left unwritten: said
    assert digest(*files) == before  # not a byte written to the damaged files, not even on close


def test_writer_stops_writing_when_damage_appears_while_it_runs(tmp_path):
    """The sensor and the proxy write one file: the other process's commit makes this writer read
    the damaged pages again, its next write meets them, and it stops there."""
    import sqlite3

    from tests.damaged_store import digest, fill, overwrite_pages

    db = tmp_path / "s.db"
    fill(db, 400)
    metrics = Metrics()
    writer = StoreWriter(open_store(db), metrics, max_delay=0.01).start()
    writer.submit(event(T0, device="D00000"))
    assert writer.flush(5) and not writer.damaged
    overwrite_pages(db, 0.05, 0.95)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("INSERT INTO store_meta (name, value) VALUES ('probe', '1')")
    other.close()
    deadline = time.monotonic() + 10
    i = 0
    while not writer.damaged and time.monotonic() < deadline:
        writer.submit(event(T0 + 400 * (i % 400), device=f"D{i % 400:05d}"))
        writer.flush(1)
        i += 1
    assert writer.damaged, "the writer never met the damage"
    files = [db, Path(f"{db}-wal")]
    before = digest(*files)
    for k in range(50):
        writer.submit(event(T0 + k, device=f"LATE{k}"))
    writer.flush(5)
    assert writer._thread.is_alive() and writer.discarded >= 50
    assert metrics.registry.get_sample_value("social_monitor_store_damaged") == 1
    writer.close(5)
    assert digest(*files) == before


GAP = 300  # open_store's default idle gap


def accesses(metrics_list: list[Metrics], name: str = "social_monitor_accesses_total") -> float:
    return sum(s.value for m in metrics_list for family in m.registry.collect() for s in family.samples
               if s.name == name)


@pytest.mark.parametrize(
    ("steps", "expected", "flagged"),
    [
        # (which writer, events): writer 0 stands for the sensor's process, writer 1 for the proxy's
        ([(0, [event(T0)])], 1, 1),
        ([(0, [event(T0), event(T0 + 0.01, protocol="http"), event(T0 + 0.02, source="proxy")])], 1, 1),
        # the sensor commits first, the proxy's observation of the same access merges into its row
        ([(0, [event(T0)]), (1, [event(T0 + 0.02, source="proxy")])], 1, 1),
        # ...and the other way round
        ([(1, [event(T0 + 0.02, source="proxy")]), (0, [event(T0, protocol="dns")])], 1, 1),
        # after the idle gap: a second access, whichever process sees it
        ([(0, [event(T0)]), (1, [event(T0 + GAP + 1, source="proxy")])], 2, 2),
        # another platform, another access
        ([(0, [event(T0)]), (1, [event(T0 + 1, platform="tiktok", source="proxy")])], 2, 2),
        # exempt: an access, not flagged
        ([(0, [event(T0, exemption=Exemption("professional", "4.1"))])], 1, 0),
        # two flags on one access: one access, two flagged counts (one per flag)
        ([(0, [event(T0, flags=(CONTACT, PUPILS))])], 1, 2),
        # never stored, so never counted here (the pipeline counts those)
        ([(0, [event(T0, trust_device=False)])], 0, 0),
    ],
)
def test_each_new_session_row_is_one_access_across_writers(tmp_path, steps, expected, flagged):
    db = tmp_path / "s.db"
    metrics = [Metrics(), Metrics()]
    writers = [StoreWriter(open_store(db), m, max_delay=0.005).start() for m in metrics]
    try:
        for which, events in steps:
            for e in events:
                writers[which].submit(e)
            assert writers[which].flush(5)
    finally:
        for w in writers:
            w.close(5)
    assert accesses(metrics) == expected
    assert accesses(metrics, "social_monitor_flagged_accesses_total") == flagged
    with open_store(db) as store:
        assert store.count() == expected  # the metric and the store agree on the unit


def test_a_commit_that_failed_and_was_retried_counts_once(tmp_path):
    db = tmp_path / "s.db"
    metrics = Metrics()
    store = open_store(db)
    real = store.write_sessions
    calls = []

    def flaky(segments, now=None):
        calls.append(len(segments))
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(segments, now)

    store.write_sessions = flaky  # type: ignore[method-assign]
    writer = StoreWriter(store, metrics, max_delay=0.005, retry_initial=0.01).start()
    writer.submit(event(T0))
    assert writer.flush(5) and writer.close(5)
    assert len(calls) == 2
    assert accesses([metrics]) == 1
    with open_store(db) as check:
        assert check.count() == 1


def test_the_writer_says_it_counts_what_it_stores(tmp_path):
    assert StoreWriter(open_store(tmp_path / "s.db"), Metrics()).counts_accesses is True


def test_the_daily_purge_keeps_held_sessions_and_expires_old_exports(tmp_path):
    """The daemon's own purge path: a legal hold keeps its sessions, an old export folder goes (one
    under a held case stays), and the export log says so."""
    import json

    from monitor.exports.log import log_path_for, read_log
    from monitor.store import holds

    db = tmp_path / "var" / "store.db"
    with open_store(db) as store:  # T0 is long past a 30-day retention by the real clock
        store.write([event(T0, device="OAK-0001"), event(T0 + 9000, device="OAK-0002")])
        store.in_transaction(lambda con, start, now: holds.place(
            con, start, now, case="C1", scope="device", target="OAK-0001", reason="r", by="dpo"))
    for name, kind, case in (("weekly", "export", None), ("inv-held", "investigation", "C1"),
                             ("inv-done", "investigation", "C0")):
        folder = tmp_path / "var" / "exports" / name
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({
            "format": "social-monitor-export", "kind": kind, "case": case,
            "created_at": "2026-01-05T10:00:00Z"}))
    config = _config_with_store(tmp_path, db)
    raw = yaml.safe_load(config.path.read_text())
    raw["retention_days"] = 30
    config.path.write_text(yaml.safe_dump(raw))
    writer = StoreWriter.from_config(load_config(config.path)).start()
    deadline = time.monotonic() + 20
    while (tmp_path / "var" / "exports" / "weekly").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the writer purges in its first pass, then daily
    assert writer.close(10)
    with open_store(db, create=False) as store:
        assert [s.device for s in store.sessions()] == ["OAK-0001"]
    assert sorted(p.name for p in (tmp_path / "var" / "exports").iterdir()) == ["inv-held"]
    expired = [x for x in read_log(log_path_for(db)).entries if x.kind == "expired"]
    assert len(expired) == 1 and len(expired[0].extra["removed"]) == 2
