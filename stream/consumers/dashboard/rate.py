"""Messages per second over the last few seconds, in fixed memory: per-second counts in a ring.

Why not messages counted in the last second: a device publishing every 2 s sends 0 or 1 message in any
one second, so its rate read 0 (or 1) instead of 0.5.
"""

from __future__ import annotations

import math

WINDOW_S = 10


class RateMeter:
    def __init__(self, window_s: int = WINDOW_S, now: float = 0.0) -> None:
        self.window_s = window_s
        self.started = now
        self._second = [-1] * (window_s + 1)  # which whole second each slot counts: the window and the current one
        self._count = [0] * (window_s + 1)

    def add(self, now: float, n: int = 1) -> None:
        second = math.floor(now)
        slot = second % len(self._second)
        if self._second[slot] != second:  # a slot a whole window old: start it afresh
            self._second[slot], self._count[slot] = second, 0
        self._count[slot] += n

    def rate(self, now: float) -> float:
        """Per second over the last `window_s` whole seconds (fewer just after `started`): a steady rate
        reads the same every time (0.5 for a message every 2 s), the current second not yet counted."""
        second = math.floor(now)
        total = sum(c for s, c in zip(self._second, self._count) if second - self.window_s <= s < second)
        span = min(self.window_s, second - math.floor(self.started))
        return total / span if span > 0 else 0.0
