"""The one small interface every source implements (replay, BLE PMD wearables)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np

from ..core.chunk import Chunk


class Source(Protocol):
    name: str  # device/subject id used in topics unless --device-id overrides it
    rates: dict[str, float]  # nominal sampling rate per channel group present ("ppg", optional "acc")
    labels_bpm: np.ndarray | None  # reference HR per window, when the source knows it
    speed: float | None  # stream seconds per wall second; None = as fast as possible

    def chunks(self) -> AsyncIterator[tuple[Chunk, float]]:
        """Yield (chunk, arrival) where arrival is the perf_counter time its last sample existed."""
        ...
