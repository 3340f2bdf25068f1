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
def ingest_chunk(
    t: np.ndarray,
    x: np.ndarray,
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
    """Feed one chunk (t: (n,), x: (n, c)) of one channel group; returns grid samples written."""
    cap = ring.shape[0]
    nch = x.shape[1]
    written = 0
    prev_t = state[PREV_T]
    next_j = int(state[NEXT_J])
    ys = np.empty(nch)
    for i in range(t.shape[0]):
        ti = t[i]
        bad = not math.isfinite(ti)
        for c in range(nch):
            if not math.isfinite(x[i, c]):
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
                sos_reset(zi, zi_unit, c, x[i, c])
                prev_y[c] = sos_step(sos, zi, c, x[i, c])
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
            ys[c] = sos_step(sos, zi, c, x[i, c])
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
    state[PREV_T] = prev_t
    state[NEXT_J] = next_j
    return written
