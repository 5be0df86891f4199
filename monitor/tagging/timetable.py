"""Period lookup: when an access happened, in the school's own terms.

A UTC timestamp becomes local time in the trust's zone (daylight saving
handled by zoneinfo), then a school day or not (term dates, half-terms, INSET
days, closures, bank holidays for the school's UK nation, weekends), then a
timetabled period with its kind: contact, non-contact, or closed. Day status
is computed once per date and cached; a period is found by bisecting the
day's start times, so a lookup does no parsing.

Pupils are present only while pupils are there: by default on a teaching day
from the start of the first contact period to the end of the last (so a short
day with staff CPD after lessons has no pupils after them), and never on an
INSET day, a closure or a holiday. A school may set its own pupil hours per
weekday (breakfast club, after-school clubs) and per date.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from monitor.config.models import School, StaffPeriod
from monitor.config.values import WEEKDAYS
from monitor.observation import PeriodKind

NATION_SUBDIV = {"england": "ENG", "wales": "WLS", "scotland": "SCT", "northern-ireland": "NIR"}


@dataclass(slots=True, frozen=True)
class When:
    """Where an instant falls in a school's calendar."""

    local: datetime
    period: str | None
    kind: PeriodKind
    week: str | None  # "A"/"B" in a two-week rotation, else None
    day: str  # school-day, weekend, half-term, holiday, inset, bank-holiday, closure
    pupils: bool = False  # pupils are on site now
    pupil_hours: str = ""  # why: the day's pupil hours and where they come from


@dataclass(slots=True, frozen=True)
class _DayPlan:
    status: str
    week: str | None
    starts: tuple[int, ...] = ()  # seconds since local midnight
    ends: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    day_start: int = 0
    day_end: int = 0
    pupil_spans: tuple[tuple[int, int], ...] = ()  # seconds since local midnight, [start, end)
    pupil_source: str = "no pupils"
    pupil_text: str = ""  # spans and source, made once per day for `When.pupil_hours`


def _seconds(t) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


@lru_cache(maxsize=64)
def _bank_holidays(nation: str, year: int) -> frozenset[date]:
    import holidays  # its country tables are large: loaded when a calendar first needs them

    return frozenset(holidays.country_holidays("GB", subdiv=NATION_SUBDIV[nation], years=year))


