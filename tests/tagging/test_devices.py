"""Device resolution: reservations, learned bindings (bounded, ageing), MAC forms."""

import pytest

from monitor.config.models import InventoryDevice
from monitor.tagging.devices import DeviceDirectory

INVENTORY = [
    InventoryDevice(mac="aa:aa:aa:aa:aa:01", asset_tag="T-1", school="s", kind="laptop", owner="S1"),
    InventoryDevice(mac="aa:aa:aa:aa:aa:02", asset_tag="T-2", school="s", kind="desktop", groups=("office",)),
]


@pytest.mark.parametrize(
    ("ip", "mac", "asset"),
    [
        ("10.0.0.5", None, "T-2"),  # static reservation
        ("10.0.0.6", None, None),  # unknown address: not a trust device
        ("10.0.0.6", "AA-AA-AA-AA-AA-01", "T-1"),  # the frame's MAC, any spelling
        ("10.0.0.6", "bb:bb:bb:bb:bb:bb", None),  # a MAC the trust does not own
        ("::ffff:10.0.0.5", None, "T-2"),  # IPv4-mapped
    ],
)
def test_resolve(ip, mac, asset):
    directory = DeviceDirectory(INVENTORY, {"10.0.0.5": "aa:aa:aa:aa:aa:02"})
    device = directory.resolve(ip, mac)
    assert (device.asset_tag if device else None) == asset


def test_learned_binding_beats_reservation_and_ages_out():
    directory = DeviceDirectory(INVENTORY, {"10.0.0.5": "aa:aa:aa:aa:aa:02"}, learned_ttl=100)
    directory.learn("10.0.0.5", "aa:aa:aa:aa:aa:01", at=1000.0)
    assert directory.resolve("10.0.0.5", at=1050.0).asset_tag == "T-1"  # the fresh lease wins
    assert directory.resolve("10.0.0.5", at=1200.0).asset_tag == "T-2"  # expired: the reservation again


def test_learned_table_is_bounded_and_counts_evictions():
    directory = DeviceDirectory(INVENTORY, {}, max_learned=10)
    for i in range(25):
        directory.learn(f"10.1.0.{i}", "aa:aa:aa:aa:aa:01", at=float(i))
    assert directory.evicted == 15
    assert directory.resolve("10.1.0.24") is not None and directory.resolve("10.1.0.0") is None


def test_garbage_mac_is_ignored():
    directory = DeviceDirectory(INVENTORY, {})
    directory.learn("10.0.0.9", "not-a-mac")
    assert directory.resolve("10.0.0.9") is None
