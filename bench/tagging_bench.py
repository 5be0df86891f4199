#!/usr/bin/env python3
"""Cost of tagging one observation, with a catalog of 2,000+ domains and 10,000 CIDRs.

Builds a synthetic trust from the example (10,000 zone networks across the
schools, IPv4 and IPv6, and 2,000+ extra catalog domains), then tags a
stream of observations through `Tagger.tag` and, side by side, through a
naive peer that does what a first attempt would: `str.endswith` over every
domain and `ip in network` over every CIDR. Prints microseconds per
observation for both and the ratio.

    .venv/bin/python bench/tagging_bench.py [--observations 200000]
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.config.loader import load_config  # noqa: E402
from monitor.observation import Observation  # noqa: E402
from monitor.tagging.tagger import Tagger  # noqa: E402


def big_trust(folder: Path, cidrs: int, domains: int) -> Path:
    data = yaml.safe_load((REPO / "config/example.yaml").read_text())
    for name in ("devices.csv", "staff-timetable.csv", "logins.csv"):
        shutil.copy(REPO / "config" / name, folder / name)
    template = copy.deepcopy(data["schools"][1]["zones"][0])
    zones_per_school = cidrs // 2 // 3
    for s_index, school in enumerate(data["schools"]):
        for z in range(zones_per_school):
            zone = copy.deepcopy(template)
            zone["name"] = f"bench-{z}"
            zone["vlans"] = []
            zone["cidrs"] = [
                f"172.{16 + s_index}.{z // 8}.{(z % 8) * 32}/27",
                f"2001:db8:{100 + s_index:x}:{z:x}::/64",
            ]
            school["zones"].append(zone)
    data["platforms"]["add"].append(
        {"id": "bench-sites", "name": "Bench", "category": "blog",
         "domains": [f"site{i}.bench-social.example" for i in range(domains)]}
    )
    path = folder / "trust.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class NaivePeer:
    """The obvious first implementation: linear scans, parsing on every call."""

    def __init__(self, config):
        self.domains = [(d, p.id) for p in config.catalog.platforms.values() for d in p.domains]
        self.nets = [
            (ipaddress.ip_network(c, strict=False), s.id, z.name)
            for s in config.schools for z in s.zones for c in z.cidrs
        ]

    def tag(self, obs: Observation):
        host = obs.hostname.lower().rstrip(".")
        platform = next((pid for d, pid in self.domains if host == d or host.endswith("." + d)), None)
        ip = ipaddress.ip_address(obs.client_ip)
        best = None
        for net, school, zone in self.nets:
            better = best is None or net.prefixlen > best[0].prefixlen
            if ip.version == net.version and ip in net and better:
                best = (net, school, zone)
        return platform, best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--observations", type=int, default=200_000)
    ap.add_argument("--peer-observations", type=int, default=2_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        config = load_config(big_trust(Path(tmp), cidrs=10_000, domains=2_000))
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        tagger = Tagger(config)
        build_s = time.perf_counter() - started
    cidr_count = sum(len(z.cidrs) for s in config.schools for z in s.zones)
    print(f"trust: {cidr_count} CIDRs, {config.catalog.domain_count} domains; "
          f"config load {load_s:.2f} s, table build {build_s * 1000:.0f} ms")

    rng = random.Random(7)
    hosts = ["www.facebook.com", "scontent.cdninstagram.com", "www.bbc.co.uk",
             "site1234.bench-social.example",
             "rr1---sn-x.googlevideo.com", "api.github.com", "x.com", "notfacebook.com"]
    clients = ["10.20.10.41", "10.20.30.10", "2001:db8:20:10::41", "10.10.10.31", "172.17.3.40",
               "2001:db8:65:2a::9", "192.0.2.1"] + [f"172.16.{i}.{j}" for i in range(30) for j in (5, 70)]
    base = 1796032800.0  # Monday 30 Nov 2026 10:00 UTC
    stream = [
        Observation(base + rng.random() * 30 * 86400, rng.choice(clients), 50000, "198.51.100.7", 443, "tcp",
                    "tls", rng.choice(hosts))
        for _ in range(args.observations)
    ]

    started = time.perf_counter()
    flagged = 0
    for o in stream:
        flagged += tagger.tag(o).flagged
    ours = (time.perf_counter() - started) / len(stream)

    peer = NaivePeer(config)
    sample = stream[: args.peer_observations]
    started = time.perf_counter()
    for o in sample:
        peer.tag(o)
    naive = (time.perf_counter() - started) / len(sample)

    print(f"Tagger.tag: {ours * 1e6:.2f} us/observation ({1 / ours:,.0f}/s) over {len(stream):,}, "
          f"{flagged:,} flagged")
    print(f"naive peer (linear scans): {naive * 1e6:.0f} us/observation over {len(sample):,}")
    print(f"ratio: Tagger is {naive / ours:,.0f}x faster than the naive peer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