class SchoolClock:
    """Answers 'which period is it at this school' for any instant."""

    def __init__(self, school: School, tz: ZoneInfo):
        self.school = school
        self.tz = tz
        tt = school.timetable
        self._day_start = _seconds(tt.day_start)
        self._day_end = _seconds(tt.day_end)
        cal = school.calendar
        self._inset = set(cal.inset_days)
        self._closures = {c.date: c.reason for c in cal.closures}
        self._terms = [(t.start, t.end, t.half_term) for t in cal.terms]
        hours = school.pupil_hours
        self._pupils_by_weekday = {day: _spans(spans) for day, spans in hours.weekdays.items()}
        self._pupils_by_date = {d.date: _spans(d.hours) for d in hours.dates}
        self._plan_for_day = lru_cache(maxsize=1024)(self._described)

    def _week(self, day: date) -> str | None:
        tt = self.school.timetable
        if tt.rotation != "two-week" or tt.rotation_anchor is None:
            return None
        return "A" if ((day - tt.rotation_anchor).days // 7) % 2 == 0 else "B"

    def _described(self, day: date) -> _DayPlan:
        plan = self._with_pupils(day)
        return replace(plan, pupil_text=_describe(plan))

    def _with_pupils(self, day: date) -> _DayPlan:
        """The day's plan with its pupil hours: a dated entry, else the weekday's on a teaching day,
        else first to last contact period on a teaching day, else none."""
        plan = self._compute_day(day)
        dated = self._pupils_by_date.get(day)
        if dated is not None:
            return replace(plan, pupil_spans=dated, pupil_source=f"pupil hours for {day.isoformat()}")
        if plan.status != "school-day":
            return replace(plan, pupil_source=f"no pupils: {plan.status}")
        weekday = WEEKDAYS[day.weekday()]
        configured = self._pupils_by_weekday.get(weekday)
        if configured is not None:
            return replace(plan, pupil_spans=configured, pupil_source=f"pupil hours for {weekday}")
        contact = [(s, e) for s, e, k in zip(plan.starts, plan.ends, plan.kinds, strict=True)
                   if k == "contact"]
        if not contact:
            return replace(plan, pupil_source="no contact periods that day")
        return replace(plan, pupil_spans=((contact[0][0], max(e for _, e in contact)),),
                       pupil_source="first to last contact period")

    def _compute_day(self, day: date) -> _DayPlan:
        week = self._week(day)
        in_term = False
        for start, end, half in self._terms:
            if start <= day <= end:
                if half is not None and half.start <= day <= half.end:
                    return _DayPlan("half-term", week)
                in_term = True
                break
        if not in_term:
            return _DayPlan("holiday", week)
        if day in _bank_holidays(self.school.calendar.nation, day.year):
            return _DayPlan("bank-holiday", week)
        if day in self._inset:
            return _DayPlan("inset", week)
        if day in self._closures:
            return _DayPlan("closure", week)
        tt = self.school.timetable
        plan = tt.days if tt.rotation == "weekly" else (tt.week_a if week == "A" else tt.week_b)
        periods = sorted((plan or {}).get(WEEKDAYS[day.weekday()]) or [], key=lambda p: p.start)
        if not periods:
            return _DayPlan("weekend" if day.weekday() >= 5 else "no-timetable", week)
        return _DayPlan(
            "school-day",
            week,
            tuple(_seconds(p.start) for p in periods),
            tuple(_seconds(p.end) for p in periods),
            tuple(p.name for p in periods),
            tuple(p.kind for p in periods),
            self._day_start,
            self._day_end,
        )

    def day_status(self, day: date) -> str:
        return self._plan_for_day(day).status

    def period_kind(self, day: date, period: str) -> str | None:
        """The school timetable's kind of a named period on a day (None if it has no such period):
        the same for every person, whatever their own timetable says."""
        plan = self._plan_for_day(day)
        for name, kind in zip(plan.names, plan.kinds, strict=True):
            if name == period:
                return kind
        return None

    def at(self, timestamp: float) -> When:
        local = datetime.fromtimestamp(timestamp, self.tz)
        plan = self._plan_for_day(local.date())
        second = local.hour * 3600 + local.minute * 60 + local.second
        pupils = any(start <= second < end for start, end in plan.pupil_spans)
        hours = plan.pupil_text
        if plan.status != "school-day":
            return When(local, None, "closed", plan.week, plan.status, pupils, hours)
        index = bisect.bisect_right(plan.starts, second) - 1
        if index >= 0 and second < plan.ends[index]:
            return When(local, plan.names[index], plan.kinds[index], plan.week, plan.status,  # type: ignore[arg-type]
                        pupils, hours)
        if plan.day_start <= second < plan.day_end:
            # inside the school day but between timetabled periods: no lessons run
            return When(local, None, "non-contact", plan.week, plan.status, pupils, hours)
        return When(local, None, "closed", plan.week, "outside-school-day", pupils, hours)


def _spans(hours: list[tuple[time, time]]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((_seconds(start), _seconds(end)) for start, end in hours))


def _clock(second: int) -> str:
    return f"{second // 3600:02d}:{second % 3600 // 60:02d}"


def _describe(plan: _DayPlan) -> str:
    """'08:40-15:10 (first to last contact period)', or why there are none."""
    if not plan.pupil_spans:
        return plan.pupil_source
    spans = ", ".join(f"{_clock(s)}-{_clock(e)}" for s, e in plan.pupil_spans)
    return f"{spans} ({plan.pupil_source})"


class StaffTimetables:
    """Per-person contact time from the MIS export, which beats the school's timetable."""

    def __init__(self, rows: list[StaffPeriod]):
        self._kinds: dict[tuple[str, str | None, str, str], str] = {
            (r.staff_id, r.week, r.weekday, r.period): r.kind for r in rows
        }
        self.staff = {r.staff_id for r in rows}

    def kind_for(self, staff_id: str, when: When) -> str | None:
        if staff_id not in self.staff or when.period is None:
            return None
        weekday = WEEKDAYS[when.local.weekday()]
        hit = self._kinds.get((staff_id, when.week, weekday, when.period))
        if hit is None and when.week is not None:
            hit = self._kinds.get((staff_id, None, weekday, when.period))
        return hit


def parse_local_time(text: str, tz: ZoneInfo, *, end: bool = False) -> datetime:
    """An ISO date or date-time as the command line takes it: without an offset it is the
    trust's local time, and a bare date as an upper bound (`end`) means the end of that day,
    as a reader of `--until 2026-09-30` expects. ValueError with a readable message otherwise."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=tz)
            return start + timedelta(days=1) if end else start
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO date or date-time (e.g. 2026-09-01 or 2026-09-01T08:30)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=tz)


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    """Start of a local day as an aware datetime (for exports covering whole days)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz)


__all__ = ["SchoolClock", "StaffTimetables", "When", "local_midnight_utc", "parse_local_time"]
