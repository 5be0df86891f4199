"""The principal's report: words, charts and rows, rendered in a real headless Chromium, offline."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.exports.export import run_export
from monitor.exports.report import ReportStats, span_words, summary_paragraphs
from monitor.exports.request import ExportRequest
from monitor.observation import Exemption, Flag
from monitor.store.sessions import Session
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


def chromium_dom(page: Path, profile: Path, *extra: str) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-extensions",
           f"--user-data-dir={profile}", *extra, "--dump-dom", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


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
    assert exempt_rows and "marketing-team (4.1)" in table
    assert "Contact time (4.3)" in table and "Pupil area (4.3)" in table
    # the attacker's hostname is text in the rendered DOM, never an element
    assert "<img" not in dom and "<script" not in dom
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in dom
    assert re.search(r'id="chain-head">[0-9a-f]{64}<', dom)
    assert "90 days" in dom


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
@pytest.mark.timeout(120)
def test_prints_to_pdf(report, tmp_path):
    pdf = tmp_path / "report.pdf"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--no-pdf-header-footer",
           f"--print-to-pdf={pdf}", report.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=60, check=True)
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000


def session(
    day: str, period: str | None, zone: str, platform: str, flags=(), exemption=None, **kw
) -> Session:
    return Session(device=kw.get("device", "D1"), platform=platform, school="ash-secondary", zone=zone,
                   period=period, local_date=day, first_seen=1.79e9, last_seen=1.79e9 + 60, flags=flags,
                   exemption=exemption, platform_name=platform.title(), owner=kw.get("owner"))


CONTACT = Flag("contact_time", "4.3", "contact time")
PUPILS = Flag("pupil_area", "4.3", "pupil area")


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
    from monitor.exports.report import ReportContext
    from monitor.store.chain import ChainHead

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
    from monitor.exports.report import ReportContext
    from monitor.store.chain import ChainHead

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
