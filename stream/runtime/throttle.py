"""Rate-limited logging: a service that sees the same fault thousands of times a second logs it once
in a while, with the count since, instead of flooding its log (or staying silent)."""

from __future__ import annotations

import time


class Throttle:
    """`ready()` is True at most once per `every_s`; `count` tells how many events it stood for."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._last = float("-inf")
        self.count = 0  # events since the last time ready() said True

    def ready(self) -> bool:
        self.count += 1
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True

    def take(self) -> int:
        """The count to report with this log line (resets it)."""
        n, self.count = self.count, 0
        return n
