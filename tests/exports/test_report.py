"""The principal's report: sections in order, rendered and printed by a real headless Chromium, offline."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import unicodedata
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.exports.export import run_export
from monitor.exports.report import (
    DETAIL,
    SECTIONS,
    ReportContext,
    ReportStats,
    Section,
    sections_html,
    span_words,
    summary_paragraphs,
    with_section,
)
from monitor.exports.request import ExportRequest
from monitor.observation import Exemption, Flag
from monitor.store.chain import ChainHead
from monitor.store.sessions import Session
from monitor.store.sqlite import open_store
from tests.conftest import london
from tests.export_helpers import FIRST, LAST, populate

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHARTS = ("chart-heatmap", "chart-zone", "chart-platform", "chart-week")
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(scope="module")
def report(example_config, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    with populate(example_config, tmp / "store.db") as store:
        result = run_export(example_config, store,
                            ExportRequest("ash-secondary", FIRST, LAST, tmp / "export"), user="head")
    return result.out / "report.html"


CONTACT = Flag("contact_time", "4.3", "contact time")
PUPILS = Flag("pupil_area", "4.3", "pupil area")
HEAVY = 4  # of the month's people, these few account for most flags


def month_sessions(first: date, last: date, rng: random.Random) -> list[Session]:
    """A busy school: 40 people, a few of them flagged many times a day, the rest now and then."""
    out = []
    day = first
    while day <= last:
        if day.weekday() < 5:
            for k in range(40):
                times = 20 if k < HEAVY else (1 if rng.random() < 0.6 else 0)
                for j in range(times):
                    hour, minute = 9 + j % 7, (7 * j + k) % 50
                    start = london(day.year, day.month, day.day, hour, minute)
                    flags = (CONTACT, PUPILS) if j % 3 else (PUPILS,)
                    out.append(Session(
                        device=f"ASH-LT-{1000 + k}", platform=("youtube", "facebook", "instagram")[j % 3],
                        school="ash-secondary", zone=("classrooms", "library", "media-suite")[k % 3],
                        period=("P1", "P2", "P3", "P4", "P5", "Lunch")[j % 6], local_date=day.isoformat(),
                        first_seen=start, last_seen=start + 30 + 60 * (j % 9), observations=3,
                        flags=flags, owner=f"S{3000 + k}", hostnames=("www.example.com",), week="A",
                        platform_name=("YouTube", "Facebook", "Instagram")[j % 3], pupil_area=True,
                    ))
                # and one unflagged access each in the staff room
                start = london(day.year, day.month, day.day, 12, 40)
                out.append(Session(device=f"ASH-LT-{1000 + k}", platform="reddit", school="ash-secondary",
                                   zone="staff-room", period="Lunch", local_date=day.isoformat(),
                                   first_seen=start, last_seen=start + 300, owner=f"S{3000 + k}"))
        day += timedelta(days=1)
    return out


@pytest.fixture(scope="module")
def month(example_config, tmp_path_factory) -> Path:
    """A month's export (November) of a store that holds September to November: a long detail."""
    tmp = tmp_path_factory.mktemp("month")
    with open_store(tmp / "store.db") as store:
        sessions = month_sessions(date(2026, 9, 21), LAST, random.Random(18))
        store.write_sessions(sessions, now=london(2026, 11, 30))
        result = run_export(example_config, store,
                            ExportRequest("ash-secondary", FIRST, LAST, tmp / "export"), user="head")
    return result.out / "report.html"


BROWSER = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-extensions")


