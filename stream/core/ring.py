"""The ring buffer that holds the resampled, filtered stream at the model's rate.

One float32 array (capacity, channels) is shared by all channel groups (PPG, ACC), each writing its
own columns. Beside it, `stamps[slot, group]` remembers which absolute sample index was last written
to a slot: a window is valid only if every slot it reads carries the index it expects, which catches
gaps (never written) and overruns (already overwritten) with one check and no per-sample lists.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def new_ring(capacity: int, channels: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((capacity, channels), dtype=np.float32), np.full((capacity, groups), -1, dtype=np.int64)


@njit(cache=True)
def ring_window_valid(stamps: np.ndarray, group_mask: np.ndarray, start: int, length: int) -> bool:
    cap = stamps.shape[0]
    for g in range(stamps.shape[1]):
        if not group_mask[g]:
            continue
        for j in range(start, start + length):
            if stamps[j % cap, g] != j:
                return False
    return True


@njit(cache=True)
def ring_collect_windows(
    ring: np.ndarray,
    stamps: np.ndarray,
    group_mask: np.ndarray,
    zscore: np.ndarray,
    next_k: int,
    ready_until: int,
    hop: int,
    length: int,
    out: np.ndarray,
    out_k: np.ndarray,
) -> tuple[int, int, int, int]:
    """Copy every complete window k ≥ next_k (ending at or before `ready_until`) into `out`.

    Channels flagged in `zscore` are standardised per window. Returns (windows written, the next k
    to look at, windows skipped because they touch a gap or an overrun, windows refused as invalid:
    a value that is not finite in float32, or a flat PPG channel, which carries no heart rate).
    """
    cap = ring.shape[0]
    channels = ring.shape[1]
    n = 0
    skipped = 0
    invalid = 0
    k = next_k
    means = np.empty(channels)
    scales = np.empty(channels)
    while k * hop + length <= ready_until and n < out.shape[0]:
        start = k * hop
        if not ring_window_valid(stamps, group_mask, start, length):
            skipped += 1
            k += 1
            continue
        ok = True
        for c in range(channels):
            mean = 0.0
            for j in range(length):
                mean += ring[(start + j) % cap, c]
            mean /= length
            var = 0.0
            for j in range(length):
                d = ring[(start + j) % cap, c] - mean
                var += d * d
            std = np.sqrt(var / length)
            if not (math.isfinite(mean) and math.isfinite(std)) or (c == 0 and std <= 1e-9):
                ok = False
                break
            if zscore[c]:
                means[c] = mean
                scales[c] = 1.0 / std if std > 1e-9 else 0.0
            else:
                means[c] = 0.0
                scales[c] = 1.0
        if not ok:
            invalid += 1
            k += 1
            continue
        for c in range(channels):
            for j in range(length):
                out[n, c, j] = (ring[(start + j) % cap, c] - means[c]) * scales[c]
        out_k[n] = k
        n += 1
        k += 1
    return n, k, skipped, invalid
