"""Retry delays: doubling, capped, and from the first again once an attempt held (the sensor's
interfaces and the proxy child use the one class with their own figures)."""

from __future__ import annotations

import pytest

from monitor.backoff import Backoff
from monitor.capture.live import CAPTURE_HELD


@pytest.mark.parametrize(
    ("held_for", "delays"),
    [
        ([0] * 4, [0.5, 1.0, 2.0, 4.0]),  # doubles while the interface stays away
        ([0] * 8, [0.5, 1.0, 2.0, 4.0, 8.0, 9.0, 9.0, 9.0]),  # capped: back within 10 s of the link
        ([0, 0, 0, 30], [0.5, 1.0, 2.0, 0.5]),  # captured for a while: the next outage starts again
        ([0, 29.9], [0.5, 1.0]),  # a link flapping faster keeps backing off
    ],
    ids=["doubles", "capped-at-ten", "reset-after-health", "flapping"],
)
def test_interface_reopening(held_for, delays):
    backoff = Backoff(0.5, 9.0, healthy_after=CAPTURE_HELD)  # as LiveCapture makes it
    assert [backoff.next_delay(h) for h in held_for] == delays


@pytest.mark.parametrize(
    ("ran_for", "delays"),
    [
        ([0, 0, 0, 0, 0, 0, 0, 0], [1, 2, 4, 8, 16, 32, 60, 60]),  # doubling, capped at a minute
        ([0, 0, 0, 61, 0], [1, 2, 4, 1, 2]),  # a minute of health starts again from 1 s
        ([59.9, 59.9], [1, 2]),
    ],
)
def test_proxy_child_restarts(ran_for: list[float], delays: list[float]) -> None:
    backoff = Backoff()
    assert [backoff.next_delay(r) for r in ran_for] == delays
