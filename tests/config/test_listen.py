"""Listen settings open to the world are refused, field by field, unless `insecure: true` says why."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from monitor.config.listen import is_loopback, listen_errors, proxy_client_networks
from monitor.config.models import TrustFile
from monitor.config.readers import read_yaml
from tests.conftest import EXAMPLE, REPO

TLS = {"metrics_tls_cert": "m.crt", "metrics_tls_key": "m.key"}
INSECURE = {"insecure": True, "insecure_reason": "lab gateway, no staff traffic"}


def model(**listen: object) -> TrustFile:
    data = read_yaml(EXAMPLE)
    data["listen"] = {**data["listen"], **listen}
    return TrustFile.model_validate(data)


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1:9464", True),
    ("127.9.9.9:9464", True),
    ("[::1]:9464", True),
    ("localhost:9464", True),
    ("0.0.0.0:9464", False),
    ("[::]:9464", False),
    ("10.10.20.1:9464", False),
    ("gateway.example:9464", False),
])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


ERRORS = [
    # (listen settings, the one error line expected; None: accepted)
    ({"metrics_basic_auth_file": "users"},
     "listen.metrics_basic_auth_file: basic auth over plain HTTP sends the password in the clear"),
    ({"metrics": "0.0.0.0:9464"},
     "listen.metrics: 0.0.0.0:9464 is reachable from the network with no authentication"),
    ({"metrics": "[::]:9464", **TLS},
     "listen.metrics: [::]:9464 is reachable from the network with no authentication"),
    ({"metrics": "0.0.0.0:9464", "metrics_basic_auth_file": "users"},
     "listen.metrics_basic_auth_file: basic auth over plain HTTP"),
    ({"metrics_tls_client_ca": "ca.pem"}, "listen.metrics_tls_client_ca: client certificates need TLS"),
    ({"proxy": "0.0.0.0:8080", "proxy_clients": ["10.0.0.0/8", "0.0.0.0/0"]},
     "listen.proxy_clients[1]: 0.0.0.0/0 lets every address use the proxy"),
    ({"proxy": ["0.0.0.0:8080", "[::]:8080"], "proxy_clients": ["::/0"]},
     "listen.proxy_clients[0]: ::/0 lets every address use the proxy"),
    ({"insecure": True}, "listen.insecure_reason: `insecure: true` needs a reason"),
    ({"insecure": True, "insecure_reason": "  ", "metrics": "0.0.0.0:9464"},
     "listen.insecure_reason: `insecure: true` needs a reason"),
    # accepted
    ({}, None),
    ({"metrics": "0.0.0.0:9464", "metrics_basic_auth_file": "users", **TLS}, None),
    ({"metrics": "0.0.0.0:9464", "metrics_tls_client_ca": "ca.pem", **TLS}, None),
    ({"metrics_basic_auth_file": "users", **INSECURE}, None),
    ({"metrics": "0.0.0.0:9464", **INSECURE}, None),
    ({"proxy": "127.0.0.1:8080", "proxy_clients": ["0.0.0.0/0"]}, None),  # loopback: not the world
    ({"proxy": ["0.0.0.0:8080", "[::]:8080"]}, None),  # the zones' networks only
    ({"proxy": "0.0.0.0:8080", "proxy_clients": ["0.0.0.0/0"], **INSECURE}, None),
]


@pytest.mark.parametrize(("listen", "expected"), ERRORS)
def test_listen_errors(listen, expected):
    errors = listen_errors(model(**listen))
    if expected is None:
        assert errors == []
    else:
        assert len(errors) == 1 and errors[0].startswith(expected), errors
        assert "\n" not in errors[0]


@pytest.mark.parametrize(("listen", "contains", "excludes"), [
    ({}, ["127.0.0.1", "::1", "10.10.20.5", "2001:db8:20:30::10"], ["198.51.100.7", "2001:db9::1"]),
    ({"proxy_clients": ["192.0.2.0/24"]}, ["127.0.0.1", "::1", "192.0.2.9"], ["10.10.20.5"]),
    ({"proxy_clients": []}, ["127.0.0.1"], ["10.10.20.5"]),
])
def test_proxy_client_networks(listen, contains, excludes):
    networks = proxy_client_networks(model(**listen))

    def allowed(ip: str) -> bool:
        return any(ipaddress.ip_address(ip) in net for net in networks)

    assert [ip for ip in contains if not allowed(ip)] == []
    assert [ip for ip in excludes if allowed(ip)] == []


@pytest.mark.integration
@pytest.mark.parametrize(("listen", "field"), [
    ({"metrics_basic_auth_file": "users"}, "listen.metrics_basic_auth_file"),
    ({"metrics": "0.0.0.0:9464"}, "listen.metrics"),
    ({"proxy": "0.0.0.0:8080", "proxy_clients": ["0.0.0.0/0"]}, "listen.proxy_clients[0]"),
    ({"metrics": "0.0.0.0:9464", "insecure": True}, "listen.insecure_reason"),
])
def test_check_config_rejects_an_open_endpoint_in_one_line(write_config, example_data, listen, field):
    example_data["listen"].update(listen)
    path = write_config(example_data)
    run = subprocess.run([sys.executable, "-m", "monitor", "check-config", str(path)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    assert lines[-1] == "1 error(s)", run.stderr
    # file, line of the field in the YAML, the field
    assert lines[0].startswith(f"{path}:") and f": {field}: " in lines[0], run.stderr


@pytest.mark.integration
def test_check_config_accepts_insecure_with_a_reason(write_config, example_data):
    example_data["listen"].update({"metrics": "0.0.0.0:9464", **INSECURE})
    run = subprocess.run([sys.executable, "-m", "monitor", "check-config", str(write_config(example_data))],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr
