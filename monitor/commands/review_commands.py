"""`review`: record what was done about a flagged session, and list the reviews recorded.

A review goes into the store's hash chain (`monitor.store.reviews`), never into the session
it reviews. When the session is about a person (its owner, or the owner of its device in the
inventory) the review is also an entry of the export log: who looked at whose record, and why.
Everything is checked before anything is written; a bad option is one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.commands.config_commands import add_config_argument, load_chosen_config
from monitor.config.loader import Config
from monitor.errors import UserError
from monitor.store.reviews import (
    MAX_NAME,
    MAX_NOTE,
    MAX_REASON,
    OUTCOMES,
    Review,
    ReviewedSession,
    ReviewError,
    append_review,
    check_outcome,
    check_text,
    latest,
)


class ReviewUsage(ReviewError):
    exit_code = 2


def session_number(text: str | None) -> int:
    """The session id as given (`events --format table` and identified exports show it)."""
    if text is None:
        raise ReviewUsage("give the session id to review (social-monitor review SESSION --outcome ... "
                          "--by NAME --reason TEXT), or --list, or --outcomes")
    try:
        value = int(text.strip())
    except ValueError:
        raise ReviewUsage(f"session {text!r}: not a session id (a whole number)") from None
    if value < 1:
        raise ReviewUsage(f"session {value}: not a session id (session ids start at 1)")
    return value


def review(args: argparse.Namespace) -> int:
    if args.outcomes:
        for name, meaning in OUTCOMES.items():
            print(f"{name:<28}  {meaning}")
        return 0
    if args.list:
        return list_reviews(args)
    # every option is checked before the config or the store is read: a bad one writes nothing
    session_id = session_number(args.session)
    try:
        outcome = check_outcome(args.outcome)
        reason = check_text("--reason", args.reason, MAX_REASON, required=True)
        by = check_text("--by", args.by, MAX_NAME, required=True)
        note = check_text("--note", args.note, MAX_NOTE, required=False, lines=True)
    except ReviewError as exc:
        raise ReviewUsage(str(exc)) from None
    from monitor.exports.log import append, current_user, log_path_for
    from monitor.exports.reviews import log_entry, subject_of
    from monitor.store.sqlite import open_config_store

    config = load_chosen_config(args.config)
    open_config_store(config, create=False).close()  # a store that is there and is one
    owners = {d.asset_tag: d.owner for d in config.devices if d.owner}
    logged: list[int] = []
    now = time.time()

    def log_it(done: Review, session: ReviewedSession, record_hash: str) -> None:
        subject = subject_of(session, owners)
        if subject is not None:
            entry = append(log_path_for(config.store_path),
                           log_entry(done, session, subject, str(config.store_path), record_hash, now))
            logged.append(entry.seq)

    try:
        done = append_review(config.store_path, session_id, outcome, note, reason, by, current_user(), now,
                             before_commit=log_it)
    except sqlite3.Error as exc:
        raise UserError(f"{config.store_path}: cannot record the review: {exc}; nothing was recorded") \
            from None
    _sign(config)
    replaced = f"; supersedes review {done.supersedes}" if done.supersedes else ""
    where = f"; logged as export {logged[0]}" if logged else "; about no one in the inventory, not logged"
    print(f"session {session_id} version {done.version} reviewed: {outcome} (record {done.record_id}, by "
          f"{by} as {done.os_user}){replaced}{where}")
    return 0


def _sign(config: Config) -> None:
    """Sign the new head, so the review is anchored in the journal at once (not at the next interval)."""
    from monitor.store.anchors import sign_store_file
    from monitor.store.signing import key_path_for, load_or_create_key

    path = config.store_path
    sign_store_file(path, load_or_create_key(key_path_for(path)), None, "review", time.time())


def list_reviews(args: argparse.Namespace) -> int:
    """Every review (superseded ones marked), as a table or JSON lines; not logged, like `events`."""
    from monitor.store.sqlite import open_config_store

    wanted = session_number(args.session) if args.session is not None else None
    config = load_chosen_config(args.config)
    tz = ZoneInfo(config.trust.timezone)
    with open_config_store(config, create=False) as store, store.snapshot() as view:
        reviews = [r for r in view.reviews() if wanted is None or r.session_id == wanted]
        current = {r.record_id for r in latest(reviews).values()}
        if args.format == "jsonl":
            for r in reviews:
                print(json.dumps({**r.to_dict(), "current": r.record_id in current}, ensure_ascii=False,
                                 sort_keys=True))
            return 0
        print(f"{'RECORD':>6}  {'WHEN':<16}  {'SESSION':>7}  {'VER':>3}  {'OUTCOME':<27}  {'BY':<20}  "
              f"{'OS USER':<12}  {'NOW':<10}  NOTE")
        for r in reviews:
            when = datetime.fromtimestamp(r.recorded_at, tz).strftime("%Y-%m-%d %H:%M")
            state = "current" if r.record_id in current else "superseded"
            note = r.note.replace("\n", " ")
            print(f"{r.record_id:>6}  {when:<16}  {r.session_id:>7}  {r.version:>3}  {r.outcome:<27}  "
                  f"{r.by[:20]:<20}  {r.os_user[:12]:<12}  {state:<10}  {note}".rstrip())
    if not reviews:
        print("no reviews" + (f" of session {wanted}" if wanted else ""), file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="record what was done about a flagged session (kept in the hash chain)",
                       description="Record the outcome of reviewing a flagged session. The session's record "
                       "is never changed; a later review supersedes an earlier one and both are kept.")
    p.add_argument("session", nargs="?", help="the session id (events --format table, identified exports)")
    p.add_argument("--outcome", help=f"one of: {'; '.join(OUTCOMES)} (see --outcomes)")
    p.add_argument("--note", help=f"what was found or done, at most {MAX_NOTE} characters")
    p.add_argument("--by", help="the reviewer's name (the signed-in OS user is recorded as well)")
    p.add_argument("--reason", help="why the record was looked at; recorded, and in the export log")
    p.add_argument("--list", action="store_true", help="list the reviews recorded (with SESSION: its own)")
    p.add_argument("--format", choices=["table", "jsonl"], default="table", help="for --list")
    p.add_argument("--outcomes", action="store_true", help="the outcomes and what each means")
    add_config_argument(p)
    p.set_defaults(func=review)
