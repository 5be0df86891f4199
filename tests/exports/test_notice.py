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
    assert "90 days" not in text


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
