"""Beat-interval refinement of the heart rate in still, clean windows.

A spectral estimate over an 8 s window has a floor of about half a bpm even when it is locked on the
pulse; in a still window with clean, regular beats, 60 / (mean beat interval) is far more precise, and
it is what an ECG reference measures. It is also fragile: under motion a peak detector counts
artefacts as beats. So the refinement is gated strictly, and anywhere the gate fails the estimate it
was given (the tracker's, or the window's own) is kept:

1. the wrist is still: the band-passed accelerometer's RMS (all axes) is at most `acc_quiet_g`. A device
   without accelerometer (it feeds zeros, or the model has no accelerometer channels: a finger clip, a
   PPG-only recording) cannot show stillness; there the beats alone decide (`without_accelerometer`), since
   the two gates below already hold a moving wrist's fake beats out or keep them within the tolerance of the
   estimate (issue 22: finger PPG at rest; on the synthetic rest set with the accelerometer zeroed the
   published error goes 0.33 → 0.24 bpm, and no motion set gets worse);
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
    without_accelerometer: bool = True  # refine where no accelerometer can say whether the wrist is still


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
    tops = np.empty((BEAT_THRESHOLDS, t), dtype=np.int64)
    counts = np.zeros(BEAT_THRESHOLDS, dtype=np.int64)
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
        _runs(high, rms, tops, counts)
        best = np.inf
        for step in range(BEAT_THRESHOLDS):
            count = 0
            for j in range(counts[step]):
                top = tops[step, j]
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


@njit(cache=True)
def _runs(high: np.ndarray, rms: float, tops: np.ndarray, counts: np.ndarray) -> None:
    """Each threshold's runs above it (`tops[k, :counts[k]]`: the first maximum of every run, in order) for the
    four thresholds, from one pass over the window: the runs above a higher threshold lie inside the runs above
    0, and inside a run that rises to its top and then falls (a pulse) the part above any level is one stretch
    with the same top; only the other runs are scanned again per threshold. The same tops as four scans."""
    t = high.shape[0]
    th1 = BEAT_THRESHOLD_STEP * 1 * rms
    th2 = BEAT_THRESHOLD_STEP * 2 * rms
    th3 = BEAT_THRESHOLD_STEP * 3 * rms
    c0 = c1 = c2 = c3 = 0
    s = 0
    while s < t:
        if high[s] <= 0.0:
            s += 1
            continue
        start = s
        top = s
        pulse = True  # no rise after a fall so far
        falling = False
        s += 1
        while s < t and high[s] > 0.0:
            v = high[s]
            if v > high[s - 1]:
                pulse = pulse and not falling
                if v > high[top]:
                    top = s
            elif v < high[s - 1]:
                falling = True
            s += 1
        tops[0, c0] = top
        c0 += 1
        m = high[top]
        if m <= th1:
            continue
        if pulse:
            tops[1, c1] = top
            c1 += 1
            if m > th2:
                tops[2, c2] = top
                c2 += 1
                if m > th3:
                    tops[3, c3] = top
                    c3 += 1
            continue
        c1 = _runs_within(high, start, s, th1, tops[1], c1)
        c2 = _runs_within(high, start, s, th2, tops[2], c2)
        c3 = _runs_within(high, start, s, th3, tops[3], c3)
    counts[0] = c0
    counts[1] = c1
    counts[2] = c2
    counts[3] = c3


@njit(cache=True)
def _runs_within(high: np.ndarray, start: int, end: int, threshold: float, tops: np.ndarray, count: int) -> int:
    """The runs above `threshold` within high[start:end], their tops appended at tops[count:]; the new count."""
    s = start
    while s < end:
        if high[s] <= threshold:
            s += 1
            continue
        top = s
        while s < end and high[s] > threshold:
            if high[s] > high[top]:
                top = s
            s += 1
        tops[count] = top
        count += 1
    return count


@njit(cache=True)
def acc_rms_rows(x: np.ndarray) -> np.ndarray:
    """Per window of the batch (N, C ≥ 4, T), the band-passed accelerometer's RMS over all axes (g): the still
    gate here, the cues' motion measure and the tracker's activity prior."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = window_acc_rms(x, i)
    return out


@njit(cache=True)
def window_acc_rms(x: np.ndarray, i: int) -> float:
    """One window's accelerometer RMS, axis by axis (the cues compute it where the window's motion is read anyway)."""
    t = x.shape[2]
    power = 0.0
    for ch in range(1, 4):
        for s in range(t):
            power += x[i, ch, s] * x[i, ch, s]
    return math.sqrt(power / t)


def refine_with_beats(x: np.ndarray, bpm: np.ndarray, fs: float, gate: BeatGate | None = None,
                      rms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(bpm, refined mask): `bpm` with the beat-interval rate where a window passes the gate.
    `x` is the batch of preprocessed windows (N, C, T): PPG first, then accelerometer x, y, z if any;
    `rms` the windows' accelerometer RMS (`acc_rms_rows`) where the caller has it already."""
    g = gate or BeatGate()
    x = np.ascontiguousarray(x)
    out = np.array(bpm, dtype=np.float64)
    if x.shape[1] < 4:  # no accelerometer channels: stillness cannot be checked
        rms = np.zeros(len(out))
    else:
        rms = acc_rms_rows(x) if rms is None else np.ascontiguousarray(rms, dtype=np.float64)
    refined = refine_rows(x, out, fs, rms, g.acc_quiet_g, g.max_deviation, g.min_beats, g.tolerance_bpm, g.without_accelerometer)
    return out, refined


@njit(cache=True)
def refine_rows(x: np.ndarray, bpm: np.ndarray, fs: float, acc_rms: np.ndarray, acc_quiet_g: float, max_deviation: float,
                min_beats: int, tolerance_bpm: float, without_accelerometer: bool) -> np.ndarray:
    """In place on `bpm`; returns which windows were refined (`acc_rms` 0: no accelerometer)."""
    n, c, t = x.shape
    refined = np.zeros(n, dtype=np.bool_)
    peaks = np.empty(t)
    for i in range(n):
        if not (30.0 <= bpm[i] <= 240.0):
            continue
        rms = acc_rms[i]
        if rms > acc_quiet_g or (rms <= 0.0 and not without_accelerometer):
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
