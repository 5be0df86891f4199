"""What an alias protects against and what it does not (docs/exports.md), each statement a test.

The end-to-end tests run the real `social-monitor export` (main()) on a real SQLite store: 26 staff
of Ash Grove over four weeks, sightings at random seconds, written through the real Tagger. The
identified export of the same store gives the truth (rows come out in the same order), against
which an attacker's joins of pseudonymised exports are scored.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.config.loader import load_config
from monitor.config.models import ExemptionRule, InventoryDevice
from monitor.exports.minimise import (
    MIN_GROUP,
    WITHHELD_REASON,
    Minimiser,
    device_kinds_shown,
    exemptions_named,
    neutral,
    people_covered,
    per_school,
    to_minute,
)
from monitor.observation import Exemption, Observation
from monitor.store.sessions import Session
from monitor.store.sqlite import open_store
from monitor.tagging.tagger import Tagger
from tests.conftest import EXAMPLE, LONDON, london

# --- the rules, one fact a row ------------------------------------------------------------------


@pytest.mark.parametrize(("ts", "expected"), [
    (london(2026, 11, 2, 10, 56, 0), london(2026, 11, 2, 10, 56)),
    (london(2026, 11, 2, 10, 56, 59) + 0.999, london(2026, 11, 2, 10, 56)),  # never rounded up
    (london(2026, 11, 2, 10, 56, 1) + 0.25, london(2026, 11, 2, 10, 56)),
    (london(2026, 7, 2, 10, 56, 30), london(2026, 7, 2, 10, 56)),  # BST: the local minute too
])
def test_to_minute(ts, expected):
    assert to_minute(ts) == expected


def device(owner: str | None, *groups: str, school: str = "ash", kind: str = "laptop") -> InventoryDevice:
    return InventoryDevice(mac="3c:52:82:00:00:01", asset_tag=f"T-{owner}", school=school, kind=kind,
                           owner=owner, groups=groups)


INVENTORY = [device(f"S{k}", "team" if k < 4 else "big", "teachers") for k in range(9)] + [
    device(None, "team"),  # a shared device names no one
    device("S99", "team", school="oak"),  # another school's
]


def rule(**kw) -> ExemptionRule:
    return ExemptionRule(name=kw.pop("name", "r"), reason="because", **kw)


@pytest.mark.parametrize(("given", "people"), [
    (rule(groups=["team"]), 4),  # four people own team devices at ash; the shared one is no one
    (rule(groups=["big"]), 5),
    (rule(groups=["team", "big"]), 9),
    (rule(staff=["S1", "S2"]), 2),
    (rule(staff=["S1", "S5", "S404"]), 2),  # someone without a device of the school is not counted
    (rule(groups=["team"], staff=["S1", "S5"]), 1),  # both must hold
    (rule(platforms=["linkedin"]), 9),  # names no people: anyone of the school
    (rule(zones=["offices"]), 9),  # a zone does not narrow people (the zone is in every row anyway)
    (rule(groups=["team"], schools=["oak"]), 0),
])
def test_people_covered(given, people):
    assert len(people_covered(given, INVENTORY, "ash")) == people


@pytest.mark.parametrize(("rules", "named"), [
    ([rule(name="four", groups=["team"]), rule(name="five", groups=["big"])], set()),  # "exempt" = the four
    ([rule(name="five", groups=["big"])], {"five"}),
    ([rule(name="five", groups=["big"]), rule(name="all", groups=["teachers"])], {"five", "all"}),
    ([rule(name="four", groups=["team"]), rule(name="one", staff=["S5"]), rule(name="five", groups=["big"])],
     {"five"}),  # the unnamed four and one together are five
    ([rule(name="four", groups=["team"])], set()),
    ([rule(name="oak", groups=["team"], schools=["oak"]), rule(name="five", groups=["big"])], {"five"}),
])
def test_exemptions_named(rules, named):
    assert exemptions_named(rules, INVENTORY, "ash") == named


@pytest.mark.parametrize(("devices", "shown"), [
    ([device(f"S{k}") for k in range(5)], True),
    ([device(f"S{k}") for k in range(5)] + [device("S9", kind="tablet")], False),  # the only tablet
    ([device(f"S{k}") for k in range(5)] + [device(None, kind="desktop")], True),  # shared: no one's
    ([device(f"S{k}") for k in range(5)] + [device("S9", kind="tablet", school="oak")], True),
])
def test_device_kinds_shown(devices, shown):
    assert device_kinds_shown(devices, "ash") is shown


@pytest.mark.parametrize(("exemption", "name"), [
    (Exemption("head's account", "The head posts as the school.", "4.1"), "exempt (clause 4.1)"),
    (Exemption("head's account", "The head posts as the school.", None), "exempt"),
])
def test_neutral_label_keeps_only_the_clause(exemption, name):
    label = neutral(exemption)
    assert (label.name, label.reason, label.clause) == (name, WITHHELD_REASON, exemption.clause)


def session(**kw) -> Session:
    start = london(2026, 11, 27, 13, 20, 17) + 0.412  # Friday 27 November, Week A, P4
    values = dict(device="ASH-LT-0005", platform="facebook", school="ash-secondary", zone="library",
                  period="P4", local_date="2026-11-27", first_seen=start, last_seen=start + 95.3,
                  period_kind="non-contact", device_kind="laptop", owner="S2005")
    return Session(**{**values, **kw})


@pytest.fixture(scope="module")
def minimiser(example_config):
    return Minimiser.for_school(example_config, example_config.school("ash-secondary"), LONDON)


@pytest.mark.parametrize(("given", "field", "shown"), [
    (session(), "first_seen", london(2026, 11, 27, 13, 20)),
    (session(), "last_seen", london(2026, 11, 27, 13, 21)),
    (session(), "period_kind", "contact"),  # S2005's own free period is the school's lesson
    (session(period="Lunch", period_kind="non-contact"), "period_kind", "non-contact"),
    (session(period=None, period_kind="closed"), "period_kind", "closed"),
    (session(period="Staff CPD", period_kind="non-contact"), "period_kind", "non-contact"),  # not that day
    (session(), "device_kind", None),  # four people own Ash's laptops: a kind held by few
    (session(exemption=Exemption("marketing-team", "posts", "4.1")), "exemption",
     Exemption("exempt (clause 4.1)", WITHHELD_REASON, "4.1")),  # covers one person of Ash
])
def test_minimiser(minimiser, given, field, shown):
    assert getattr(minimiser(given), field) == shown


@pytest.mark.parametrize(("given", "field", "shown"), [
    (session(school="closed-school"), "first_seen", london(2026, 11, 27, 13, 20)),
    (session(school="closed-school"), "period_kind", ""),  # no timetable to give everyone's kind
    (session(school="closed-school"), "device_kind", None),
    (session(school="closed-school", exemption=Exemption("big", "posts", "4.1")), "exemption",
     Exemption("exempt (clause 4.1)", WITHHELD_REASON, "4.1")),
    (session(), "period_kind", "contact"),  # a configured school: its own minimiser
])
def test_per_school_minimises_a_school_no_longer_configured(example_config, given, field, shown):
    assert getattr(per_school(example_config, LONDON)(given), field) == shown


def test_minimiser_manifest_says_what_it_left_out(minimiser):
    assert minimiser.manifest() == {
        "times": "truncated to the minute", "period_kind": "the school timetable's",
        "exemptions_named": [], "device_kinds": False, "min_people": MIN_GROUP}


# --- end to end: 26 staff, four weeks, the real command line -------------------------------------

STAFF = 26
PEOPLE = STAFF + 1  # and S2004 of the example's marketing team
SMALL, BIG = range(0, 4), range(4, 9)  # the four- and the five-person exemption's teams
HABIT = range(13)  # these teach with YouTube once a week; the others are seen only at break
FREE_FRIDAY_P4, BUSY_FRIDAY_P4 = 1, 2  # S4001's own timetable frees Friday P4; S4002's does not
WEEK1, WEEK2, MONTH = (date(2026, 11, 2), date(2026, 11, 8)), (date(2026, 11, 9), date(2026, 11, 15)), \
    (date(2026, 11, 2), date(2026, 11, 29))


TABLET, MARKETING = 100, 101  # S4000's tablet; the example's ASH-MB-0004 (S2004)


def mac(k: int) -> str:
    return {TABLET: "3c:52:82:21:01:00", MARKETING: "3c:52:82:20:00:04"}.get(k, f"3c:52:82:21:00:{k:02x}")


def sightings(rng: random.Random) -> list[Observation]:
    out = []
    day = MONTH[0]
    while day <= MONTH[1]:
        if day.weekday() < 5:
            def seen(k: int, ip: str, host: str, hour: int, minute: int, day: date = day) -> None:
                start = london(day.year, day.month, day.day, hour) + 60 * minute + rng.uniform(0, 59.999)
                for gap in (0, 40, 95):  # three sightings: one session
                    out.append(Observation(start + gap, ip, 50000, "198.51.100.7", 443, "tcp", "tls", host,
                                           client_mac=mac(k)))
            for k in range(STAFF):  # break: everyone, four or five to a minute, the minute drawn daily
                seen(k, f"10.20.30.{100 + k}", "www.facebook.com", 10, 56 + rng.randrange(6))
            for k in HABIT:
                if k % 5 == day.weekday():
                    seen(k, f"10.20.10.{100 + k}", "www.youtube.com", 10, k)
            for team, weekday, minute in ((SMALL, 1, 10), (BIG, 3, 20)):
                if day.weekday() == weekday:
                    for k in team:
                        seen(k, f"10.20.40.{100 + k}", "www.linkedin.com", 9, minute + k)
            if day.weekday() == 4:
                for k in (FREE_FRIDAY_P4, BUSY_FRIDAY_P4):
                    seen(k, f"10.20.14.{100 + k}", "www.instagram.com", 13, 20 + k)
            if day.weekday() == 2:  # the only tablet, at lunch
                seen(TABLET, "10.20.30.99", "www.facebook.com", 12, 30)
            if day.weekday() == 0:  # S2004, the marketing team of one, posts in P1
                seen(MARKETING, "10.20.40.12", "www.linkedin.com", 9, 30)
        day += timedelta(days=1)
    return out


@pytest.fixture(scope="module")
def trust(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("alias")
    for name in ("logins.csv", "devices.csv", "staff-timetable.csv"):
        shutil.copy(EXAMPLE.parent / name, tmp / name)
    with (tmp / "devices.csv").open("a") as fh:
        for k in range(STAFF):
            groups = ";".join(["teachers"] + (["small-team"] if k in SMALL else [])
                              + (["big-team"] if k in BIG else []))
            fh.write(f"{mac(k)},ASH-LT-1{k:03d},ash-secondary,laptop,S40{k:02d},{groups}\n")
        fh.write("3c:52:82:21:01:00,ASH-TB-2000,ash-secondary,tablet,S4000,teachers\n")  # the only tablet
    with (tmp / "staff-timetable.csv").open("a") as fh:
        fh.write(f"S40{FREE_FRIDAY_P4:02d},,friday,P4,non-contact\n")
    data = yaml.safe_load(EXAMPLE.read_text())
    data["store"]["path"] = str(tmp / "store.db")
    for name, team in (("small-team-posts", "small-team"), ("big-team-posts", "big-team")):
        data["policy"]["exemptions"].append({
            "name": name, "reason": f"The {team} posts to the school's accounts.", "clause": "4.1",
            "groups": [team], "platforms": ["linkedin"]})
    (tmp / "trust.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(tmp / "trust.yaml")
    tagger = Tagger(config)
    with open_store(tmp / "store.db") as store:
        store.write(e for e in (tagger.tag(o) for o in sightings(random.Random(19))) if e.recordable)
    return tmp / "trust.yaml"


def export(trust: Path, period: tuple[date, date], name: str, *extra: str) -> Path:
    out = trust.parent / "exports" / name
    code = main(["export", "--config", str(trust), "--school", "ash-secondary",
                 "--from", period[0].isoformat(), "--to", period[1].isoformat(), "--out", str(out), *extra])
    assert code == 0
    return out


def read(out: Path) -> list[dict[str, str]]:
    with (out / "sessions.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def exports(trust) -> dict[str, Path]:
    return {"week1": export(trust, WEEK1, "week1"), "week2": export(trust, WEEK2, "week2"),
            "month": export(trust, MONTH, "month"),
            "identified": export(trust, MONTH, "identified", "--identify", "--reason", "test of aliases")}


@pytest.fixture(scope="module")
def rows(exports) -> dict[str, list[dict[str, str]]]:
    return {name: read(out) for name, out in exports.items()}


def alias(row: dict[str, str]) -> str:
    return row["user.id"] or row["host.id"]


def truth(rows, name: str, period: tuple[date, date]) -> dict[str, str]:
    """Alias -> staff id, from the identified export's rows of the same period (the same order)."""
    first, last = period[0].isoformat(), period[1].isoformat()
    real = [r for r in rows["identified"] if first <= r["social.local_date"] <= last]
    shown = rows[name]
    assert [(r["social.platform"], r["social.local_date"]) for r in shown] == \
        [(r["social.platform"], r["social.local_date"]) for r in real]
    found: dict[str, str] = {}
    for a, b in zip(shown, real, strict=True):
        assert found.setdefault(alias(a), alias(b)) == alias(b)
    return found


