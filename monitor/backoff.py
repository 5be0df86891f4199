"""Delays between retries that double while something keeps failing and start again once it held.

The sensor reopens an interface with it (0.5 s doubling to 9 s, from the start again after 30 s
of capture: an interface is back within 10 s of its link) and the daemon restarts a crashed
proxy child (1 s doubling to a minute, from the start again after a minute of health).
"""

from __future__ import annotations


class Backoff:
    """`next_delay(held_for)`: the wait before the next attempt, given how long the last one held."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, healthy_after: float = 60.0):
        self.initial, self.maximum, self.healthy_after = initial, maximum, healthy_after
        self.delay = initial

    def next_delay(self, held_for: float) -> float:
        if held_for >= self.healthy_after:
            self.delay = self.initial
        delay = self.delay
        self.delay = min(self.delay * 2, self.maximum)
        return delay
