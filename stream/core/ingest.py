"""The per-sample kernel: validate timestamps, band-pass at the source rate, resample onto the model grid.

Policy for imperfect input (documented in docs/recordings.md):
- a sample with a NaN or infinite value in any channel (or such a time) is dropped and counted, and so
  is a sample the filter cannot carry (a finite value so large that its output overflows): the filter
  then restarts from the next good sample;
- a sample whose time does not increase is dropped and counted (never reorders, never HR);
- a hole up to `max_gap_s` is bridged by the linear interpolation onto the model grid;
- a longer hole resets the filter (steady state of the next sample) and is counted; the grid
  slots inside it are never written, so windows that overlap it are skipped, not estimated.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .sos_filter import sos_reset, sos_step

# indices into the per-group float64 state vector
PREV_T = 0
NEXT_J = 1
N_NAN = 2
N_BACKWARDS = 3
N_GAPS = 4
STATE_SIZE = 5


def new_group_state() -> np.ndarray:
    state = np.zeros(STATE_SIZE, dtype=np.float64)
    state[PREV_T] = np.nan
    return state


@njit(cache=True)
def ingest_chunks(
    t: np.ndarray,
    x: np.ndarray,
    meta: np.ndarray,
    sos: np.ndarray,
    zi: np.ndarray,
    zi_unit: np.ndarray,
    prev_y: np.ndarray,
    state: np.ndarray,
    fs_out: float,
    max_gap_s: float,
    ring: np.ndarray,
    stamps: np.ndarray,
    group: int,
    col0: int,
) -> int:
    """Feed a batch of chunks of one channel group, in order, in one call; returns grid samples written.

    `meta` has a row per chunk: (start, count, t0, rate, slot, end). `x` is flat: the chunk's sample i,
    channel ch is x[start + i * channels + ch] (channels = len(prev_y)), for i < count. Its times are
    `t` (flat over the batch's samples, in order) when `t` is not empty, else t0 + i / rate (a raw
    chunk: the same float64 operations as `np.arange(n) / rate + t0`, so the same times bit for bit,
    without an array per chunk). The kernel writes `end`: the group's next grid index after the
    chunk (which chunk completed which window; `slot` is the caller's index of the chunk)."""
    cap = ring.shape[0]
    nch = prev_y.shape[0]
    explicit = t.shape[0] > 0
    written = 0
    prev_t = state[PREV_T]
    next_j = int(state[NEXT_J])
    ys = np.empty(nch)
    xs = np.empty(nch)
    s = 0  # samples of the batch so far (index into t)
    for chunk in range(meta.shape[0]):
        base = int(meta[chunk, 0])
        t0 = meta[chunk, 2]
        rate = meta[chunk, 3]
        for i in range(int(meta[chunk, 1])):
            ti = t[s] if explicit else t0 + i / rate
            s += 1
            bad = not math.isfinite(ti)
            for c in range(nch):
                xs[c] = x[base + i * nch + c]
                if not math.isfinite(xs[c]):
                    bad = True
            if bad:
                state[N_NAN] += 1
                continue
            if not math.isnan(prev_t) and ti <= prev_t:
                state[N_BACKWARDS] += 1
                continue
            if math.isnan(prev_t) or ti - prev_t > max_gap_s:
                if not math.isnan(prev_t):
                    state[N_GAPS] += 1
                overflow = False
                for c in range(nch):
                    sos_reset(zi, zi_unit, c, xs[c])
                    prev_y[c] = sos_step(sos, zi, c, xs[c])
                    if not math.isfinite(prev_y[c]):
                        overflow = True
                if overflow:
                    state[N_NAN] += 1
                    prev_t = math.nan
                    continue
                j_first = int(math.ceil(ti * fs_out - 1e-9))
                if j_first > next_j:
                    next_j = j_first
                if next_j / fs_out <= ti:  # the sample sits exactly on the grid
                    slot = next_j % cap
                    for c in range(nch):
                        ring[slot, col0 + c] = prev_y[c]
                    stamps[slot, group] = next_j
                    next_j += 1
                    written += 1
                prev_t = ti
                continue
            span = ti - prev_t
            tj = next_j / fs_out
            overflow = False
            for c in range(nch):
                ys[c] = sos_step(sos, zi, c, xs[c])
                if not math.isfinite(ys[c]):
                    overflow = True
            if overflow:  # restart the filter at the next good sample, as after a long hole
                state[N_NAN] += 1
                prev_t = math.nan
                continue
            if tj <= ti:
                while tj <= ti:
                    w = (tj - prev_t) / span
                    slot = next_j % cap
                    for c in range(nch):
                        ring[slot, col0 + c] = prev_y[c] + w * (ys[c] - prev_y[c])
                    stamps[slot, group] = next_j
                    next_j += 1
                    written += 1
                    tj = next_j / fs_out
            for c in range(nch):
                prev_y[c] = ys[c]
            prev_t = ti
        meta[chunk, 5] = next_j
    state[PREV_T] = prev_t
    state[NEXT_J] = next_j
    return written
