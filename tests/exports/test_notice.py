"""The privacy notice follows the live config; nothing identifiable is stored without a DPIA and purpose."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from monitor.config.loader import load_config
from monitor.exports.notice import render_notice
from monitor.metrics.registry import Metrics
from monitor.observation import Observation
from monitor.store.sqlite import open_store
from monitor.store.writer import StoreWriter
from monitor.tagging.pipeline import Pipeline, storage_allowed
from monitor.tagging.tagger import Tagger
from tests.conftest import EXAMPLE, london


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notice")
    for name in ("devices.csv", "staff-timetable.csv", "logins.csv"):
        shutil.copy(EXAMPLE.parent / name, tmp / name)
    example_data = yaml.safe_load(EXAMPLE.read_text())
    example_data["retention_days"] = 45
    example_data["trust"]["dpia_reference"] = "DPIA-2027-099 <rev 2>"
    example_data["trust"]["contact"] = "privacy@ash.example"
    example_data["policy"]["sensitive_categories"] = ["trade-union", "health"]
    (tmp / "trust.yaml").write_text(yaml.safe_dump(example_data, sort_keys=False))
    return load_config(tmp / "trust.yaml")


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize(
    "expected",
    [
        "45 days",  # retention, from the config
        "DPIA-2027-099",  # the DPIA reference
        "privacy@ash.example",  # how to make a subject access request
        "trade-union: ",  # never-recorded categories, with the platforms they cover
        "UNISON",
        "health: ",
        "guest-wifi (byod-guest): not monitored",  # where nothing is recorded
        "staff-room (staff-room): no pupils",
        "classrooms (classroom): pupil area",
        "The marketing team posts to the schools",  # an exemption's reason (4.1)
        "clause 4.3",
        "never records the content",
        "export log",  # who can export, and that every export is logged
        "YouTube (video)",  # what is recorded: platforms and categories
        "To check that personal social-media use",  # the purpose
    ],
)
def test_notice_from_live_config(edited, fmt, expected):
    text = render_notice(edited, fmt)
    if fmt == "html":
        text = text.replace("&#x27;", "'")
    assert expected in text


def test_notice_follows_what_config_changes(edited):
    text = render_notice(edited, "md")
    never = text.split("## Categories never recorded", 1)[1].split("\n## ", 1)[0]
    recorded = text.split("## What is recorded", 1)[1].split("\n## ", 1)[0]
    # no longer a sensitive category in this config: now listed as recorded, not as never recorded
    assert "employee-assistance" not in never and "(employee-assistance)" in recorded
    assert "UNISON" in never and "UNISON" not in recorded
    assert not re.search(r"\b90 days", text)  # the example's retention_days, replaced by 45


def test_notice_escapes_config_text(edited):
    html = render_notice(edited, "html")
    assert "DPIA-2027-099 &lt;rev 2&gt;" in html and "<rev 2>" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)
    md = render_notice(edited, "md")
    assert r"DPIA-2027-099 \<rev 2\>" in md


def test_example_notice_names_its_dpia(example_config):
    text = render_notice(example_config, "md")
    assert "DPIA-2026-014" in text and "90 days" in text


# --- storage refused without a DPIA reference and a purpose ---------------------------------------


@pytest.mark.parametrize(
    ("missing", "stored"),
    [
        ((), True),
        (("dpia_reference",), False),
        (("purpose",), False),
        (("dpia_reference", "purpose"), False),
    ],
)
def test_pipeline_stores_only_with_dpia_and_purpose(example_data, write_config, tmp_path, missing, stored):
    for name in missing:
        example_data["trust"].pop(name)
    config = load_config(write_config(example_data))
    tagger = Tagger(config)
    reason = storage_allowed(tagger)
    assert (reason is None) == stored
    for name in missing:
        assert f"trust.{name}" in reason
    metrics = Metrics()
    store = open_store(tmp_path / "store.db")
    writer = StoreWriter(store, metrics, max_delay=0.01).start()
    pipeline = Pipeline(tagger, sink=writer, metrics=metrics)
    # ASH-LT-0002 in a classroom during P2: flagged, identifiable
    for k in range(3):
        pipeline.submit(Observation(london(2026, 11, 30, 10, k), "10.20.10.41", 50000, "198.51.100.7", 443,
                                    "tcp", "tls", "www.facebook.com"))
    assert writer.flush(10)
    writer.close()
    check = open_store(tmp_path / "store.db")
    assert (check.count() == 1) == stored
    assert check.count() in (0, 1)
    check.close()
    sample = metrics.registry.get_sample_value
    assert sample("social_monitor_accesses_total", {"school": "ash-secondary", "zone": "classrooms",
                  "platform": "facebook", "period_kind": "contact", "flagged": "true"}) == 1  # one access,
    # counted by the writer when stored, by the pipeline when the DPIA gate refuses storage
    not_stored = sample("social_monitor_observations_total", {"source": "sensor", "protocol": "tls",
                                                              "outcome": "not_stored"})
    assert (not_stored or 0) == (0 if stored else 3)


# --- each claim the notice makes holds for what the software does -----------------------------------


@pytest.fixture
def live(example_data, write_config, tmp_path):
    """The example trust with a populated store, through the real CLI."""
    from tests.export_helpers import populate

    example_data["store"]["path"] = str(tmp_path / "store.db")
    path = write_config(example_data)
    config = load_config(path)
    populate(config, config.store_path).close()
    return config


def notice_text(config) -> str:
    """The notice's words before Markdown or HTML escapes them (a path's underscores, say)."""
    from monitor.exports.notice import notice_sections

    return "\n".join(p for s in notice_sections(config) for p in (*s.paragraphs, *s.bullets))


def cli(*argv: str) -> int:
    from monitor.cli import main

    return main(list(argv))


def log_entries(config):
    from monitor.exports.log import log_path_for, read_log

    return read_log(log_path_for(config.store_path)).entries


# how each IDENTIFIED_OUTPUTS row is run (by its command), with its reason and without
RUN = {
    "export": (["export", "--school", "ash-secondary", "--from", "2026-11-02", "--to", "2026-11-08",
                "--identify"], ["--reason", "case 7"], "--out"),
    "events": (["events", "--identified", "--format", "csv"], ["--reason", "case 7"], None),
    "sar": (["sar", "--staff", "S2002"], [], "--out"),
    "classify": (["classify", "--identified", "{pcap}"], ["--reason", "case 7"], None),
    "explain": (["explain", "--identified", "--client", "10.20.10.41", "--mac", "3c:52:82:20:00:02", "--host",
                 "www.facebook.com", "--at", "2026-11-02T10:05"], ["--reason", "case 7"], None),
}


@pytest.mark.parametrize("row", __import__("monitor.exports.notice", fromlist=["x"]).IDENTIFIED_OUTPUTS,
                         ids=lambda row: row[0].split()[0])
def test_every_identified_output_is_in_the_export_log(live, tmp_path, capsys, row):
    """The notice lists these as the outputs that name people, each entered in the export log."""
    from scapy.utils import wrpcap

    from tests.capture_helpers import inventory_hello

    command, kind, what = row
    argv, reason, out = RUN[command.split()[0]]
    pcap = tmp_path / "laptop.pcap"  # ASH-LT-0002 reaches Facebook from a classroom
    wrpcap(str(pcap), [inventory_hello("3c:52:82:20:00:02", "10.20.10.41", "www.facebook.com")])
    argv = [str(pcap) if a == "{pcap}" else a for a in argv]
    assert f"{what} (social-monitor {command})" in render_notice(live)
    extra = [out, str(tmp_path / "out")] if out else []
    if reason:  # without its reason it is refused and nothing is logged
        assert cli(*argv, *extra, "--config", str(live.path)) == 1
        assert log_entries(live) == [] and not (tmp_path / "out").exists()
    capsys.readouterr()
    assert cli(*argv, *reason, *extra, "--config", str(live.path)) == 0
    shown = capsys.readouterr().out + "".join(p.read_text() for p in (tmp_path / "out").glob("*.csv"))
    assert "ASH-LT-0002" in shown
    [entry] = log_entries(live)
    assert (entry.kind, entry.identified) == (kind, True) and entry.extra["included"]
    # and the same command without the names shows none
    plain = [a for a in argv if a != "--identified"]
    if command.split()[0] in ("classify", "explain"):
        capsys.readouterr()
        assert cli(*plain, "--config", str(live.path)) == 0
        text = capsys.readouterr().out
        assert "ASH-LT-0002" not in text and "S2002" not in text and "3c:52:82:20:00:02" not in text
        assert "Device " in text and len(log_entries(live)) == 1


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl"])
def test_a_listing_without_a_reason_names_no_device_or_person(live, capsys, fmt):
    capsys.readouterr()
    assert cli("events", "--format", fmt, "--config", str(live.path)) == 0
    out = capsys.readouterr().out
    named = {d.asset_tag for d in live.devices} | {d.owner for d in live.devices if d.owner} | {
        d.mac for d in live.devices}
    assert "Device 01" in out and not [n for n in named if n in out]
    assert "aliases that change with every listing" in render_notice(live)


def test_the_dashboard_counts_name_no_device_person_or_address(live):
    """The notice's dimensions are the metric's labels; no metric has a label that could name anyone."""
    from prometheus_client import generate_latest

    from monitor.exports.notice import dashboard_dimensions
    from tests.export_helpers import observations

    metrics = Metrics()
    labels = {name for m in vars(metrics).values() for name in getattr(m, "_labelnames", ())}
    assert not labels & {"device", "host", "owner", "user", "staff", "ip", "mac", "address", "asset"}
    pipeline = Pipeline(Tagger(live), metrics=metrics)
    for o in observations()[:200]:
        pipeline.submit(o)
    text = generate_latest(metrics.registry).decode()
    assert "ash-secondary" in text
    named = {d.asset_tag for d in live.devices} | {d.owner for d in live.devices if d.owner} | {
        d.mac for d in live.devices} | {o.client_ip for o in observations()[:200]}
    assert not [n for n in named if n in text]
    assert dashboard_dimensions() == [n.replace("_", " ") for n in metrics.accesses._labelnames]
    assert f"counts of accesses by {', '.join(dashboard_dimensions())}: never a device" in render_notice(live)


@pytest.fixture
def short_lived(example_data, write_config, tmp_path):
    """The example trust, its exports kept 30 days and its export log 400, with a populated store."""
    from tests.export_helpers import populate

    example_data["store"]["path"] = str(tmp_path / "store.db")
    example_data["exports"] = {"retention_days": 30, "log_retention_days": 400}
    config = load_config(write_config(example_data))
    populate(config, config.store_path).close()
    return config


@pytest.mark.parametrize(("days_later", "sessions_left", "export_left", "log_folded"), [
    (29, True, True, False),  # nothing is past its period yet (the store's November is < 90 days old)
    (31, True, False, False),  # the export is past 30 days: deleted, the log keeps its entry
    (399, False, False, False),  # the sessions are past 90 days; the log entry is not past 400
    (401, False, False, True),  # the log entry is past 400 days: folded into a summary of counts
])
def test_retention_claims_are_what_the_purge_deletes(short_lived, capsys, days_later, sessions_left,
                                                     export_left, log_folded):
    """The notice's three periods are the ones a real purge enforces, on each side of each period."""
    import time
    from datetime import UTC, datetime

    from monitor.exports.notice import Retention, enforced_retention

    config = short_lived
    kept = enforced_retention(config)
    assert kept == Retention(90, 30, 400, str(config.exports_folder))
    out = config.exports_folder / "ash-week"
    assert cli("export", "--school", "ash-secondary", "--from", "2026-11-02", "--to", "2026-11-08",
               "--identify", "--reason", "case 7", "--out", str(out), "--config", str(config.path)) == 0
    [made] = log_entries(config)
    now = datetime.fromtimestamp(time.time() + days_later * 86400 + 3600, UTC).isoformat()
    assert cli("purge", "--now", now, "--config", str(config.path)) == 0
    with open_store(config.store_path, create=False) as store:
        assert (store.count() > 0) == sessions_left
    assert out.exists() == export_left
    log = log_entries(config)
    assert (made.hash in {e.hash for e in log}) != log_folded
    assert any(e.kind == "folded" for e in log) == log_folded
    assert not [e for e in log if e.kind == "folded" and "included" in e.extra]  # counts, not whom
    text = notice_text(config)
    assert f"kept for {kept.sessions_days} days and then deleted by the gateway's daily purge" in text
    assert f"in {kept.exports_folder} are deleted {kept.exports_days} days after they were made" in text
    assert f"keeps each entry for {kept.export_log_days} days" in text