Key = Callable[[dict[str, str]], object]


def candidates(left: list[dict[str, str]], right: list[dict[str, str]], key: Key,
               name: Callable[[dict[str, str]], str] = alias) -> tuple[dict[str, list[set[str]]], int]:
    """For each alias of `left`, per row, the aliases of `right` with a row of the same key; and how many
    rows of `left` matched exactly one row of `right`."""
    index: dict[object, list[str]] = defaultdict(list)
    for r in right:
        index[key(r)].append(name(r))
    found: dict[str, list[set[str]]] = defaultdict(list)
    one_to_one = 0
    for r in left:
        hits = index.get(key(r), [])
        one_to_one += len(hits) == 1
        found[name(r)].append(set(hits))
    return found, one_to_one


def linked_by_one_session(found: dict[str, list[set[str]]]) -> dict[str, str]:
    return {a: next(iter(s)) for a, sets in found.items() for s in sets if len(s) == 1}


def linked_by_intersection(found: dict[str, list[set[str]]]) -> dict[str, str]:
    out = {}
    for a, sets in found.items():
        common = set.intersection(*sets)
        if len(common) == 1:
            out[a] = next(iter(common))
    return out


def correct(links: dict[str, str], left: dict[str, str], right: dict[str, str]) -> set[str]:
    """The people whose alias on the left was linked to their own alias on the right."""
    return {left[a] for a, b in links.items() if left[a] == right[b]}


