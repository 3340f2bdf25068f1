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

`beat_rates` is the second opinion that needs no estimate to start from (issue 22): a time-domain beat
detector in the manner of HeartPy, on every window, moving or still. The PPG minus its moving average
over `BEAT_MEAN_S` (a high-pass that keeps the pulse and removes most of a slow pedalling or breathing
wave); the beats are the maxima of the runs above a threshold, the threshold scanned from 0 to 0.6 of
the signal's RMS in four steps, and the threshold whose beat intervals vary least wins; intervals more than 30 % from
their mean are left out. Its rate and the intervals' coefficient of variation (the kept ones', each
left-out interval counted as 30 % off; low: regular beats)
go to stream/core/cues.py, which lets it inform or question the spectral model.
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


BEAT_MEAN_S = 0.75  # HeartPy's moving-average window: the high-pass before peak picking
BEAT_THRESHOLDS = 4  # thresholds scanned: 0, 0.2, 0.4, 0.6 of the high-passed PPG's RMS
BEAT_THRESHOLD_STEP = 0.2
BEAT_MIN_BPM = 40.0
BEAT_MAX_BPM = 210.0


def beat_rates(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(rate bpm, interval CV) per window of the batch (N, C, T), PPG first; NaN where no rate was found."""
    return beat_rate_rows(np.ascontiguousarray(x), fs, BEAT_MEAN_S, BEAT_MIN_BPM, BEAT_MAX_BPM)


@njit(cache=True)
def beat_rate_rows(x: np.ndarray, fs: float, mean_s: float, min_bpm: float, max_bpm: float) -> tuple[np.ndarray, np.ndarray]:
    n, _, t = x.shape
    half = max(1, int(round(mean_s * fs)) // 2)
    rate = np.full(n, np.nan)
    cv = np.full(n, np.nan)
    high = np.empty(t)
    cum = np.empty(t + 1)
    peaks = np.empty(t)
    intervals = np.empty(t)
    for i in range(n):
        ppg = x[i, 0]
        cum[0] = 0.0
        for s in range(t):
            cum[s + 1] = cum[s] + ppg[s]
        power = 0.0
        for s in range(t):
            a, b = max(0, s - half), min(t, s + half + 1)
            high[s] = ppg[s] - (cum[b] - cum[a]) / (b - a)
            power += high[s] * high[s]
        rms = math.sqrt(power / t)
        if not rms > 0.0:
            continue
        best = np.inf
        for step in range(BEAT_THRESHOLDS):
            threshold = BEAT_THRESHOLD_STEP * step * rms
            count = 0
            s = 0
            while s < t:
                if high[s] <= threshold:
                    s += 1
                    continue
                top = s
                while s < t and high[s] > threshold:
                    if high[s] > high[top]:
                        top = s
                    s += 1
                if 0 < top < t - 1:  # a run cut by the window's edge has no reliable maximum
                    y0, y1, y2 = high[top - 1], high[top], high[top + 1]
                    curvature = y0 - 2.0 * y1 + y2
                    shift = min(max(0.5 * (y0 - y2) / curvature, -0.5), 0.5) if curvature < 0.0 else 0.0
                    peaks[count] = top + shift
                    count += 1
            if count < 3:
                continue
            mean = (peaks[count - 1] - peaks[0]) / (count - 1)
            bpm = 60.0 * fs / mean
            if bpm < min_bpm or bpm > max_bpm:
                continue
            spread = 0.0
            for j in range(count - 1):
                intervals[j] = peaks[j + 1] - peaks[j]
                spread += (intervals[j] - mean) ** 2
            variation = math.sqrt(spread / (count - 1)) / mean
            if variation >= best:
                continue
            kept, total = 0, 0.0
            for j in range(count - 1):
                if abs(intervals[j] - mean) <= 0.3 * mean:
                    kept += 1
                    total += intervals[j]
            if kept >= 2:
                best = variation
                rate[i] = 60.0 * fs * kept / total
                kept_mean = total / kept
                spread = 0.0
                for j in range(count - 1):
                    if abs(intervals[j] - mean) <= 0.3 * mean:
                        spread += (intervals[j] - kept_mean) ** 2
                # the kept intervals' variation, as if every left-out interval were off by 30 %
                cv[i] = math.sqrt((spread / kept_mean**2 + 0.09 * (count - 1 - kept)) / (count - 1))
    return rate, cv


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
