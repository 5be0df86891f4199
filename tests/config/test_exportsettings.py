"""The `exports:` section: defaults, bad values named by file, line and field, and the cross-check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from monitor.config.exportsettings import (
    LOG_RETENTION_DAYS,
    ExportSettings,
    export_retention_days,
    retention_errors,
)
from monitor.config.loader import load_config
from monitor.errors import ConfigError
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("exports", "retention", "kept", "log_days"),
    [({}, 90, 90, LOG_RETENTION_DAYS), ({"retention_days": 30}, 90, 30, LOG_RETENTION_DAYS),
     ({"log_retention_days": 400}, 365, 365, 400)],
    ids=["defaults", "own-retention", "own-log-period"],
)
def test_defaults_follow_retention_days(exports, retention, kept, log_days):
    settings = ExportSettings(**exports)
    assert export_retention_days(settings, retention) == kept
    assert settings.log_retention_days == log_days
    assert retention_errors(settings, retention) == []


@pytest.mark.parametrize(
    ("exports", "retention", "message"),
    [
        ({"log_retention_days": 30}, 90,
         "exports.log_retention_days: 30 is shorter than retention_days (90): the export log must outlive "
         "the exports it records"),
        ({"retention_days": 400, "log_retention_days": 365}, 90,
         "exports.log_retention_days: 365 is shorter than exports.retention_days (400): the export log must "
         "outlive the exports it records"),
        ({"retention_days": 10, "log_retention_days": 30}, 90,
         "exports.log_retention_days: 30 is shorter than retention_days (90): the export log must outlive "
         "the data it accounts for"),
    ],
    ids=["log-shorter-than-store", "log-shorter-than-exports", "log-shorter-than-store-only"],
)
def test_a_log_period_shorter_than_what_it_records_is_refused(exports, retention, message):
    assert retention_errors(ExportSettings(**exports), retention) == [message]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"retention_days": 0}, "exports.retention_days: 0"),
        ({"retention_days": "ninety"}, "exports.retention_days"),
        ({"log_retention_days": True}, "exports.log_retention_days"),
        ({"keep_days": 3}, "exports.keep_days"),
        ({"log_retention_days": 10}, "exports.log_retention_days: 10 is shorter than retention_days (90)"),
    ],
    ids=["zero", "text", "boolean", "unknown-key", "cross-check"],
)
def test_bad_exports_section_names_file_and_field(write_config, example_data, value, expected):
    example_data["exports"] = value
    with pytest.raises(ConfigError) as info:
        load_config(write_config(example_data))
    assert any(expected in line and "trust.yaml:" in line for line in info.value.errors), \
        info.value.errors


@pytest.mark.parametrize(
    ("exports", "expected"),
    [({}, "exports in {store}/exports 90 days; export log 2190 days"),
     ({"folder": "kept", "retention_days": 14, "log_retention_days": 730},
      "exports in {config}/kept 14 days; export log 730 days")],
    ids=["defaults", "set"],
)
def test_check_config_reports_the_periods(write_config, example_data, tmp_path, exports, expected):
    example_data["exports"] = exports
    example_data["store"]["path"] = str(tmp_path / "var" / "store.db")
    path = write_config(example_data)
    done = subprocess.run([sys.executable, "-m", "monitor", "check-config", str(path)], capture_output=True,
                          text=True, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert expected.format(store=tmp_path / "var", config=tmp_path) in done.stdout