def start_minute(r: dict[str, str]) -> str:
    return r["event.start"]


def test_no_identifier_in_any_file(trust, exports):
    """An alias protects against reading who: no asset tag, MAC, staff id, sign-in or session id anywhere."""
    config = load_config(trust)
    secrets = {d.asset_tag for d in config.devices} | {d.mac for d in config.devices} | \
        {d.owner for d in config.devices if d.owner} | set(config.logins)
    for name in ("week1", "month"):
        for file in ("sessions.csv", "sessions.jsonl", "report.html", "manifest.json"):
            text = (exports[name] / file).read_text()
            assert not [s for s in secrets if s in text], (name, file)
        assert {r["social.session_id"] for r in read(exports[name])} == {""}
    identified = (exports["identified"] / "sessions.csv").read_text()
    assert "ASH-LT-1000" in identified and "S4000" in identified  # the check can fail


TIME_COLUMNS = ("event.start", "event.end", "social.local_start", "social.local_end")


@pytest.mark.parametrize("column", TIME_COLUMNS)
def test_times_to_the_minute(rows, column):
    """No time finer than a minute in a pseudonymised export; an identified export keeps its seconds."""
    for name in ("week1", "week2", "month"):
        assert all(r[column].endswith((":00.000Z", ":00+00:00")) for r in rows[name]), name
    assert not all(r[column].endswith((":00.000Z", ":00+00:00")) for r in rows["identified"])


@pytest.mark.parametrize("name", ["week1", "month"])
def test_durations_come_from_the_minutes_shown(exports, rows, name):
    """Durations and minutes are the shown end minus the shown start: they carry no seconds."""
    for line in (exports[name] / "sessions.jsonl").read_text().splitlines():
        r = json.loads(line)
        shown = (int(r["event.end"][14:16]) - int(r["event.start"][14:16])) % 60  # within the hour here
        assert r["event.duration"] == shown * 60_000_000_000 and r["social.minutes"] == shown
    assert any(float(r["social.minutes"]) % 1 for r in rows["identified"])  # identified: to 0.01 minute


def test_millisecond_times_matched_every_session(rows):
    """The finding: start times to the millisecond (what pseudonymised exports carried) match every
    session of the week one to one, and so every alias."""
    week = [r for r in rows["identified"] if r["social.local_date"] <= WEEK1[1].isoformat()]
    found, one_to_one = candidates(week, rows["identified"], start_minute)
    assert one_to_one == len(week) and len(linked_by_one_session(found)) == PEOPLE


def test_overlapping_exports_are_linked_by_minutes(rows):
    """What an alias does not protect against: exports of overlapping periods hold the same sessions.
    A person is linked by one session whose minute no one else's shares; intersecting the candidates of
    a week's sessions links the rest (docs/exports.md gives these figures)."""
    week, month = truth(rows, "week1", WEEK1), truth(rows, "month", MONTH)
    found, one_to_one = candidates(rows["week1"], rows["month"], start_minute)
    alone = {week[alias(r)] for r in rows["week1"]
             if sum(start_minute(o) == start_minute(r) for o in rows["week1"]) == 1}
    by_one = linked_by_one_session(found)
    assert correct(by_one, week, month) == alone >= {f"S40{k:02d}" for k in HABIT}
    assert (len(alone), one_to_one, len(rows["week1"])) == (15, 28, 156)  # as docs/exports.md says
    assert len(correct(linked_by_intersection(found), week, month)) == PEOPLE  # a week of minutes: all


