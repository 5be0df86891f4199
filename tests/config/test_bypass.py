"""`bypass:` in the trust file: names added to the catalog of traffic that hides its destination."""

from __future__ import annotations

import subprocess
import sys

import pytest

from monitor.config.bypass import BypassSettings
from monitor.config.loader import load_config
from monitor.errors import ConfigError


@pytest.mark.parametrize(
    ("given", "kept"),
    [("doh.example.net", "doh.example.net"), ("DoH.Example.NET.", "doh.example.net"),
     (" vpn.example.org ", "vpn.example.org"), ("a-b.c-d.example", "a-b.c-d.example")],
)
def test_a_domain_name_is_kept_lower_cased(given, kept):
    assert BypassSettings(vpn=[given]).vpn == [kept]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("vpn", "https://vpn.example.net/", "bypass.vpn[0]: 'https://vpn.example.net/' is not a domain name"),
     ("encrypted_dns", "dns.example:853", "bypass.encrypted_dns[0]: 'dns.example:853' is not a domain name"),
     ("vpn", "*.example.net", "bypass.vpn[0]: '*.example.net' is not a domain name"),
     ("vpn", "localhost", "bypass.vpn[0]: 'localhost' is not a domain name"),
     ("proxies", ["x.example"], "bypass.proxies: unknown key")],
)
def test_a_bad_name_is_an_error_naming_the_field(write_config, example_data, field, value, expected):
    example_data["bypass"] = {field: value if isinstance(value, list) else [value]}
    path = write_config(example_data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(expected in line and "trust.yaml:" in line for line in info.value.errors), \
        info.value.errors


def test_the_config_extends_the_catalog(write_config, example_data):
    example_data["bypass"] = {"vpn": ["vpn.example.net"], "encrypted_dns": ["doh.trust.example"]}
    config = load_config(write_config(example_data))
    catalog = config.bypass_catalog
    assert [catalog.kind_of(n) for n in ("a.vpn.example.net", "doh.trust.example", "mask.icloud.com",
                                          "example.net")] == ["vpn", "encrypted-dns", "vpn", None]


def test_without_bypass_the_data_file_alone(example_config):
    assert example_config.bypass_catalog.kind_of("dns.google") == "encrypted-dns"
    assert example_config.bypass_catalog.kind_of("vpn.example.net") is None


@pytest.mark.integration
def test_check_config_names_the_file_line_and_field(write_config, example_data):
    example_data["bypass"] = {"vpn": ["ok.example", "https://bad.example/"]}
    path = write_config(example_data)
    run = subprocess.run([sys.executable, "-m", "monitor", "check-config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "bypass.vpn[1]: 'https://bad.example/' is not a domain name" in run.stderr
    assert "trust.yaml:" in run.stderr
