"""Retention: sessions past `retention_days` lose their content, and the log's dead prefix is compacted.

Plain SQL over the tables of `monitor.store.schema`, run inside the caller's
write transaction (SQLite's `purge` opens it), so a central PostgreSQL store
can run the same steps.

A purge is recorded in the chain it purges: before any content goes, one
record of session 0 (`monitor.store.chain.purge_body`) names the cutoff and
every session removed. `verify` accepts a tombstone only when such a record,
later in the chain, names its session; content blanked any other way (a
session "deleted as if purged", the history of a live session erased) is
named as removed.

A review of a purged session goes with it: its record is blanked and the purge record
names it (`monitor.store.reviews`).

A gateway shipping to the trust's central store (`monitor.store.acks`) holds
back what the central store has not acknowledged: a session with a record
after the acknowledged one keeps its content until a later purge, and the log
is never compacted past it.

Coverage intervals (`monitor.store.coverage`) are purged with the sessions:
those recorded before the cutoff are blanked after the purge record that
vouches for them; a kept interval is live content, never compacted away.

A legal hold (`monitor.store.holds`) keeps every session it covers, however old,
until it is released; the purge record says how many each case kept
(``"held": {"CASE": n}``), and the record that placed an open hold is never
compacted away.
"""

from __future__ import annotations

from typing import Any

from monitor.logsetup import get_logger
from monitor.store import coverage, reviews
from monitor.store.acks import acknowledged
from monitor.store.base import PurgeResult
from monitor.store.chain import PURGE_SESSION, ChainHead, follow, purge_body
from monitor.store.entries import append_entry
from monitor.store.holds import held_clause, open_holds
from monitor.store.integrity import RECORD_COLUMNS

log = get_logger("monitor.store.retention")


def purge_before(con: Any, cutoff: float, start: ChainHead, now: float, shown: str) -> PurgeResult:
    """Remove sessions last seen before `cutoff`; compact the log's dead prefix after `start`.

    Every version of a removed session becomes a tombstone (content gone,
    digest and links kept), so the chain still verifies. The leading run of
    tombstones is then deleted and replaced by a checkpoint holding the hash
    of the last one removed; verification starts there. A broken link in
    that run is never compacted away: the content is still removed, but
    the tombstones stay so `verify` keeps reporting the break.
    """
    acked = acknowledged(con)
    holds = open_holds(con)
    held_sql, held_args = held_clause(holds)
    doomed, args = f"SELECT id FROM sessions WHERE last_seen < ? AND NOT {held_sql}", [cutoff, *held_args]
    held: dict[str, int] = {}
    for h in holds:  # per case: one session two cases hold counts for each
        clause, params = held_clause([h])
        n = con.execute(f"SELECT count(*) FROM sessions WHERE last_seen < ? AND {clause}",
                        [cutoff, *params]).fetchone()[0]
        held[h.case] = held.get(h.case, 0) + int(n)
    if any(held.values()):
        log.info("store_purge_kept_for_holds", path=shown, held=held)
    if acked is not None:  # shipped: a session the central store does not fully hold waits
        held_back = con.execute(f"SELECT count(*) FROM sessions WHERE last_seen < ? AND {_UNSHIPPED}",
                                (cutoff, acked)).fetchone()[0]
        if held_back:
            log.warning("store_purge_held", path=shown, sessions=held_back, acknowledged=acked)
        # ... and one whose review the central store has not acknowledged (monitor.store.reviews)
        doomed, args = f"{doomed} AND NOT {_UNSHIPPED}{reviews.unshipped_clause(con, acked)}", [*args, acked]
    ids = [sid for (sid,) in con.execute(doomed, args)]
    held = {case: n for case, n in held.items() if n}
    # a review goes with its session; coverage intervals with their time's sessions: the purge names both
    entries = reviews.of_sessions(con, ids) + coverage.due_ids(con, cutoff, acked)
    purge_record = (append_entry(con, purge_body(cutoff, ids, entries, held), now).record_id
                    if ids or held or entries else None)
    con.execute(f"UPDATE records SET body = NULL WHERE body IS NOT NULL AND session_id IN ({doomed})", args)
    reviews.blank(con, entries)  # the entries of session 0 it names: reviews and coverage intervals
    removed = con.execute(f"DELETE FROM sessions WHERE id IN ({doomed})", args).rowcount
    # this purge's own record stays (it vouches for the tombstones left behind); older ones may go;
    # a live review stays with its session
    first_live = con.execute(
        "SELECT MIN(id) FROM records WHERE body IS NOT NULL AND (session_id <> ? OR id = ? OR (body NOT "
        "LIKE '{\"purge\":%' AND body NOT LIKE '{\"hold\":%'))",  # a kept review or interval is live;
        (PURGE_SESSION, purge_record or -1),  # an open hold's record is kept below, a released one may go
    ).fetchone()[0]
    last = con.execute("SELECT MAX(id) FROM records").fetchone()[0]
    through = (first_live - 1) if first_live is not None else last
    if acked is not None and through is not None:
        through = min(through, acked)  # the central store holds these; the rest waits for it
    if holds and through is not None:  # an open hold's own record stays in the chain
        through = min(through, min(h.record_id for h in holds) - 1)
    checkpoint = None
    compacted = 0
    if through is not None and through > start.record_id:
        rows = con.execute(f"SELECT {RECORD_COLUMNS} FROM records WHERE id <= ? ORDER BY id", (through,))
        prev, broken_at = follow(rows, start)
        if broken_at is not None:
            log.error("store_purge_chain_broken", path=shown, record=broken_at)
        else:
            compacted = con.execute("DELETE FROM records WHERE id <= ?", (through,)).rowcount
            con.execute(
                "INSERT INTO checkpoints (created_at, cutoff, through_record, hash, records_removed, "
                "sessions_removed) VALUES (?, ?, ?, ?, ?, ?)",
                (now, cutoff, through, prev, compacted, removed),
            )
            checkpoint = ChainHead(through, prev)
    return PurgeResult(cutoff, removed, compacted, checkpoint, held)


# a session with a record the central store has not acknowledged (parameter: the acknowledged record)
_UNSHIPPED = "EXISTS (SELECT 1 FROM records r WHERE r.session_id = sessions.id AND r.id > ?)"


__all__ = ["purge_before"]
