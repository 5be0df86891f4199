"""The `listen:` section: each value's form is checked and a bad one named (the world-open rules are
monitor.config.listen's, tested in test_listen.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from monitor.config.listensettings import ListenSettings

BAD = [
    # (data, one fact the error message states)
    ({"metrics": "localhost"}, "'localhost' is not host:port"),
    ({"metrics_tls_cert": "cert.pem"}, "metrics_tls_cert and metrics_tls_key go together"),
    ({"metrics_tls_key": "key.pem"}, "metrics_tls_cert and metrics_tls_key go together"),
    ({"proxy": []}, "names no address: give host:port, or a list of them"),
    ({"proxy": ["0.0.0.0:8080", "0.0.0.0:8080"]}, "[1] '0.0.0.0:8080' is listed twice"),
    ({"proxy": ["0.0.0.0:8080", "nowhere"]}, "[1] 'nowhere' is not host:port"),
    ({"proxy": "nowhere"}, "'nowhere' is not host:port"),
    ({"proxy_clients": ["10.0.0.0/8", "10.1.2"]}, "[1] '10.1.2' is not a network"),
    ({"proxy_mode": "socks"}, "Input should be 'regular' or 'transparent'"),
    ({"port": 8080}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("data", "expected"), BAD)
def test_bad_values_are_named(data, expected):
    with pytest.raises(ValidationError) as info:
        ListenSettings.model_validate(data)
    messages = [e["msg"] for e in info.value.errors()]
    assert any(expected in m for m in messages), messages


@pytest.mark.parametrize(("data", "addresses"), [
    ({}, ("127.0.0.1:8080",)),
    ({"proxy": "10.0.0.1:3128"}, ("10.0.0.1:3128",)),
    ({"proxy": ["0.0.0.0:8080", "[::]:8080"]}, ("0.0.0.0:8080", "[::]:8080")),
    ({"metrics_tls_cert": "c.pem", "metrics_tls_key": "k.pem"}, ("127.0.0.1:8080",)),
    ({"proxy_clients": ["10.0.0.0/8", "2001:db8::/32"]}, ("127.0.0.1:8080",)),
])
def test_good_values_validate_and_give_the_proxy_addresses(data, addresses):
    assert ListenSettings.model_validate(data).proxy_addresses == addresses


def test_defaults_listen_on_loopback_only():
    listen = ListenSettings()
    assert (listen.metrics, listen.proxy, listen.proxy_mode, listen.insecure) == \
        ("127.0.0.1:9464", "127.0.0.1:8080", "regular", False)