def test_exports_of_different_weeks_share_no_time(rows):
    """What an alias protects against: two exports of different periods have no time in common."""
    found, one_to_one = candidates(rows["week1"], rows["week2"], start_minute)
    assert one_to_one == 0 and not linked_by_one_session(found)


def local_weekday(r: dict[str, str]) -> int:
    return date.fromisoformat(r["social.local_date"]).weekday()


def nothing(r: dict[str, str]) -> object:
    return None


def slot(r: dict[str, str]) -> object:
    return local_weekday(r), r["social.period"]


# per-person facts from config, and what they are compared within: (column, base)
CONTEXT: dict[str, tuple[Key, Key]] = {
    "host.type": (lambda r: r["host.type"], nothing),
    "social.period_kind": (lambda r: r["social.period_kind"], slot),  # within a weekday's period
    "social.exemption": (lambda r: r["social.exemption"], nothing),
}


def singled_out(rows: list[dict[str, str]], key: Key, base: Key = nothing) -> set[object]:
    """The values of (base, key) that exactly one alias carries where several carry the base: what
    the column adds to singling someone out."""
    holders: dict[object, set[str]] = defaultdict(set)
    within: dict[object, set[str]] = defaultdict(set)
    for r in rows:
        holders[(base(r), key(r))].add(alias(r))
        within[base(r)].add(alias(r))
    return {value for value, names in holders.items() if len(names) == 1 and len(within[value[0]]) > 1}


