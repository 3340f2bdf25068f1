"""Beat-interval refinement of the heart rate in still, clean windows.

A spectral estimate over an 8 s window has a floor of about half a bpm even when it is locked on the
pulse; in a still window with clean, regular beats, 60 / (mean beat interval) is far more precise, and
it is what an ECG reference measures. It is also fragile: under motion a peak detector counts
artefacts as beats. So the refinement is gated strictly, and anywhere the gate fails the estimate it
was given (the tracker's, or the window's own) is kept:

1. the wrist is still: the band-passed accelerometer's RMS (all axes) is at most `acc_quiet_g`, and
   above zero (a device without accelerometer feeds zeros: stillness cannot be checked there);
2. the beats are regular: peaks (each the highest point within ±0.35 of the period the estimate
   implies, above the window mean, refined by a parabola) whose intervals all lie within
   `max_deviation` of their median, at least `min_beats` of them, and no missing beat (the beats span
   the window but for at most two periods);
3. the beat rate agrees with the estimate within `tolerance_bpm`: the refinement sharpens a lock,
   it never moves the estimate to another rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass(frozen=True)
class BeatGate:
    acc_quiet_g: float = 0.02  # band-passed accelerometer RMS (g) of a still wrist
    max_deviation: float = 0.15  # every interval within ±15 % of the median interval
    min_beats: int = 5
    tolerance_bpm: float = 5.0  # beat rate within this of the estimate


def refine_with_beats(x: np.ndarray, bpm: np.ndarray, fs: float, gate: BeatGate | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(bpm, refined mask): `bpm` with the beat-interval rate where a window passes the gate.
    `x` is the batch of preprocessed windows (N, C, T): PPG first, then accelerometer x, y, z if any."""
    g = gate or BeatGate()
    out = np.array(bpm, dtype=np.float64)
    refined = refine_rows(np.ascontiguousarray(x), out, fs, g.acc_quiet_g, g.max_deviation, g.min_beats, g.tolerance_bpm)
    return out, refined


@njit(cache=True)
def refine_rows(x: np.ndarray, bpm: np.ndarray, fs: float, acc_quiet_g: float, max_deviation: float,
                min_beats: int, tolerance_bpm: float) -> np.ndarray:
    """In place on `bpm`; returns which windows were refined."""
    n, c, t = x.shape
    refined = np.zeros(n, dtype=np.bool_)
    peaks = np.empty(t)
    for i in range(n):
        if c < 4 or not (30.0 <= bpm[i] <= 240.0):
            continue
        power = 0.0
        for ch in range(1, 4):
            for s in range(t):
                power += x[i, ch, s] * x[i, ch, s]
        rms = math.sqrt(power / t)
        if rms <= 0.0 or rms > acc_quiet_g:
            continue
        period = 60.0 / bpm[i] * fs
        count = _beat_times(x[i, 0], period, peaks)
        if count < min_beats:
            continue
        span = peaks[count - 1] - peaks[0]
        if span < t - 1 - 2.0 * period:  # a beat is missing at an edge or the window holds too few
            continue
        if not _regular(peaks, count, max_deviation):
            continue
        rate = 60.0 * fs * (count - 1) / span
        if abs(rate - bpm[i]) <= tolerance_bpm:
            bpm[i] = rate
            refined[i] = True
    return refined


@njit(cache=True)
def _beat_times(ppg: np.ndarray, period: float, out: np.ndarray) -> int:
    """Peaks in samples (sub-sample by a parabola): each the highest within ±0.35 period, above zero."""
    t = ppg.shape[0]
    half = max(1, int(0.35 * period))
    count = 0
    for s in range(half, t - half):
        v = ppg[s]
        if v <= 0.0:
            continue
        top = True
        for j in range(s - half, s + half + 1):
            if ppg[j] > v or (ppg[j] == v and j < s):
                top = False
                break
        if not top:
            continue
        y0, y2 = ppg[s - 1], ppg[s + 1]
        curvature = y0 - 2.0 * v + y2
        shift = 0.0
        if curvature < 0.0:
            shift = min(max(0.5 * (y0 - y2) / curvature, -0.5), 0.5)
        out[count] = s + shift
        count += 1
    return count


@njit(cache=True)
def _regular(times: np.ndarray, count: int, max_deviation: float) -> bool:
    intervals = np.empty(count - 1)
    for j in range(count - 1):
        intervals[j] = times[j + 1] - times[j]
    median = np.median(intervals)
    for j in range(count - 1):
        if abs(intervals[j] - median) > max_deviation * median:
            return False
    return True
