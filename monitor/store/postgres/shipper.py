"""Store-and-forward: a gateway's hash-chained records, shipped in order to the trust's central store.

The local SQLite store stays the durable buffer: the gateway records whether
or not the link or the central server is up. The shipper asks the central
store how far it holds this gateway's chain (its cursor), then sends what
follows in batches, each one transaction, idempotent (records keyed by gateway
and sequence; a batch sent twice adds nothing). After any failure (server
down, connection cut, the shipper itself killed) it starts again from the
central cursor, never from a local note that could be wrong, backing off
between attempts. Before sending, it checks that the local record at the
cursor is the one the central store received: a gateway file rewritten or
rolled back since is refused, loudly, rather than shipped.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.errors import UserError
from monitor.store import acks, anchors
from monitor.store.base import StoreError
from monitor.store.chain import ChainHead
from monitor.store.postgres.central import CentralStore
from monitor.store.postgres.heads import HeadRefused
from monitor.store.sqlite import SQLiteSessionStore

log = structlog.get_logger("monitor.store.postgres.shipper")


class ShipRefused(UserError):
    """The local chain does not continue what the central store holds: a person must look, not a retry."""


@dataclass(slots=True)
class ShipReport:
    sent: int  # records the central store took in this run
    central: ChainHead  # the central cursor afterwards
    local_head: int  # the local chain's last record
    lag_records: int  # local records the central store does not hold yet
    lag_seconds: float  # age of the oldest of them (0 when none)


class ShipMetrics:
    """Lag and throughput; one series each (no labels: one gateway per process)."""

    def __init__(self, registry: CollectorRegistry):
        self.lag_records = Gauge("social_monitor_ship_lag_records",
                                 "Records in the local store that the central store does not hold yet",
                                 registry=registry, multiprocess_mode="livemax")
        self.lag_seconds = Gauge("social_monitor_ship_lag_seconds",
                                 "Age of the oldest record not yet in the central store (0 when none)",
                                 registry=registry, multiprocess_mode="livemax")
        self.shipped = Counter("social_monitor_ship_records_total",
                               "Records the central store took from this gateway", registry=registry)
        self.failures = Counter("social_monitor_ship_failures_total",
                                "Shipping attempts that failed (server down, link cut, refused)",
                                registry=registry)


class Shipper:
    """Ships one gateway's store; one object per thread (it holds one connection to each store)."""

    def __init__(
        self, store_path: str | Path, central: Mapping[str, Any] | str, gateway_id: str, *,
        batch_size: int = 5000, metrics: ShipMetrics | None = None, clock: Callable[[], float] = time.time,
    ):
        self.store_path = Path(store_path)
        self.central_params = central
        self.gateway_id = gateway_id
        self.batch_size = batch_size
        self.metrics = metrics
        self.clock = clock
        self._central: CentralStore | None = None
        self._local: SQLiteSessionStore | None = None
        self._head_sent: str | None = None  # the signed head the central store last took

    def close(self) -> None:
        for store in (self._central, self._local):
            if store is not None:
                store.close()
        self._central = self._local = None

    def _stores(self) -> tuple[SQLiteSessionStore, CentralStore] | None:
        if self._local is None:
            if not self.store_path.exists():
                return None  # nothing recorded yet
            self._local = SQLiteSessionStore(self.store_path, create=False)
            acks.mark_shipped(self.store_path)  # from now on retention waits for the central store
        if self._central is None or self._central.con.closed:
            self._central = CentralStore(self.central_params)
        return self._local, self._central

    def ship_once(self, max_batches: int | None = None) -> ShipReport:
        """Send all the central store does not hold yet (or `max_batches` batches); raises on failure."""
        stores = self._stores()
        if stores is None:
            return ShipReport(0, ChainHead(0, ""), 0, 0, 0.0)
        local, central = stores
        cursor = central.cursor(self.gateway_id).last
        cursor = self._check_continues(local, central, cursor)
        acks.record_acknowledged(self.store_path, cursor.record_id)
        sent = batches = 0
        while max_batches is None or batches < max_batches:
            batch = local.records_since(cursor.record_id, self.batch_size)
            if not batch:
                break
            after = central.ingest(self.gateway_id, batch)
            acks.record_acknowledged(self.store_path, after.record_id)  # local retention may now compact it
            sent += after.record_id - cursor.record_id
            if self.metrics is not None:
                self.metrics.shipped.inc(after.record_id - cursor.record_id)
            cursor, batches = after, batches + 1
            log.debug("ship_batch", gateway=self.gateway_id, through=cursor.record_id, records=len(batch))
        self._send_head(central, cursor)
        return self._report(local, sent, cursor)

    def _send_head(self, central: CentralStore, cursor: ChainHead) -> None:
        """The gateway's latest signed head, once the central store holds the record it names: the
        off-box anchor `verify --against central` checks the store against. A refused head (a bad
        signature, a fork: the file was rewritten and signed again) stops shipping, loudly."""
        con = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True)
        try:
            head = anchors.last_signed(con)
        finally:
            con.close()
        if head is None or head.record_id > cursor.record_id or head.to_json() == self._head_sent:
            return
        try:
            if central.receive_head(self.gateway_id, head):
                log.info("ship_head", gateway=self.gateway_id, seq=head.seq, record=head.record_id)
        except HeadRefused as exc:
            raise ShipRefused(f"{self.store_path}: {exc}") from None
        self._head_sent = head.to_json()

    def _check_continues(
        self, local: SQLiteSessionStore, central: CentralStore, cursor: ChainHead
    ) -> ChainHead:
        """The central cursor, after checking that the local chain continues it (anchoring a new gateway)."""
        head = local.chain_head()
        if cursor.record_id == 0:
            first = local.records_since(0, 1)
            if first and first[0][0] > 1:  # compacted before it ever shipped: start from its checkpoint
                start = ChainHead(first[0][0] - 1, first[0][6])
                central.anchor(self.gateway_id, start)
                log.warning("ship_anchored", gateway=self.gateway_id, record=start.record_id)
                return start
            return cursor
        if head.record_id < cursor.record_id:
            raise ShipRefused(f"{self.store_path}: the central store holds records up to {cursor.record_id} "
                              f"of gateway {self.gateway_id}, but this store's chain ends at "
                              f"{head.record_id}: the store was replaced or rolled back")
        mine = local.records_since(cursor.record_id - 1, 1)
        if mine and mine[0][0] == cursor.record_id and mine[0][7] != cursor.hash:
            raise ShipRefused(f"{self.store_path}: record {cursor.record_id} differs from the one the "
                              f"central store received from gateway {self.gateway_id}: the store was "
                              "rewritten")
        return cursor

    def _report(self, local: SQLiteSessionStore, sent: int, cursor: ChainHead) -> ShipReport:
        head = local.chain_head().record_id
        waiting = local.records_since(cursor.record_id, 1)
        lag_seconds = max(0.0, self.clock() - waiting[0][3]) if waiting else 0.0
        report = ShipReport(sent, cursor, head, max(0, head - cursor.record_id), lag_seconds)
        if self.metrics is not None:
            self.metrics.lag_records.set(report.lag_records)
            self.metrics.lag_seconds.set(report.lag_seconds)
        return report

    def report_lag_offline(self) -> ShipReport | None:
        """While the central store cannot be reached, the lag still grows: measured from the last
        acknowledgement the local store keeps (`monitor.store.acks`), so the lag alert fires."""
        if self._local is None:
            return None
        con = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True)
        try:
            acked = acks.acknowledged(con)
        finally:
            con.close()
        return None if acked is None else self._report(self._local, 0, ChainHead(acked, ""))

    def run(self, stop: threading.Event, *, interval: float = 5.0, max_backoff: float = 300.0) -> None:
        """Ship every `interval` seconds until `stop` is set; after a failure wait longer each time (with
        jitter, so a trust's gateways do not all return at once when the server comes back)."""
        failures = 0
        while not stop.is_set():
            try:
                report = self.ship_once()
                if failures:
                    log.info("ship_resumed", gateway=self.gateway_id, after_failures=failures)
                failures = 0
                wait = interval if report.lag_records == 0 else 0.0
            except (StoreError, ShipRefused) as exc:
                failures += 1
                wait = max_backoff
                log.error("ship_refused", gateway=self.gateway_id, error=str(exc))
            except Exception as exc:  # the server or the link: psycopg.OperationalError and its kin
                failures += 1
                wait = min(max_backoff, interval * 2 ** min(failures, 16)) * random.uniform(0.5, 1.0)
                log.warning("ship_failed", gateway=self.gateway_id, error=str(exc).strip().splitlines()[0]
                            if str(exc).strip() else repr(exc), retry_in=round(wait, 1))
                if self._central is not None:
                    self._central.close()
                    self._central = None
                self.report_lag_offline()
            if failures and self.metrics is not None:
                self.metrics.failures.inc()
            stop.wait(wait)
        self.close()




def shipper_for(config: Any, metrics: ShipMetrics | None = None) -> Shipper | None:
    """The shipper a loaded `Config` asks for (`store.central` and `gateway.id`), or None (SQLite only)."""
    from monitor.store.postgres.connect import conninfo

    settings = config.model.store
    if not settings.central:
        return None
    password_file = config.resolve(settings.central_password_file) if settings.central_password_file else None
    params = conninfo(settings.central, password_file=password_file)
    if config.store_path.exists():
        acks.mark_shipped(config.store_path)  # before the first batch: a purge meanwhile holds everything
    return Shipper(config.store_path, params, config.model.gateway.id, metrics=metrics)


__all__ = ["ShipMetrics", "ShipRefused", "ShipReport", "Shipper", "shipper_for"]
