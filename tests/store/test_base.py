"""The store interface: what any store gets from the base classes, and how results read."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence

import pytest

from monitor.store.base import SessionReader, SessionStore, VerifyResult
from monitor.store.chain import GENESIS, ChainHead
from monitor.store.filter import EVERY_SESSION, SessionFilter
from monitor.store.sessions import Session, session_from_event
from tests.store_helpers import T0, event


class ListStore(SessionStore):
    """The least a store must implement, over a list: what the base classes add is then visible."""

    def __init__(self, sessions: Sequence[Session] = ()) -> None:
        self.idle_gap = 300.0
        self.rows = list(sessions)
        self.written: list[list[Session]] = []

    def sessions(self, where: SessionFilter = EVERY_SESSION) -> Iterator[Session]:
        return iter([s for s in self.rows if where.device in (None, s.device)][: where.limit])

    def count(self, where: SessionFilter = EVERY_SESSION) -> int:
        return len(list(self.sessions(where)))

    def session(self, session_id: int) -> Session | None:
        return next((s for s in self.rows if s.id == session_id), None)

    def chain_head(self) -> ChainHead:
        return ChainHead(0, GENESIS)

    def write_sessions(self, segments: Sequence[Session], now: float | None = None) -> int:
        self.written.append(list(segments))
        return len(segments)

    def snapshot(self) -> contextlib.AbstractContextManager[SessionReader]:
        return contextlib.nullcontext(self)

    def verify(self) -> VerifyResult:
        return VerifyResult(True, 0, len(self.rows), self.chain_head())

    def purge(self, retention_days: int, now: float | None = None):
        raise NotImplementedError

    def purge_due(self, now: float | None = None) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def stored(device: str, owner: str | None, sid: int) -> Session:
    s = session_from_event(event(T0 + sid, device=device, owner=owner))
    s.id = sid
    return s


ROWS = [stored("D1", "S1", 1), stored("D2", None, 2), stored("D1", "S2", 3)]


@pytest.mark.parametrize(
    ("where", "devices", "owners"),
    [
        (EVERY_SESSION, {"D1", "D2"}, {"S1", "S2"}),
        (SessionFilter(device="D2"), {"D2"}, set()),
        (SessionFilter(limit=1), {"D1"}, {"S1"}),
    ],
)
def test_devices_and_owners_default_reads_the_sessions(where, devices, owners):
    assert ListStore(ROWS).devices_and_owners(where) == (devices, owners)


@pytest.mark.parametrize("where", [EVERY_SESSION, SessionFilter(device="D1")])
def test_ecs_json_default_is_to_json(where):
    store = ListStore(ROWS)
    lines = list(store.ecs_json(where))
    assert lines == [s.to_json() for s in store.sessions(where)]
    assert all(json.loads(line)["host.id"] in ("D1", "D2") for line in lines)


@pytest.mark.parametrize(
    ("events", "segments", "written"),
    [
        ([], 0, 0),
        ([event(T0), event(T0 + 1)], 1, 1),
        ([event(T0), event(T0 + 1, device="OAK-0002")], 2, 2),
        ([event(T0), event(T0 + 1, trust_device=False)], 1, 1),  # never recordable: never handed over
    ],
)
def test_write_merges_before_the_store_sees_anything(events, segments, written):
    store = ListStore()
    result = store.write(events)
    assert (result.segments, result.sessions_written) == (segments, written)
    assert [len(batch) for batch in store.written] == [segments]


def test_a_store_closes_on_leaving_its_block():
    with ListStore() as store:
        pass
    assert store.closed


@pytest.mark.parametrize(
    ("result", "summary"),
    [
        (VerifyResult(True, 6, 5, ChainHead(8, "ab" * 32)),
         f"chain ok: 6 records, 5 sessions, head 8 ({'ab' * 8})"),
        (VerifyResult(True, 6, 5, ChainHead(8, "ab" * 32), checkpoint=2),
         f"chain ok: 6 records, 5 sessions, head 8, verified from checkpoint at record 2 ({'ab' * 8})"),
        (VerifyResult(False, 2, 0, ChainHead(8, "ab" * 32), problem="record 3 removed"),
         "chain broken: record 3 removed"),
    ],
)
def test_verify_summary(result, summary):
    assert result.summary() == summary
