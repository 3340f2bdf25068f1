"""Exponential backoff with jitter, for reconnecting to a BLE device or an MQTT broker (jitter keeps many
clients from retrying in step)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    start_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.2  # each delay is scaled by a uniform factor in [1 - jitter, 1 + jitter]

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        rng = rng or random.Random()
        delay = self.start_s
        while True:
            yield delay * rng.uniform(1 - self.jitter, 1 + self.jitter)
            delay = min(delay * self.factor, self.max_s)
