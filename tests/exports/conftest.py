"""A realistic store (four weeks of Ash Grove Academy) and an export runner, shared by the export tests."""

from __future__ import annotations

import pytest

from monitor.exports.export import run_export
from monitor.exports.request import ExportRequest
from tests.export_helpers import FIRST, LAST, populate


@pytest.fixture(scope="module")
def store(example_config, tmp_path_factory):
    s = populate(example_config, tmp_path_factory.mktemp("store") / "store.db")
    yield s
    s.close()


@pytest.fixture
def export(example_config, store, tmp_path):
    """Run an export into tmp_path/<name>, logging to tmp_path/log.jsonl."""

    def run(name: str = "out", **kw):
        request = ExportRequest(school=kw.pop("school", "ash-secondary"), first_day=kw.pop("first", FIRST),
                                last_day=kw.pop("last", LAST), out=tmp_path / name, **kw)
        return run_export(example_config, store, request, log_path=tmp_path / "log.jsonl", user="head")

    return run