def linked_across(left: list[dict[str, str]], right: list[dict[str, str]], key: Key,
                  base: Key = nothing) -> set[object]:
    """Values one alias alone carries in each of two exports: the same person in both."""
    return singled_out(left, key, base) & singled_out(right, key, base)


def weeks(rows, name: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    if name == "identified":
        table = rows["identified"]
        return ([r for r in table if r["social.local_date"] <= WEEK1[1].isoformat()],
                [r for r in table if WEEK2[0].isoformat() <= r["social.local_date"] <= WEEK2[1].isoformat()])
    return rows["week1"], rows["week2"]


@pytest.mark.parametrize(("column", "identified"), [
    ("host.type", {(None, "tablet")}),  # the only tablet
    ("social.period_kind", {((4, "P4"), "non-contact"), ((4, "P4"), "contact")}),  # S4001's own free P4
    ("social.exemption", {(None, "marketing-team")}),  # S2004, a marketing team of one
])
def test_context_columns_single_no_one_out(rows, column, identified):
    """A pseudonymised export carries no value from config that one person alone has in two exports of
    different weeks; an identified export does (so the test can fail)."""
    assert linked_across(*weeks(rows, "week1"), *CONTEXT[column]) == set()
    assert linked_across(*weeks(rows, "identified"), *CONTEXT[column]) == identified


def test_habits_link_exports_of_different_weeks(rows):
    """What an alias does not protect against: the same platform in the same place at the same hour of
    the same weekday, every week, is one person in both exports."""
    def habit(r: dict[str, str]) -> object:
        return local_weekday(r), r["social.local_start"][11:16], r["social.zone"], r["social.platform"]
    habits = {value for _, value in linked_across(rows["week1"], rows["week2"], habit)}
    assert {(w, t) for w, t, _, p in habits if p == "youtube"} == {(k % 5, f"10:{k:02d}") for k in HABIT}


def test_own_timetable_is_the_schools_but_flags_follow_it(rows):
    """S4001's own timetable frees Friday P4: the export says P4 is contact (as it is for everyone), and
    admits by the flags that S4001 was not flagged for contact time in it."""
    def friday_p4(table, person):
        return [r for r in table if r["social.period"] == "P4" and local_weekday(r) == 4 and person(r)]
    week = truth(rows, "month", MONTH)
    mine = friday_p4(rows["month"], lambda r: week.get(alias(r)) == "S4001")
    theirs = friday_p4(rows["month"], lambda r: week.get(alias(r)) == "S4002")
    assert mine and theirs and {r["social.period_kind"] for r in mine + theirs} == {"contact"}
    assert {r["social.flags"] for r in mine} == {"pupil_area (4.3)"}
    assert {r["social.flags"] for r in theirs} == {"contact_time (4.3);pupil_area (4.3)"}
    real = friday_p4(rows["identified"], lambda r: r["user.id"] == "S4001")
    assert {r["social.period_kind"] for r in real} == {"non-contact"}


@pytest.mark.parametrize(("team", "shown", "identified"), [
    (SMALL, "exempt (clause 4.1)", "small-team-posts"),  # four people: not named
    (BIG, "big-team-posts", "big-team-posts"),  # five people: named
])
def test_exemption_named_only_for_five_or_more(exports, rows, team, shown, identified):
    people = {f"S40{k:02d}" for k in team}
    month = truth(rows, "month", MONTH)
    mine = [r for r in rows["month"] if month.get(alias(r)) in people and r["social.platform"] == "linkedin"]
    assert mine and {r["social.exemption"] for r in mine} == {shown}
    real = [r for r in rows["identified"] if r["user.id"] in people and r["social.platform"] == "linkedin"]
    assert {r["social.exemption"] for r in real} == {identified}
    report = (exports["month"] / "report.html").read_text()
    assert shown in report and ("small-team-posts" in report) is False
    manifest = json.loads((exports["month"] / "manifest.json").read_text())
    assert manifest["minimised"]["exemptions_named"] == ["big-team-posts"]


# --- the same minimisation in a listing: `events` under aliases -----------------------------------

SHOWN = ("event.start", "event.end", "event.duration", "social.minutes", "social.period_kind", "host.type",
         "social.exemption", "social.platform", "social.zone", "social.local_date", "social.flags")


def events_rows(trust: Path, capsys, *extra: str) -> list[dict[str, str]]:
    capsys.readouterr()
    assert main(["events", "--config", str(trust), "--school", "ash-secondary", "--format", "csv",
                 "--since", MONTH[0].isoformat(), "--until", MONTH[1].isoformat(), *extra]) == 0
    return list(csv.DictReader(capsys.readouterr().out.splitlines()))


def facts(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    return sorted(tuple(r[c] for c in SHOWN) for r in rows)


def test_events_listing_shows_what_a_pseudonymised_export_shows(trust, rows, capsys):
    """A listing discloses what an export does, so it is minimised the same way: every time, minute,
    period kind, device kind and exemption label of `events` is the month export's."""
    listed = events_rows(trust, capsys)
    assert len(listed) == len(rows["month"]) > 100
    assert facts(listed) == facts(rows["month"])
    # and not the identified export's: the check can fail
    assert facts(listed) != facts(rows["identified"])


@pytest.mark.parametrize(("column", "pseudonymised", "identified"), [
    ("event.start", lambda v: v.endswith(":00.000Z"), lambda v: not v.endswith(":00.000Z")),
    ("event.end", lambda v: v.endswith(":00.000Z"), lambda v: not v.endswith(":00.000Z")),
    ("event.duration", lambda v: int(v) % 60_000_000_000 == 0, lambda v: int(v) % 60_000_000_000 != 0),
    ("social.minutes", lambda v: float(v) == int(float(v)), lambda v: float(v) != int(float(v))),
    ("host.type", lambda v: v == "", lambda v: v == "laptop"),  # the only tablet would be its owner's
    ("social.exemption", lambda v: "marketing" not in v and "small-team" not in v, lambda v: True),
])
def test_events_fields_minimised_unless_identified(trust, capsys, column, pseudonymised, identified):
    listed = events_rows(trust, capsys)
    assert all(pseudonymised(r[column]) for r in listed), column
    named = events_rows(trust, capsys, "--identified", "--reason", "test: listing keeps what it stored")
    assert any(identified(r[column]) for r in named), column


@pytest.mark.parametrize(("exemption", "listed", "named"), [
    ("marketing-team", 0, 4),  # one person: unnamed in a listing (the example's S2004, four Mondays)
    ("small-team-posts", 0, 16),  # four people, four Tuesdays
    ("big-team-posts", 20, 20),  # five people (and the small ones together are five too): named
])
def test_events_exemptions_named_only_for_groups(trust, capsys, exemption, listed, named):
    plain = events_rows(trust, capsys)
    ident = events_rows(trust, capsys, "--identified", "--reason", "test: exemption names")
    assert sum(exemption in r["social.exemption"] for r in plain) == listed
    assert sum(exemption in r["social.exemption"] for r in ident) == named


def test_events_table_and_jsonl_are_minimised(trust, capsys):
    """The table shows exemption labels and the JSON lines every field: neither names a small exemption
    or shows a time finer than a minute."""
    capsys.readouterr()
    assert main(["events", "--config", str(trust), "--school", "ash-secondary", "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and all(line["event.start"].endswith(":00.000Z") for line in lines)
    exemptions = " ".join(json.dumps(line["social.exemption"]) for line in lines)
    assert "big-team-posts" in exemptions and "small-team" not in exemptions and "marketing" not in exemptions
    assert main(["events", "--config", str(trust), "--school", "ash-secondary", "--format", "table"]) == 0
    table = capsys.readouterr().out
    assert "exempt:exempt (clause 4.1)" in table and "exempt:big-team-posts" in table
    assert "small-team" not in table and "marketing" not in table