@pytest.mark.parametrize(
    ("basis", "shown"),
    [
        ("Public task (UK GDPR art. 6(1)(e)).", "Lawful basis: Public task (UK GDPR art. 6(1)(e))."),
        ("Legitimate interests <art. 6(1)(f)>", r"Lawful basis: Legitimate interests \<art. 6(1)(f)\>."),
        (None, "Lawful basis: not yet recorded."),
    ],
)
def test_lawful_basis_is_the_configs(example_data, write_config, basis, shown):
    example_data["trust"]["lawful_basis"] = basis
    assert shown in render_notice(load_config(write_config(example_data)), "md")


@pytest.mark.parametrize(
    "right",
    ["subject access request, UK GDPR art. 15", "object to this monitoring", "(art. 21)",
     "corrected (art. 16)", "Records are not edited (the store is tamper-evident)", "ico.org.uk"],
)
def test_rights_are_stated_with_the_contact(edited, right):
    rights = render_notice(edited, "md").split("## Your rights", 1)[1]
    assert right in rights and rights.count("privacy@ash.example") == 3


def test_records_are_not_edited_without_it_showing(live):
    """The rectification and retention claims say records are tamper-evident: an edit breaks the chain."""
    import sqlite3

    con = sqlite3.connect(live.store_path)
    con.execute("UPDATE sessions SET owner = 'S2005' WHERE owner = 'S2002'")
    con.commit()
    con.close()
    with open_store(live.store_path, create=False) as store:
        assert not store.verify().ok