def chromium_dom(page: Path, profile: Path, *extra: str) -> str:
    cmd = [CHROMIUM, *BROWSER, f"--user-data-dir={profile}", *extra, "--dump-dom", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def chromium_pdf(page: Path, profile: Path) -> Path:
    pdf = profile.parent / (page.stem + ".pdf")
    cmd = [CHROMIUM, *BROWSER, f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0 and pdf.exists(), done.stderr[-2000:]
    return pdf


def test_page_fetches_nothing(report):
    html = report.read_text()
    assert not re.search(r"""(src|href|xlink:href|url)\s*[=(]\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert "default-src 'none'" in html  # and the browser is told to refuse any fetch anyway


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
@pytest.mark.timeout(120)
def test_rendered_in_headless_chromium_offline(report, tmp_path):
    # every hostname resolves to nothing: the page must render entirely from itself
    dom = chromium_dom(report, tmp_path / "profile", "--host-resolver-rules=MAP * ~NOTFOUND")
    assert "<svg" in dom and "</html>" in dom
    summary = re.search(r'<section id="summary".*?</section>', dom, re.S).group(0)
    assert "In the four weeks from Monday 2 November to Sunday 29 November 2026" in summary
    assert re.search(r"<strong>\d+ accesses were flagged</strong> under clause 4\.3", summary)
    assert "Most often the platform was YouTube" in summary and "clause 4.1" in summary
    for chart in CHARTS:
        svg = re.search(rf'<svg id="{chart}"[^>]*aria-label="([^"]+)"[^>]*>(.*?)</svg>', dom, re.S)
        assert svg, chart
        assert "<rect" in svg.group(2), chart
    table = re.search(r'<table id="flagged-table">(.*?)</table>', dom, re.S).group(1)
    flagged_rows = re.findall(r'<tr class="flagged">', table)
    exempt_rows = re.findall(r'<tr class="exempt">', table)
    count = int(re.search(r'id="count-flagged">([\d,]+)<', dom).group(1).replace(",", ""))
    teaching = re.search(r'<table id="teaching-table">(.*?)</table>', dom, re.S)
    teaching_rows = re.findall(r'<tr class="flagged">', teaching.group(1)) if teaching else []
    assert len(flagged_rows) + len(teaching_rows) == count > 0
    assert len(teaching_rows) == 24  # YouTube in classrooms during lessons: listed apart, still flagged
    # marketing-team covers one person at Ash Grove: a pseudonymised report does not name it
    assert exempt_rows and "exempt (clause 4.1)" in table and "marketing-team" not in table
    assert "Contact time (4.3)" in table and "Pupil area (4.3)" in table
    # the attacker's hostname is text in the rendered DOM, never an element
    assert "<img" not in dom and "<script" not in dom
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in dom
    assert re.search(r'id="chain-head">[0-9a-f]{64}<', dom)
    assert "90 days" in dom


def front_and_detail(dom: str) -> tuple[list[str], list[str]]:
    """The ids of the sections printed first, and of the detail, in the order the DOM has them."""
    found = re.findall(r'<section id="([^"]+)" class="(front|detail)[^"]*"', dom)
    return [i for i, part in found if part == "front"], [i for i, part in found if part == "detail"]


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
@pytest.mark.timeout(180)
def test_month_structure_in_headless_chromium(month, tmp_path):
    dom = chromium_dom(month, tmp_path / "profile", "--host-resolver-rules=MAP * ~NOTFOUND")
    front, detail = front_and_detail(dom)
    assert front == ["summary", "coverage", "about", "people", "previous", "charts"] and detail == [DETAIL]
    # every front section (a completeness section included) comes before the detail in the page
    assert dom.index('id="detail"') > max(dom.index(f'<section id="{i}"') for i in front)
    assert dom.index('id="about"') < dom.index('id="people"')  # "does not contain": read early
    # minutes beside counts, and the rule that makes them
    assert re.search(r'id="minutes-flagged">\d+ h \d\d min<', dom)
    assert "less than 5 minutes apart (the idle gap)" in dom and "Europe/London" in dom
    minutes = re.findall(r'<td class="minutes">([\d.]+)</td>', dom)
    flagged = int(re.search(r'id="count-flagged">([\d,]+)<', dom).group(1).replace(",", ""))
    # a pseudonymised report's minutes are between times truncated to the minute: whole minutes
    assert len(minutes) == min(flagged, 2000) > 1000 and {"0", "8"} <= set(minutes)
    assert all(m.isdigit() for m in minutes)
    # per person: aliases only, most flags first, the few heavy ones on top
    people = re.search(r'<table id="people-table">(.*?)</table>', dom, re.S).group(1)
    rows = re.findall(r'<tr class="person"><td>([^<]+)</td><td>([\d,]+)</td>', people)
    counts = [int(n.replace(",", "")) for _, n in rows]
    assert counts == sorted(counts, reverse=True) and len(rows) == 25
    assert all(re.fullmatch(r"Staff \d+", alias) for alias, _ in rows) and "S300" not in dom
    assert counts[HEAVY - 1] > 5 * counts[HEAVY]
    few = re.search(r'<p class="note">(\d) people of 40 with a flag account for half or more', dom)
    assert few and int(few.group(1)) <= HEAVY
    assert '<tr class="rest"><td>15 more people</td>' in people
    # the previous period, held in full, side by side
    previous = re.search(r'<table id="previous-period">(.*?)</table>', dom, re.S).group(1)
    assert "Monday 5 October 2026 to Sunday 1 November 2026" in dom
    assert re.search(r"<th scope=\"row\">Flagged \(clause 4.3\)</th><td>[\d,]+</td><td>[\d,]+</td>", previous)
    assert "not in the store" not in previous
    # the trend: eight weeks of context before the export, the ones before the store's history marked
    trend = re.search(r'<svg id="chart-week".*?</svg>', dom, re.S).group(0)
    assert trend.count("(context)") == 6 and trend.count("(context, part)") == 0
    assert trend.count("not in the store (before its history)") == 2
    assert trend.count('class="bar-export"') == 4 and trend.count('class="bar-context"') == 6


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
@pytest.mark.timeout(180)
def test_month_prints_a_few_pages_before_the_detail(month, tmp_path):
    from pypdf import PdfReader

    pdf = chromium_pdf(month, tmp_path / "profile")
    # NFKC: the PDF's text has ligatures ("ﬂagged")
    pages = [unicodedata.normalize("NFKC", page.extract_text() or "") for page in PdfReader(pdf).pages]
    box = PdfReader(pdf).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4, in points
    detail = next(i for i, text in enumerate(pages) if "Detail: flagged accesses" in text)
    assert 2 <= detail <= 5, f"{detail} pages before the detail"
    assert len(pages) > detail + 20  # the detail itself is long: 2,000 rows
    front = "\n".join(pages[:detail])
    for heading in ("Summary", "What this report does and does not contain", "Per person",
                    "Compared with the previous period", "When and where"):
        assert heading in front, heading
    assert "Detail: flagged accesses" not in front and "Staff" in front


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
@pytest.mark.timeout(120)
def test_prints_to_pdf(report, tmp_path):
    pdf = chromium_pdf(report, tmp_path / "profile")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000


def session(
    day: str, period: str | None, zone: str, platform: str, flags=(), exemption=None, **kw
) -> Session:
    return Session(device=kw.get("device", "D1"), platform=platform, school="ash-secondary", zone=zone,
                   period=period, local_date=day, first_seen=1.79e9, last_seen=1.79e9 + 60, flags=flags,
                   exemption=exemption, platform_name=platform.title(), owner=kw.get("owner"))


@pytest.mark.parametrize(
    ("sessions", "expected"),
    [
        ([], ["612 accesses", "None was flagged"]),
        ([session("2026-11-02", "P3", "classrooms", "youtube", (CONTACT, PUPILS))],
         ["1 access was flagged", "1 in contact time and 1 in areas where pupils are present",
          "Youtube in classrooms during P3 (1 access)"]),
        ([session("2026-11-03", None, "library", "facebook", (PUPILS,))] * 3,
         ["3 accesses were flagged", "3 in areas where pupils are present", "during Outside timetable"]),
        ([session("2026-11-02", "P2", "offices", "linkedin", (CONTACT,), Exemption("mkt", "posts", "4.1"))],
         ["None was flagged", "A further 1 access matched a flag", "mkt (1)"]),
        ([Session(device="D2", platform="", school="ash-secondary", zone="classrooms", period="P2",
                  local_date="2026-11-02", first_seen=1.79e9, last_seen=1.79e9, period_kind="contact",
                  obscured_by=("vpn",))] * 2
         + [Session(device="D3", platform="", school="ash-secondary", zone="library", period=None,
                    local_date="2026-11-02", first_seen=1.79e9, last_seen=1.79e9,
                    obscured_by=("encrypted-dns",))],
         ["609 accesses", "None was flagged", "Destination hidden: 3 accesses (encrypted DNS 1, VPN 2), "
          "2 in contact time; no platform can be named, none is flagged."]),
        ([session("2026-11-02", "P1", '<b>"zone"</b>', "<i>x</i>", (CONTACT,))],
         ["&lt;b&gt;&quot;zone&quot;&lt;/b&gt;", "&lt;I&gt;X&lt;/I&gt;"]),
    ],
)
def test_summary_words(example_config, sessions, expected):

    stats = ReportStats(LONDON)
    for _ in range(612 - len(sessions)):
        stats.add(session("2026-11-02", "Lunch", "staff-room", "reddit"), "D9", None)
    for s in sessions:
        stats.add(s, "Device 01", "Staff 01")
    ctx = ReportContext("Trust", "Ash Grove Academy", "ash-secondary", FIRST, LAST, "Europe/London", False,
                        False, None, 90, "now", "me", "0.1.0", "f" * 64, ChainHead(1, "0" * 64))
    text = " ".join(summary_paragraphs(ctx, stats))
    for phrase in expected:
        assert phrase in text, text
    assert "<b>" not in text and "<i>" not in text


@pytest.mark.parametrize(("total", "said"),
                         [(1, "1 access to social media"), (2, "2 accesses to social media")])
def test_summary_agrees_in_number(total, said):

    stats = ReportStats(LONDON)
    for _ in range(total):
        stats.add(session("2026-11-02", "Lunch", "staff-room", "reddit"), "D9", None)
    ctx = ReportContext("Trust", "Ash Grove Academy", "ash-secondary", FIRST, LAST, "Europe/London", False,
                        False, None, 90, "now", "me", "0.1.0", "f" * 64, ChainHead(1, "0" * 64))
    text = " ".join(summary_paragraphs(ctx, stats))
    verb = "was" if total == 1 else "were"
    assert f"{said} from trust devices at Ash Grove Academy {verb} recorded." in text, text


@pytest.mark.parametrize(
    ("first", "last", "words"),
    [
        (FIRST, LAST, "the four weeks"),
        (FIRST, FIRST.replace(day=8), "the week"),
        (FIRST, FIRST, "the day"),
        (FIRST, FIRST.replace(day=4), "the 3 days"),
    ],
)
def test_span_words(first, last, words):
    assert span_words(first, last) == words


def context() -> ReportContext:
    return ReportContext("Trust", "Ash Grove Academy", "ash-secondary", FIRST, LAST, "Europe/London", False,
                         False, None, 90, "now", "me", "0.1.0", "f" * 64, ChainHead(1, "0" * 64))


COMPLETENESS = Section("completeness", "Completeness", lambda ctx, st: "<p>every hour covered</p>")
EMPTY = Section("empty", "Nothing to say", lambda ctx, st: "")


@pytest.mark.parametrize(
    ("sections", "order"),
    [
        (SECTIONS, ["summary", "about", "people", "charts", "detail"]),
        (with_section(SECTIONS, COMPLETENESS), ["summary", "about", "people", "charts",
                                                "completeness", "detail"]),
        (with_section(SECTIONS, COMPLETENESS, before="people"), ["summary", "about", "completeness", "people",
                                                                 "charts", "detail"]),
        ((*SECTIONS, COMPLETENESS), ["summary", "about", "people", "charts", "completeness",
                                     "detail"]),  # appended after the detail: still printed before it
        (with_section(SECTIONS, EMPTY), ["summary", "about", "people", "charts", "detail"]),
    ],
)
def test_sections_print_in_order_detail_last(sections, order):
    """Front sections in their order, the detail last; an empty section (here the previous period, with no
    history read) is left out."""
    html = sections_html(context(), ReportStats(LONDON), sections)
    assert re.findall(r'<section id="([^"]+)" class="(?:front|detail)', html) == order
