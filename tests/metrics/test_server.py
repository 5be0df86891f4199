"""The metrics endpoint scraped over real HTTP: plain, basic auth, TLS; bounded labels."""

from __future__ import annotations

import hashlib
import socket
import ssl

import bcrypt
import httpx
import pytest
from structlog.testing import capture_logs

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


BCRYPT_S3CRET = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("prometheus\n", ":1: expected 'user:bcrypt-hash'"),
        ("a:b:c\n", ":1: expected 'user:bcrypt-hash'"),
        ("# who\n\nprometheus:$2b$04$tooshort\n", ":3: expected 'user:bcrypt-hash'"),
        (f"prometheus:{BCRYPT_S3CRET.replace('$04$', '$99$')}\n", ":1: expected"),  # no such cost
        (f":{BCRYPT_S3CRET}\n", ":1: expected 'user:bcrypt-hash'"),  # no user
    ],
)
def test_bad_auth_file_names_the_line(tmp_path, content, message):
    path = tmp_path / "users"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_basic_auth(path)


@pytest.mark.parametrize(("line", "scheme", "warned"), [
    (f"prometheus:{BCRYPT_S3CRET}", "bcrypt", False),
    (f"prometheus:{BCRYPT_S3CRET.replace('$2b$', '$2y$', 1)}", "bcrypt", False),  # htpasswd -B writes $2y$
    (f"prometheus:{hashlib.sha256(b's3cret').hexdigest()}", "sha256", True),
])
def test_auth_file_schemes_and_the_sha256_deprecation(tmp_path, line, scheme, warned):
    path = tmp_path / "users"
    path.write_text(f"# scrapers\n{line}\n")
    with capture_logs() as logs:
        users = load_basic_auth(path)
    assert users["prometheus"].scheme == scheme and users["prometheus"].matches("s3cret")
    assert not users["prometheus"].matches("wrong")
    warnings = [e for e in logs if e["event"] == "metrics_auth_deprecated"]
    assert len(warnings) == int(warned)
    if warned:  # one line, naming the file and the line
        assert warnings[0]["detail"].startswith(f"{path}:2: ") and "\n" not in warnings[0]["detail"]


@pytest.mark.parametrize(("auth", "status"), [
    (None, 401),
    (("prometheus", "s3cret"), 200),
    (("prometheus", "s3cret"), 200),  # again: from the cache of verified pairs
    (("prometheus", "wrong"), 401),
    (("nobody", "s3cret"), 401),
])
def test_scrape_with_a_bcrypt_password_over_tls(metrics, tmp_path, auth, status):
    ca, cert, key = make_ca_and_leaf(["localhost"], tmp_path)
    users_file = tmp_path / "users"
    users_file.write_text(f"prometheus:{BCRYPT_S3CRET}\n")
    server = serve(metrics, certfile=str(cert), keyfile=str(key), basic_auth=load_basic_auth(users_file))
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
            got = client.get(f"https://localhost:{server.port}/metrics", auth=auth, timeout=5)
            again = client.get(f"https://localhost:{server.port}/metrics", auth=auth, timeout=5)
    finally:
        server.stop()
    assert (got.status_code, again.status_code) == (status, status)
    assert ("social_monitor_accesses_total" in got.text) is (status == 200)


@pytest.mark.parametrize("client_cert", ["signed-by-the-trust", "none", "signed-by-another-ca"])
def test_scrape_with_a_client_certificate(metrics, tmp_path, client_cert):
    for folder in ("server", "trust", "other"):
        (tmp_path / folder).mkdir()
    server_ca, cert, key = make_ca_and_leaf(["localhost"], tmp_path / "server")
    trust_ca, trust_cert, trust_key = make_ca_and_leaf(["prometheus"], tmp_path / "trust", client=True)
    _, other_cert, other_key = make_ca_and_leaf(["prometheus"], tmp_path / "other", client=True)
    server = serve(metrics, certfile=str(cert), keyfile=str(key), client_ca=str(trust_ca))
    context = ssl.create_default_context(cafile=str(server_ca))
    if client_cert == "signed-by-the-trust":
        context.load_cert_chain(trust_cert, trust_key)
    elif client_cert == "signed-by-another-ca":
        context.load_cert_chain(other_cert, other_key)
    try:
        with httpx.Client(verify=context) as client:
            if client_cert == "signed-by-the-trust":
                text = client.get(f"https://localhost:{server.port}/metrics", timeout=5).text
                assert "social_monitor_accesses_total" in text
            else:
                with pytest.raises(httpx.HTTPError):
                    client.get(f"https://localhost:{server.port}/metrics", timeout=5)
    finally:
        server.stop()


def test_client_ca_without_tls_is_refused(metrics, tmp_path):
    with pytest.raises(UserError, match=r"listen\.metrics_tls_client_ca: client certificates need"):
        MetricsServer("127.0.0.1:0", exposition_registry(metrics), client_ca=str(tmp_path / "ca.pem"))


def test_port_in_use_is_a_clear_error(metrics):
    first = serve(metrics)
    try:
        with pytest.raises(UserError, match=r"listen\.metrics: cannot listen"):
            MetricsServer(f"127.0.0.1:{first.port}", exposition_registry(metrics))
    finally:
        first.stop()