@pytest.mark.parametrize(
    ("record_special", "tinder_stored", "section_says"),
    [
        ([], False, "dating: Badoo, Bumble, Grindr, Hinge, Tinder"),
        ([{"category": "dating", "reason": "DPIA-2027-1 s.4 safeguarding"}], True,
         "dating (recorded: DPIA-2027-1 s.4 safeguarding): Badoo, Bumble, Grindr, Hinge, Tinder"),
    ],
)
def test_special_categories_are_described_as_tagged(example_data, write_config, record_special, tinder_stored,
                                                    section_says):
    example_data["policy"]["record_special"] = record_special
    config = load_config(write_config(example_data))
    event = Tagger(config).tag(Observation(london(2026, 11, 30, 12, 30), "10.20.30.10", 50000, "198.51.100.7",
                                           443, "tcp", "tls", "tinder.com"))
    assert event.recordable is tinder_stored
    text = render_notice(config, "md")
    special = text.split("## Special category data (UK GDPR art. 9)", 1)[1].split("\n## ", 1)[0]
    recorded = text.split("## What is recorded", 1)[1].split("\n## ", 1)[0]
    assert section_says in special
    assert ("Tinder (dating)" in recorded) is tinder_stored
    assert ("- dating: " in special) is (not tinder_stored)  # listed once: counted only, or recorded
    assert "- political: Gab, Parler, Truth Social" in special


def test_reports_to_the_minute_and_small_exemptions_unnamed(live, tmp_path):
    """The notice's account of what an alias hides is what a pseudonymised export's manifest records."""
    import json

    from monitor.exports.minimise import MIN_GROUP

    out = tmp_path / "weekly"
    assert cli("export", "--config", str(live.path), "--school", "ash-secondary", "--from", "2026-11-02",
               "--to", "2026-11-08", "--out", str(out)) == 0
    minimised = json.loads((out / "manifest.json").read_text())["minimised"]
    assert (minimised["times"], minimised["period_kind"], minimised["min_people"]) == (
        "truncated to the minute", "the school timetable's", MIN_GROUP)
    notice = render_notice(live)
    assert "times are to the minute, your own timetable is not shown" in notice
    assert f"an exemption that covers fewer than {MIN_GROUP} people is not named" in notice
    assert "reports of overlapping periods" in notice
