"""Store-and-forward on a real PostgreSQL server: concurrent gateways, a server restart, SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from monitor.store.postgres.central import CentralStore
from monitor.store.postgres.shipper import ShipMetrics, Shipper, ShipRefused
from monitor.store.sqlite import SQLiteSessionStore
from tests import pg_server as pg
from tests.central_helpers import central_db, fill, local_records
from tests.store_helpers import T0, event

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def assert_central_equals(pg_server, name, gateway, store_path):
    """The central copy of a gateway is its local chain exactly: every record once, sessions alike."""
    local = local_records(store_path)
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        central = list(admin.records(gateway))
        assert [r[0] for r in central] == [r[0] for r in local]  # no loss, no duplicate, in order
        assert [r[7] for r in central] == [r[7] for r in local]
        assert admin.verify_gateway(gateway) == (len(local), None)
        with SQLiteSessionStore(store_path, create=False) as store:
            assert admin.count("sessions", gateway) == store.count()


def test_ship_once_reports_the_lag_and_sets_the_metrics(pg_server, tmp_path):
    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    head = fill(store, 30)
    registry = CollectorRegistry()
    later = local_records(store)[-1][3] + 100.0  # records carry the wall-clock time they were written
    clock = lambda: later  # noqa: E731
    shipper = Shipper(store, pg_server.dsn(roles["oak"], name), "oak", batch_size=7,
                      metrics=ShipMetrics(registry), clock=clock)
    partial = shipper.ship_once(max_batches=2)
    assert (partial.sent, partial.central.record_id, partial.lag_records) == (14, 14, head - 14)
    oldest_waiting = local_records(store)[14][3]
    assert partial.lag_seconds == pytest.approx(clock() - oldest_waiting)
    assert registry.get_sample_value("social_monitor_ship_lag_records") == head - 14
    done = shipper.ship_once()
    assert (done.sent, done.lag_records, done.lag_seconds) == (head - 14, 0, 0.0)
    assert registry.get_sample_value("social_monitor_ship_lag_seconds") == 0.0
    assert registry.get_sample_value("social_monitor_ship_records_total") == head
    shipper.close()
    assert_central_equals(pg_server, name, "oak", store)


@pytest.mark.integration
def test_three_gateways_ship_concurrently_and_the_central_store_is_their_union(pg_server, tmp_path):
    gateways = ["oak", "elm", "ash"]
    name, roles = central_db(pg_server, gateways)
    stores = {g: tmp_path / f"{g}.db" for g in gateways}
    for i, g in enumerate(gateways):
        fill(stores[g], 300, device=g.upper(), start=T0 + i * 5_000_000)  # months apart: other partitions
    errors: list[BaseException] = []

    def ship(gateway: str) -> None:
        try:
            dsn = pg_server.dsn(roles[gateway], name)
            with_shipper = Shipper(stores[gateway], dsn, gateway, batch_size=37)
            with_shipper.ship_once()
            with_shipper.close()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=ship, args=(g,)) for g in gateways]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for g in gateways:
        assert_central_equals(pg_server, name, g, stores[g])
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        assert admin.count("sessions") == 900  # `SELECT count(*) FROM sessions`: one row per session
        assert admin.count("records") == sum(len(local_records(p)) for p in stores.values())


@pytest.mark.integration
def test_the_server_stops_and_returns_while_the_gateway_keeps_recording(tmp_path):
    reason = pg.missing_reason()
    if reason:
        pytest.skip(reason)
    server = pg.start_server()  # its own server: this test stops it
    try:
        name, roles = central_db(server, ["oak"])
        store = tmp_path / "oak.db"
        fill(store, 50)
        shipper = Shipper(store, server.dsn(roles["oak"], name), "oak", batch_size=20)
        stop = threading.Event()
        thread = threading.Thread(target=shipper.run, args=(stop,),
                                  kwargs={"interval": 0.2, "max_backoff": 1.0})
        thread.start()
        _wait(lambda: _central_seq(server, name) == 100)
        server.stop("immediate")  # the link or the server goes away mid-stream
        with SQLiteSessionStore(store) as local:  # the gateway keeps recording meanwhile
            for i in range(40):
                local.write([event(T0 + 100_000 + i * 400.0, device=f"LATE-{i}")])
        time.sleep(1.5)
        server.start()
        _wait(lambda: _central_seq(server, name) == 140)
        stop.set()
        thread.join(30)
        assert not thread.is_alive()
        assert_central_equals(server, name, "oak", store)
    finally:
        pg.remove_server(server)


@pytest.mark.integration
def test_a_shipper_killed_mid_batch_again_and_again_loses_and_repeats_nothing(pg_server, tmp_path):
    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    head = fill(store, 3000, per_write=500)
    dsn = pg_server.dsn(roles["oak"], name)
    env = {**os.environ, "PYTHONPATH": REPO}
    rng = random.Random(21)
    progress = []
    for _ in range(6):
        argv = [sys.executable, "-m", "tests.central_ship_proc", str(store), dsn, "oak", "150"]
        child = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        progress.append(_central_seq(pg_server, name))
    assert progress[0] < head, "the first shipper finished before it was killed: nothing was tested"
    assert progress == sorted(progress)
    Shipper(store, dsn, "oak").ship_once()
    assert _central_seq(pg_server, name) == head
    assert_central_equals(pg_server, name, "oak", store)


def test_a_rewritten_gateway_store_is_refused_not_shipped(pg_server, tmp_path):
    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    fill(store, 10)
    dsn = pg_server.dsn(roles["oak"], name)
    Shipper(store, dsn, "oak").ship_once()
    store.unlink()
    fill(store, 12, device="FORGED")  # a whole new file under the same name: a longer, different chain
    with pytest.raises(ShipRefused, match="record 20 differs from the one the central store received"):
        Shipper(store, dsn, "oak").ship_once()
    store.unlink()
    fill(store, 3)
    with pytest.raises(ShipRefused, match=r"holds records up to 20 .* chain ends at 6"):
        Shipper(store, dsn, "oak").ship_once()


def test_nothing_recorded_yet_is_nothing_to_ship(pg_server, tmp_path):
    name, roles = central_db(pg_server, ["oak"])
    report = Shipper(tmp_path / "absent.db", pg_server.dsn(roles["oak"], name), "oak").ship_once()
    assert (report.sent, report.lag_records) == (0, 0)
    assert not (tmp_path / "absent.db").exists()


def _central_seq(server, name) -> int:
    with CentralStore(server.dsn(dbname=name)) as admin:
        return admin.cursor("oak").last.record_id


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # the server is coming back
            pass
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_gateway_that_purged_ships_its_purge_record_and_stays_verifiable(pg_server, tmp_path):
    """Shipped, then purged (a chained purge record with session id 0), then shipped again."""
    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    fill(store, 20)
    shipper = Shipper(store, pg_server.dsn(roles["oak"], name), "oak", batch_size=50)
    shipper.ship_once()
    with SQLiteSessionStore(store) as local:
        purged = local.purge(retention_days=1, now=T0 + 20 * 400.0 + 86400 * 3)
        assert purged.sessions_removed == 20
    fill(store, 5, start=T0 + 86400 * 4, device="NEW")
    result = shipper.ship_once()
    shipper.close()
    assert result.lag_records == 0
    local = local_records(store)
    assert [r[1] for r in local].count(0) == 1  # the purge is one chained record of session 0
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        # every record ever written, the ones the gateway has since compacted away included
        assert admin.verify_gateway("oak") == (local[-1][0], None)
        assert admin.count("sessions", "oak") == 25  # the central keeps what the gateway purged


@pytest.mark.parametrize(
    ("batches", "removed_first"),
    [
        (0, 0),  # connected, nothing sent yet: the purge keeps every session
        (1, 7),  # one batch of 7 taken: those 7 sessions may go, the other 23 wait
        (3, 21),
        (None, 30),  # all shipped: all go
    ],
    ids=["nothing shipped", "one batch", "three batches", "all shipped"],
)
def test_local_purge_never_loses_what_the_central_store_has_not_taken(pg_server, tmp_path, batches,
                                                                       removed_first):
    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    fill(store, 30, extend=False)  # 30 old sessions, one record each
    later = T0 + 400 * 86400.0
    shipper = Shipper(store, pg_server.dsn(roles["oak"], name), "oak", batch_size=7)
    shipper.ship_once(max_batches=batches)
    with SQLiteSessionStore(store) as local:
        first = local.purge(retention_days=10, now=later)
        assert (first.sessions_removed, first.records_removed) == (removed_first, removed_first)
        assert local.count() == 30 - removed_first
        assert local.verify().ok
    shipper.ship_once()  # the rest, the purge record with it
    with SQLiteSessionStore(store) as local:
        assert local.purge(retention_days=10, now=later + 1).sessions_removed == 30 - removed_first
        assert local.count() == 0
    shipper.ship_once()
    shipper.close()
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        central = list(admin.records("oak"))
        # every session reached the central store with its content before the gateway let it go
        assert sum(1 for r in central if r[1] != 0 and r[4] is not None) == 30
        assert admin.count("sessions", "oak") == 30
        assert admin.verify_gateway("oak")[1] is None


@pytest.mark.parametrize(("shipped_before", "waiting"), [(0, 40), (2, 26), (None, 0)],
                         ids=["never reached", "two batches then down", "all shipped then down"])
def test_the_lag_keeps_growing_while_the_central_store_is_unreachable(pg_server, tmp_path, shipped_before,
                                                                      waiting):
    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    fill(store, 20)  # 40 records
    if shipped_before != 0:
        Shipper(store, pg_server.dsn(roles["oak"], name), "oak", batch_size=7).ship_once(shipped_before)
    registry = CollectorRegistry()
    clock = lambda: time.time() + 86400.0  # noqa: E731
    down = Shipper(store, f"host={tmp_path} port=1 user=oak dbname=x connect_timeout=1", "oak",
                   metrics=ShipMetrics(registry), clock=clock)
    stop = threading.Event()
    runner = threading.Thread(target=down.run, args=(stop,), kwargs={"interval": 0.01, "max_backoff": 0.05})
    runner.start()
    deadline = time.monotonic() + 20
    while registry.get_sample_value("social_monitor_ship_failures_total") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    runner.join(10)
    assert registry.get_sample_value("social_monitor_ship_lag_records") == waiting
    lag_seconds = registry.get_sample_value("social_monitor_ship_lag_seconds")
    assert (lag_seconds > 80000) == bool(waiting)  # a day after the records were written


def test_a_legal_hold_ships_as_a_chained_record_and_its_sessions_stay_on_the_gateway(pg_server, tmp_path):
    """A hold and its release are session-0 records: the central store takes them, verifies its copy,
    keeps sessions as before; the gateway's purge keeps what the hold covers until released."""
    from monitor.store import holds

    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    fill(store, 10)
    with SQLiteSessionStore(store) as local:
        local.in_transaction(lambda con, start, now: holds.place(
            con, start, now, case="INV-1", scope="device", target="OAK-0003", reason="r", by="dpo"))
    shipper = Shipper(store, pg_server.dsn(roles["oak"], name), "oak", batch_size=50)
    shipper.ship_once()
    with SQLiteSessionStore(store) as local:
        kept = local.purge(retention_days=1, now=T0 + 86400 * 5)
        assert (kept.sessions_removed, kept.held) == (9, {"INV-1": 1})
        local.in_transaction(lambda con, start, now: holds.release(
            con, start, now, case="INV-1", reason="done", by="dpo"))
        assert local.purge(retention_days=1, now=T0 + 86400 * 6).sessions_removed == 1
    assert shipper.ship_once().lag_records == 0
    shipper.close()
    local = local_records(store)
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        assert admin.verify_gateway("oak") == (local[-1][0], None)
        bodies = [r[4] for r in admin.records("oak") if r[1] == 0]
        assert [b.split('"action":"')[1].split('"')[0] for b in bodies if b and b.startswith('{"hold"')] == \
            ["place", "release"]
        assert admin.count("sessions", "oak") == 10  # session 0 is never a central session
