"""Multi-process metrics: the directory set-up, and real child processes summed by one real scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from monitor.metrics.multiprocess import MULTIPROC_ENV, cleanup_multiprocess, prepare_multiprocess
from monitor.metrics.registry import Metrics, exposition_registry
from monitor.metrics.server import MetricsServer

ROOT = Path(__file__).resolve().parents[2]


def test_prepare_makes_a_directory_and_exports_it(monkeypatch, tmp_path):
    monkeypatch.setenv(MULTIPROC_ENV, "")  # restored after the test, whatever prepare sets
    made = prepare_multiprocess(parent=str(tmp_path))
    assert made is not None
    assert (os.environ[MULTIPROC_ENV], Path(made).parent, Path(made).is_dir()) == (made, tmp_path, True)
    cleanup_multiprocess(made)
    assert not Path(made).exists()


@pytest.mark.parametrize(
    ("existing", "left"),
    [
        ([], []),
        (["counter_123.db", "gauge_livesum_123.db"], []),  # stale values from an earlier run
        (["counter_123.db", "README"], ["README"]),  # only the client's files are removed
    ],
    ids=["empty", "stale-files-removed", "other-files-kept"],
)
def test_prepare_cleans_a_given_directory(monkeypatch, tmp_path, existing, left):
    given = tmp_path / "metrics"
    given.mkdir()
    for name in existing:
        (given / name).write_bytes(b"x")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    assert prepare_multiprocess() is None  # the service manager owns it: not ours to remove
    assert sorted(os.listdir(given)) == left


def test_prepare_creates_a_given_directory_that_is_missing(monkeypatch, tmp_path):
    given = tmp_path / "run" / "metrics"
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    assert prepare_multiprocess() is None
    assert given.is_dir()


CHILD = """
import sys
from monitor.metrics.registry import Metrics
accesses, depth, up = (int(v) for v in sys.argv[1:])
m = Metrics()
m.accesses.labels("oak", "hall", "youtube", "contact", "true").inc(accesses)
m.store_queue_depth.set(depth)
m.up.labels("proxy").set(up)
"""


def count_in_child(directory: Path, *values: int) -> None:
    env = {**os.environ, MULTIPROC_ENV: str(directory), "PYTHONPATH": str(ROOT)}
    child = subprocess.run([sys.executable, "-c", CHILD, *map(str, values)], env=env, timeout=60)
    assert child.returncode == 0


@pytest.fixture(scope="module")
def scraped(tmp_path_factory) -> str:
    """Two children count into one directory; this process serves it and is scraped over HTTP."""
    directory = tmp_path_factory.mktemp("metrics")
    count_in_child(directory, 3, 5, 1)
    count_in_child(directory, 4, 1, 0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MULTIPROC_ENV, str(directory))
        server = MetricsServer("127.0.0.1:0", exposition_registry(Metrics())).start()
        try:
            return httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
        finally:
            server.stop()


@pytest.mark.integration
@pytest.mark.parametrize(
    "line",
    [
        'social_monitor_accesses_total{flagged="true",period_kind="contact",platform="youtube",'
        'school="oak",zone="hall"} 7.0',
        "social_monitor_store_queue_depth 6.0",  # livesum: both processes' queues
        'social_monitor_component_up{component="proxy"} 1.0',  # livemax: up if either says so
        'social_monitor_build_info{version="0.1.0"} 1.0',  # max, not one per process
    ],
    ids=["counter-summed", "livesum-gauge", "livemax-gauge", "build-info"],
)
def test_children_are_summed_in_one_scrape(scraped, line):
    assert line in scraped.splitlines()
