"""The gateway files for transparent mode parse and say what the docs say."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NFT = DEPLOY / "nftables-transparent-proxy.nft"
SYSCTL = DEPLOY / "sysctl-social-monitor.conf"


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft and root")
def test_nft_ruleset_parses():
    out = subprocess.run(["nft", "-c", "-f", str(NFT)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def test_nft_redirects_web_ports_to_the_proxy_port():
    text = NFT.read_text()
    assert re.search(r"define PROXY_PORT = 8080", text)
    assert text.count("tcp dport { 80, 443 } counter redirect to :$PROXY_PORT") == 2  # IPv4 and IPv6


@pytest.mark.parametrize(
    "setting",
    ["net.ipv4.ip_forward = 1", "net.ipv6.conf.all.forwarding = 1", "net.ipv4.conf.all.send_redirects = 0"],
)
def test_sysctl_settings(setting):
    assert setting in SYSCTL.read_text().splitlines()


EXPLICIT = DEPLOY / "nftables-explicit-proxy.nft"


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft and root")
def test_explicit_input_rule_parses():
    out = subprocess.run(["nft", "-c", "-f", str(EXPLICIT)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("rule", [
    'tcp dport $PROXY_PORT iifname $STAFF_IFACES ip saddr @staff_v4 accept',
    'tcp dport $PROXY_PORT iifname $STAFF_IFACES ip6 saddr @staff_v6 accept',
    'tcp dport $PROXY_PORT counter drop',
])
def test_explicit_input_rule_accepts_the_staff_networks_only(rule):
    assert rule in EXPLICIT.read_text()


def test_both_files_name_the_same_port_and_interfaces():
    defines = [re.findall(r"^define .*$", path.read_text(), re.M) for path in (NFT, EXPLICIT)]
    assert defines[0] == defines[1]
