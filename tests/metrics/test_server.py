"""The metrics endpoint scraped over real HTTP: plain, basic auth, TLS; bounded labels."""

from __future__ import annotations

import hashlib
import socket
import ssl

import httpx
import pytest

from monitor.errors import UserError
from monitor.metrics.registry import Metrics, exposition_registry
from monitor.metrics.server import MetricsServer, load_basic_auth
from tests.proxy_helpers import make_ca_and_leaf


@pytest.fixture
def metrics() -> Metrics:
    m = Metrics()
    m.accesses.labels("oak-primary", "hall", "youtube", "contact", "true").inc(3)
    return m


def serve(metrics: Metrics, **kwargs) -> MetricsServer:
    return MetricsServer("127.0.0.1:0", exposition_registry(metrics), **kwargs).start()


def test_plain_scrape(metrics):
    server = serve(metrics)
    try:
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    finally:
        server.stop()
    assert ('social_monitor_accesses_total{flagged="true",period_kind="contact",platform="youtube",'
            'school="oak-primary",zone="hall"} 3.0') in text
    assert 'social_monitor_build_info{version="0.1.0"} 1.0' in text


def test_basic_auth(metrics, tmp_path):
    users_file = tmp_path / "users"
    users_file.write_text(f"# scrapers\nprometheus:{hashlib.sha256(b's3cret').hexdigest()}\n")
    server = serve(metrics, basic_auth=load_basic_auth(users_file))
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, auth=("prometheus", "wrong"), timeout=5).status_code == 401
        assert httpx.get(url, auth=("nobody", "s3cret"), timeout=5).status_code == 401
        good = httpx.get(url, auth=("prometheus", "s3cret"), timeout=5)
    finally:
        server.stop()
    assert good.status_code == 200 and "social_monitor_accesses_total" in good.text


def test_tls(metrics, tmp_path):
    ca, cert, key = make_ca_and_leaf(["localhost"], tmp_path)
    server = serve(metrics, certfile=str(cert), keyfile=str(key))
    idle = socket.create_connection(("127.0.0.1", server.port))  # never says hello
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
            text = client.get(f"https://localhost:{server.port}/metrics", timeout=5).text
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)  # no plain HTTP
    finally:
        idle.close()
        server.stop()
    assert "social_monitor_accesses_total" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [("prometheus\n", ":1: expected 'user:sha256hex'"), ("a:b:c\n", ":1: expected 'user:sha256hex'")],
)
def test_bad_auth_file_names_the_line(tmp_path, content, message):
    path = tmp_path / "users"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_basic_auth(path)


def test_port_in_use_is_a_clear_error(metrics):
    first = serve(metrics)
    try:
        with pytest.raises(UserError, match=r"listen\.metrics: cannot listen"):
            MetricsServer(f"127.0.0.1:{first.port}", exposition_registry(metrics))
    finally:
        first.stop()
