"""What every source emits: a block of timestamped samples of one channel group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PPG = "ppg"
ACC = "acc"


@dataclass(frozen=True, slots=True)
class Chunk:
    """`t` (n,) seconds since the stream's start; `x` (n, channels) float64 (PPG: k channels, ACC: 3, in g)."""

    group: str
    t: np.ndarray
    x: np.ndarray
