"""Causal heart-rate tracking: a forward filter over the HR bins.

Each window's model distribution is evidence; between windows the heart rate moves by a small step
(a Laplace-shaped transition prior, widened across skipped windows), and a floor on the prior keeps a
way back from a wrong lock (e.g. onto the running cadence). When the model's own peak disagrees with
the track for several confident windows in a row, the track is re-acquired from the evidence alone.
The tracker decides *which* peak; the window decides *where exactly*: the output is the window's own
probability peak nearest the track (within `peak_radius_bpm` of the posterior's peak, refined by a
parabola), and the posterior's peak only where the window has no peak that close. The posterior is a
product with a prior that lags a changing HR by design, so its own peak is less precise than the
window's whenever the two agree (at rest 0.49 → 0.31 bpm, `ppg-distill accuracy`). The confidence is
the posterior's mass within ±5 bpm of its peak.

No single window can capture the track (issue 12):
- **Bounded evidence.** A window is an outlier with probability `outlier_share` (arm motion with power
  at the HR, a harmonic the model preferred): then it says nothing about the HR. Its likelihood is
  therefore the mixture (1 − ε)·p + ε/K, not p, before tempering. However confident a window is, it
  favours one bin over another by at most ((1 − ε + ε/K)/(ε/K))^power, so one window can no longer
  override a settled track (whose prior ratio to a far bin is about peak/(floor/K)); a run of them can,
  which keeps the Bayesian way back from a wrong lock.
- **No harmonic re-acquisition.** Re-acquisition is a hard reset that trusts the evidence alone, the
  remedy for a lock on a cadence that bears no relation to the pulse. When the model's peak sits at
  ~2×, 3/2, 3×, 1/2, 2/3 or 1/3 of the track (within `harmonic_tolerance`), the disagreement is the
  classic harmonic confusion of a spectral estimate: the run of disagreeing windows goes on, but the
  reset never lands there. A harmonic can still win, only through the bounded evidence accumulating
  window after window. The refusal lapses when the
  window gives the track itself almost no probability (< `harmonic_support` within ±5 bpm): then the
  track, not the window, is the likelier harmonic error (a lock on 2× taken during motion, say), and
  re-acquisition is the quick way back.
`TrackerParams(outlier_share=0, harmonic_tolerance=0, peak_radius_bpm=0)` is the tracker before these
three changes.

A physiological prior (issue 22): a wrist that keeps moving (the accelerometer's band-passed RMS above
`active_g` in `sustained_windows` windows in a row, a minute: walking, running, cycling, not a burst or
a set of curls) belongs to someone whose heart rate is not far below the resting range, so from then on
each window's evidence below `active_floor_bpm` is scaled down by a half-Gaussian of width
`active_width_bpm`. A lock on a slow pedalling cadence (38-60 per minute on an exercise bike) loses its
footing, and the beats get their say (stream/core/cues.py). The same holds from the first window for a
stream that starts on a moving wrist (`from_start`): until the tracker has seen one still window it has no
sign of a low heart rate, and someone already pedalling or walking when the stream starts is not at 40-60
bpm (the exercise bike's first minute: 28-47 bpm of error on a cadence lock before, about 4-6 after). Once
a still window has been seen (a user who sat down, then started), only the sustained rule applies, so a low
resting rate carried into motion keeps its footing. Without activity (`update(..., activity=None)`, a
device without accelerometer) the prior is flat.

A ceiling for a walk's start: a stream that has only moved gently since its first window (never still,
never above `vigorous_g`, which running reaches and walking does not) is someone walking, whose heart is
rarely above 140 (walking is moderate work), while the step's octave (2 × 80-100 steps a minute) lies at
160-200 and a model trained on runners leans there; the tracker used to lock onto it for the first minute
or two of a treadmill walk. So for the stream's first `gentle_windows` windows, evidence above
`gentle_ceiling_bpm` is scaled down by a half-Gaussian of width `gentle_width_bpm`, to no less than
`gentle_least`: a model torn between the pulse and the octave publishes the pulse; one that insists on a
high rate (hard cycling from the start, a quiet wrist) still wins, only later; after the first minutes,
or once the wrist has been still or run, the ceiling is gone (a walk after a run keeps its high rate).
A run is told by its force on a wrist (RMS ≥ `vigorous_g`) or, whatever the sensor's place or scale (an
upper-arm sensor runs at a walk's 0.1-0.3 g), by its cadence: the accelerometer's strongest line at
`running_per_min` or above in `running_windows` windows in a row (`acc_line`, stream/core/gait.py, read only
while the ceiling may still lift: `gait_wanted`). Without it a ceiling on a quiet runner's 170 bpm drove the
track onto half of it, where the harmonic rule then held it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .decode import decode_probabilities, refined_peak


@dataclass(frozen=True)
class TrackerParams:
    step_bpm: float = 3.0  # Laplace scale of HR change per hop (2 s)
    floor: float = 1e-3  # share of prior mass spread uniformly: the way back from a wrong lock
    evidence_power: float = 0.7  # tempers one window's evidence (windows overlap by 75 %)
    reacquire_bpm: float = 15.0  # model peak this far from the track counts as disagreement...
    reacquire_windows: int = 4  # ...and this many disagreeing windows in a row re-acquire
    reacquire_confidence: float = 0.5  # only confident windows count as disagreement
    outlier_share: float = 0.1  # ε: a window's likelihood is (1 − ε)·p + ε/K (bounded evidence)
    harmonic_tolerance: float = 0.05  # a model peak this close (relative) to a harmonic of the track is no disagreement...
    harmonic_support: float = 0.05  # ...while the window still gives the track this much probability (±5 bpm)
    peak_radius_bpm: float = 3.0  # publish the window's own peak within this of the track's (0: the posterior's peak)
    active_g: float = 0.03  # accelerometer RMS (g) above which the wrist moves...
    sustained_windows: int = 30  # ...and this many windows in a row of it (a minute) make a HR far below rest implausible...
    active_floor_bpm: float = 70.0  # ...so evidence below this is scaled down...
    active_width_bpm: float = 5.0  # ...by a half-Gaussian of this width (0: no activity prior)
    from_start: bool = True  # ...and so does a stream whose wrist has moved since its first window (no still window yet)
    vigorous_g: float = 0.5  # accelerometer RMS (g) of vigorous motion (running on a wrist); below it a wrist moves gently...
    running_per_min: float = 140.0  # ...unless its accelerometer's strongest line (stream/core/gait.py) is at a running cadence...
    running_windows: int = 3  # ...in this many windows in a row (one stray window of a walk or a bike is not a run)
    gentle_ceiling_bpm: float = 140.0  # ...and while a stream has only ever moved gently, evidence above this is scaled down...
    gentle_width_bpm: float = 10.0  # ...by a half-Gaussian of this width (0: no ceiling)...
    gentle_least: float = 0.3  # ...to no less than this share (a rate the model keeps insisting on still wins)...
    gentle_windows: int = 90  # ...for the stream's first this many windows (3 min; 0: as long as it only moves gently)


STATE_COLUMNS = 5  # last window index, disagreement run length, windows in a row the wrist has moved, a still window seen, running windows in a row (running_windows: ran)
HARMONIC_RATIOS = np.array([2.0, 1.5, 3.0, 0.5, 2.0 / 3.0, 1.0 / 3.0])


class TrackerTable:
    """Tracker state for many streams: one row of the prior table per device, updated for a whole
    batch of windows (any mix of devices, each device's windows in order) in one Numba call."""

    def __init__(self, bins_bpm: np.ndarray, params: TrackerParams | None = None, capacity: int = 16) -> None:
        self.params = params or TrackerParams()
        self.bins = np.ascontiguousarray(bins_bpm, dtype=np.float64)
        bin_width = float(np.median(np.diff(self.bins)))
        self.decay = float(np.exp(-bin_width / self.params.step_bpm))
        self.priors = np.empty((capacity, len(self.bins)))
        self.states = np.empty((capacity, STATE_COLUMNS))
        self._free = list(range(capacity - 1, -1, -1))

    def add(self) -> int:
        """A fresh row (uniform prior, no history); the table doubles when full."""
        if not self._free:
            old = len(self.states)
            self.priors = np.concatenate([self.priors, np.empty_like(self.priors)])
            self.states = np.concatenate([self.states, np.empty_like(self.states)])
            self._free = list(range(2 * old - 1, old - 1, -1))
        row = self._free.pop()
        self.priors[row] = 1.0 / len(self.bins)
        self.states[row] = (-1.0, 0.0, 0.0, 0.0, 0.0)  # last window index, disagreement run length, moving run length, still seen, running run
        return row

    def remove(self, row: int) -> None:
        self._free.append(row)

    def compact(self, min_capacity: int = 16) -> dict[int, int]:
        """Shrink to the rows in use (the table only ever doubled); returns old row → new row."""
        free = set(self._free)
        used = [r for r in range(len(self.states)) if r not in free]
        capacity = max(min_capacity, 1 << max(0, len(used) - 1).bit_length())
        if capacity >= len(self.states):
            return {r: r for r in used}
        priors, states = np.empty((capacity, self.priors.shape[1])), np.empty((capacity, STATE_COLUMNS))
        priors[: len(used)], states[: len(used)] = self.priors[used], self.states[used]
        self.priors, self.states = priors, states
        self._free = list(range(capacity - 1, len(used) - 1, -1))
        return {old: new for new, old in enumerate(used)}

    def gait_wanted(self, rows: np.ndarray, activity: np.ndarray) -> np.ndarray:
        """Which windows' gait (`update`'s `acc_line`) the tracker would read: a gently moving wrist whose stream
        still has the walk-start ceiling to lift (as of the batch's start), so the line is measured only then."""
        p = self.params
        if p.gentle_width_bpm <= 0.0 or not p.from_start:
            return np.zeros(len(rows), dtype=bool)
        s = self.states[np.asarray(rows, dtype=np.int64)]
        return ((s[:, 3] == 0.0) & (s[:, 4] < p.running_windows) & ((p.gentle_windows <= 0) | (s[:, 2] <= p.gentle_windows))
                & (activity > p.active_g) & (activity < p.vigorous_g))

    def update(self, rows: np.ndarray, k: np.ndarray, probs: np.ndarray, activity: np.ndarray | None = None,
               acc_line: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior (bpm, confidence) per window; `probs` are the model's softmax rows (or the cues' fused ones),
        `activity` the windows' band-passed accelerometer RMS in g (None: unknown, no activity prior), `acc_line`
        the rate of their accelerometer's strongest line per minute where `gait_wanted` (0 or None: not measured)."""
        p = self.params
        if activity is None:
            activity = np.zeros(len(k))
        if acc_line is None:
            acc_line = np.zeros(len(k))
        post = track_rows(
            np.ascontiguousarray(rows, dtype=np.int64), np.ascontiguousarray(k, dtype=np.int64),
            np.ascontiguousarray(probs, dtype=np.float64), self.priors, self.states, self.decay, self.bins,
            p.floor, p.evidence_power, p.reacquire_bpm, p.reacquire_windows, p.reacquire_confidence,
            p.outlier_share, p.harmonic_tolerance, p.harmonic_support, HARMONIC_RATIOS,
            np.ascontiguousarray(activity, dtype=np.float64), p.active_g, p.sustained_windows, p.active_floor_bpm, p.active_width_bpm,
            p.from_start, p.vigorous_g, np.ascontiguousarray(acc_line, dtype=np.float64), p.running_per_min, p.running_windows,
            p.gentle_ceiling_bpm, p.gentle_width_bpm, p.gentle_least, p.gentle_windows,
        )
        bpm, confidence = decode_probabilities(post, self.bins)
        if p.peak_radius_bpm > 0:
            bpm = nearest_window_peak(np.ascontiguousarray(probs, dtype=np.float64), bpm, self.bins, p.peak_radius_bpm)
        return bpm, confidence

    @property
    def row_nbytes(self) -> int:
        return self.priors.shape[1] * self.priors.itemsize + self.states.shape[1] * self.states.itemsize


class Tracker:
    """One stream on its own (training's evaluation, tests): a one-row table."""

    def __init__(self, bins_bpm: np.ndarray, params: TrackerParams | None = None) -> None:
        self.table = TrackerTable(bins_bpm, params, capacity=1)
        self.row = self.table.add()

    def update(self, k: np.ndarray, probs: np.ndarray, activity: np.ndarray | None = None,
               acc_line: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.table.update(np.full(len(k), self.row), k, probs, activity, acc_line)


@njit(cache=True)
def _predict(prior: np.ndarray, decay: float, hops: int, floor: float) -> np.ndarray:
    """Convolve with the Laplace kernel decay**|Δbin| once per hop, in O(K): a forward and a
    backward first-order recursion (their sum counts the centre twice)."""
    k = prior.shape[0]
    out = prior.copy()
    fwd = np.empty(k)
    bwd = np.empty(k)
    for _ in range(min(hops, 30)):
        fwd[0] = out[0]
        for j in range(1, k):
            fwd[j] = out[j] + decay * fwd[j - 1]
        bwd[k - 1] = out[k - 1]
        for j in range(k - 2, -1, -1):
            bwd[j] = out[j] + decay * bwd[j + 1]
        for j in range(k):
            out[j] = fwd[j] + bwd[j] - out[j]
    total = out.sum()
    for j in range(k):
        out[j] = (1.0 - floor) * out[j] / total + floor / k
    return out


@njit(cache=True)
def nearest_window_peak(probs: np.ndarray, track_bpm: np.ndarray, bins: np.ndarray, radius_bpm: float) -> np.ndarray:
    """Per window, its own highest bin within `radius_bpm` of the track, refined by a parabola through the
    log-probabilities (`refined_peak`, as `decode_probabilities` does); the track where that bin is at the edge of the range
    (the window rises towards some other peak, none is near the track)."""
    n, k = probs.shape
    out = track_bpm.copy()
    for i in range(n):
        best, lo, hi = -1, -1, -1
        for j in range(k):
            if abs(bins[j] - track_bpm[i]) <= radius_bpm:
                if lo < 0:
                    lo = j
                hi = j
                if best < 0 or probs[i, j] > probs[i, best]:
                    best = j
        if lo < best < hi:
            out[i] = refined_peak(probs[i], bins, best)
    return out


@njit(cache=True)
def _harmonic(candidate: float, track: float, ratios: np.ndarray, tolerance: float) -> bool:
    """Is `candidate` within `tolerance` (relative) of one of the harmonic ratios times `track`? (never for 0)"""
    if tolerance <= 0.0:
        return False
    for r in ratios:
        if abs(candidate - r * track) <= tolerance * r * track:
            return True
    return False


@njit(cache=True)
def track_rows(
    rows: np.ndarray,
    ks: np.ndarray,
    probs: np.ndarray,
    priors: np.ndarray,
    states: np.ndarray,
    decay: float,
    bins: np.ndarray,
    floor: float,
    power: float,
    reacquire_bpm: float,
    reacquire_windows: int,
    reacquire_confidence: float,
    outlier_share: float,
    harmonic_tolerance: float,
    harmonic_support: float,
    harmonic_ratios: np.ndarray,
    activity: np.ndarray,
    active_g: float,
    sustained_windows: int,
    active_floor: float,
    active_width: float,
    from_start: bool,
    vigorous_g: float,
    acc_line: np.ndarray,
    running_per_min: float,
    running_windows: int,
    gentle_ceiling: float,
    gentle_width: float,
    gentle_least: float,
    gentle_windows: int,
) -> np.ndarray:
    """Window w updates the tracker row rows[w] (its prior and [last k, disagreement run, activity average])."""
    n, k = probs.shape
    out = np.empty((n, k))
    for w in range(n):
        prior = priors[rows[w]]
        state = states[rows[w]]
        last = int(state[0])
        evidence = np.empty(k)
        for j in range(k):
            evidence[j] = math.pow((1.0 - outlier_share) * probs[w, j] + outlier_share / k + 1e-12, power)
        if activity[w] > active_g:
            state[2] += 1.0 if last < 0 else max(1, ks[w] - last)
        else:
            state[2] = 0.0
            state[3] = 1.0
        if activity[w] >= vigorous_g:  # a run, by its force on a wrist...
            state[4] = running_windows
        elif state[4] < running_windows:  # ...or by its cadence, whatever the sensor's place or scale
            state[4] = state[4] + 1.0 if acc_line[w] >= running_per_min else 0.0
        active = state[2] >= sustained_windows or (from_start and state[3] == 0.0 and state[2] > 0.0)
        if active_width > 0.0 and active:
            for j in range(k):
                if bins[j] < active_floor:
                    evidence[j] *= max(math.exp(-0.5 * ((active_floor - bins[j]) / active_width) ** 2), 1e-6)
        if gentle_width > 0.0 and from_start and state[2] > 0.0 and state[3] == 0.0 and state[4] < running_windows and (gentle_windows <= 0 or state[2] <= gentle_windows):
            for j in range(k):  # only ever moved, never hard: a walk, not a run or its recovery
                if bins[j] > gentle_ceiling:
                    evidence[j] *= max(math.exp(-0.5 * ((bins[j] - gentle_ceiling) / gentle_width) ** 2), gentle_least)
        if last < 0:
            post = evidence.copy()
        else:
            pred = _predict(prior, decay, max(1, ks[w] - last), floor)
            post = pred * evidence
        post /= post.sum()
        # re-acquisition: the evidence keeps pointing elsewhere with confidence
        model_peak = bins[np.argmax(probs[w])]
        track_peak = bins[np.argmax(post)]
        mass = 0.0
        support = 0.0
        for j in range(k):
            if abs(bins[j] - model_peak) <= 5.0:
                mass += probs[w, j]
            if abs(bins[j] - track_peak) <= 5.0:
                support += probs[w, j]
        harmonic = support >= harmonic_support and _harmonic(model_peak, track_peak, harmonic_ratios, harmonic_tolerance)
        if abs(model_peak - track_peak) > reacquire_bpm and mass >= reacquire_confidence:
            state[1] += 1
        else:
            state[1] = 0
        if state[1] >= reacquire_windows and not harmonic:  # never land on a harmonic the window still supports
            post = evidence / evidence.sum()
            state[1] = 0
        prior[:] = post
        state[0] = ks[w]
        out[w] = post
    return out
