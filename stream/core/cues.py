"""Cues beside the model (issue 22): what the window's beats and the wrist's motion say about its estimate.

A spectral model trained on one device can learn "the accelerometer's peak is the heart rate" (in IEEE SPC
2015 running the cadence often sits at the HR); on an exercise bike the pedalling cadence dominates the
PPG and the accelerometer alike, and the model then publishes the cadence with confidence 0.99. Three
cheap cues, computed per window from the preprocessed window itself (so training, the accuracy harness
and the stream see the same), catch that:

- **motion**: the band-passed accelerometer's RMS (all axes, g) and the share of its power at the model's
  peak or at ½, 2/3, ⅓ or twice it (Hann-windowed Goertzel at those rates; 1 for a pure sinusoid there):
  a model peak on the cadence is *suspect*;
- **beats**: a time-domain beat rate with the regularity of its intervals (`beats.beat_rates`), which
  does not look at the spectrum at all;
- then `fuse`: where the model's peak is suspect and regular beats say otherwise, the beats lead (the
  window's distribution becomes a mixture weighted `beat_weight` towards a peak at the beat rate), and
  the tracker (with its activity prior, stream/core/tracker.py) follows; `temper` lowers the published
  confidence wherever regular beats disagree with what is published, and where the published rate sits
  on the cadence of a moving wrist with no beats to confirm it.

Everything is a fixed amount of arithmetic per window (no spectrum over all bins), in one Numba call per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from .beats import beat_rates, window_acc_rms


# where the accelerometer is looked at, relative to a rate: a model's peak at the cadence, at twice it or half
# of it (a step rate and the arm's swing at half of it), or at 3/2 or 3 times it (harmonics) is on a cadence line
CADENCE_RATIOS = (1.0, 0.5, 2.0, 2.0 / 3.0, 1.0 / 3.0)
ACC_STEP = 2  # the cadence share reads every other accelerometer sample
BEAT_LINES = 3  # motion fakes beats once or twice per cycle (x 1, 2, ½): the first three ratios


@dataclass(frozen=True)
class CueParams:
    moving_g: float = 0.02  # accelerometer RMS above which the wrist moves (beats.BeatGate's still threshold)
    cadence_share: float = 0.2  # accelerometer power share at the model's peak (or ½×, 2×) that makes it suspect
    regular_cv: float = 0.15  # beat intervals this regular (coefficient of variation) may lead a suspect window...
    doubt_cv: float = 0.25  # ...and this regular may still cast doubt: lower the confidence where they disagree
    disagree_bpm: float = 10.0  # beats and estimate further apart than this disagree
    beat_weight: float = 0.9  # share of a suspect window's distribution moved to the beat rate
    beat_sigma_bpm: float = 2.5  # width of that peak
    distrust: float = 0.5  # a suspect window without beats to follow: its distribution mixed this much with a flat one
    disagreement_factor: float = 0.3  # confidence × this where regular beats disagree with the published rate
    cadence_factor: float = 0.6  # confidence × this where the published rate is the cadence and no beats confirm it
    doubted_distrust: float = 0.95  # ...and this much where its beats (doubt_cv) disagree and it is the motion's line or a harmonic


@dataclass(frozen=True)
class Cues:
    acc_rms: np.ndarray  # (N,) g
    cadence: np.ndarray  # (N,) accelerometer power share at the model's peak, ½× or 2× (0-1)
    beat_bpm: np.ndarray  # (N,) NaN where no beat rate was found
    beat_cv: np.ndarray  # (N,)
    peak_bpm: np.ndarray  # (N,) the model's peak
    moved: np.ndarray  # (N,) bool: the window's distribution was moved towards the beats


def cues_for(x: np.ndarray, probs: np.ndarray, fs: float, bins: np.ndarray, params: CueParams | None = None,
             overwrite: bool = False) -> tuple[np.ndarray, Cues]:
    """(the windows' distributions after the beats' say, their cues); `x` (N, C, T): PPG then ACC x, y, z.
    `overwrite`: the distributions are changed in `probs` itself (a float64 C-contiguous array the caller no
    longer needs); a copy of a large batch costs more than the cues' own arithmetic once the allocator hands
    it fresh pages. The cues' `acc_rms` is the one the activity prior and the beat gate use too."""
    p = params or CueParams()
    x = np.ascontiguousarray(x)
    beat_bpm, beat_cv = beat_rates(x, fs)
    own = overwrite and probs.dtype == np.float64 and probs.flags.c_contiguous and probs.flags.writeable
    fused = probs if own else np.array(probs, dtype=np.float64)
    acc_rms, peaks, cadence, moved = fuse_rows(x, fused, fs, np.ascontiguousarray(bins, dtype=np.float64), beat_bpm, beat_cv, hann_window(x.shape[2]),
                                               p.moving_g, p.cadence_share, p.regular_cv, p.disagree_bpm, p.beat_weight, p.beat_sigma_bpm,
                                               p.distrust, p.doubt_cv, p.doubted_distrust)
    return fused, Cues(acc_rms, cadence, beat_bpm, beat_cv, peaks, moved)


def temper(bpm: np.ndarray, confidence: np.ndarray, x: np.ndarray, cues: Cues, fs: float, params: CueParams | None = None) -> np.ndarray:
    """The published confidence after the cues: lowered where regular beats disagree with `bpm`, and where
    `bpm` is the moving wrist's cadence with no regular beats agreeing."""
    p = params or CueParams()
    x = np.ascontiguousarray(x)
    return temper_rows(x, np.ascontiguousarray(bpm, dtype=np.float64), np.array(confidence, dtype=np.float64), hann_window(x.shape[2]),
                       fs, cues.acc_rms, cues.peak_bpm, cues.cadence, cues.beat_bpm, cues.beat_cv, p.moving_g, p.cadence_share,
                       p.regular_cv, p.doubt_cv, p.disagree_bpm, p.disagreement_factor, p.cadence_factor)


@njit(cache=True)
def _cadence_share(x: np.ndarray, i: int, fs: float, bpm: float, hann: np.ndarray, lines: int = 5, at_or_above: bool = False) -> float:
    """The largest accelerometer power share at `bpm` × CADENCE_RATIOS[:lines], summed over the axes
    (`at_or_above`: only the ratios ≤ 1, where `bpm` is the motion's own line or a harmonic of it, which motion
    puts into the PPG; not its sub-harmonic, where a pulse at half a fast cadence lies):
    Hann-windowed Goertzel power over (samples / 3) × Hann-weighted energy, which is 1 for a pure sinusoid
    at that rate. Every other sample (the accelerometer is band-passed to 4 Hz, half of 25 Hz keeps it
    alias-free); the five Goertzel recursions run side by side in one pass."""
    t = x.shape[2]
    w = 2.0 * math.pi * bpm / 60.0 / fs * ACC_STEP
    c0 = 2.0 * math.cos(w * CADENCE_RATIOS[0])
    c1 = 2.0 * math.cos(w * CADENCE_RATIOS[1])
    c2 = 2.0 * math.cos(w * CADENCE_RATIOS[2])
    c3 = 2.0 * math.cos(w * CADENCE_RATIOS[3])
    c4 = 2.0 * math.cos(w * CADENCE_RATIOS[4])
    p0 = p1 = p2 = p3 = p4 = 0.0
    energy = 0.0
    used = 0
    for ch in range(1, 4):
        a0 = a1 = a2 = a3 = a4 = 0.0
        b0 = b1 = b2 = b3 = b4 = 0.0
        used = 0
        for s in range(0, t, ACC_STEP):
            v = x[i, ch, s] * hann[s]
            energy += v * v
            used += 1
            a0, b0 = v + c0 * a0 - b0, a0
            a1, b1 = v + c1 * a1 - b1, a1
            a2, b2 = v + c2 * a2 - b2, a2
            a3, b3 = v + c3 * a3 - b3, a3
            a4, b4 = v + c4 * a4 - b4, a4
        p0 += a0 * a0 + b0 * b0 - c0 * a0 * b0
        p1 += a1 * a1 + b1 * b1 - c1 * a1 * b1
        p2 += a2 * a2 + b2 * b2 - c2 * a2 * b2
        p3 += a3 * a3 + b3 * b3 - c3 * a3 * b3
        p4 += a4 * a4 + b4 * b4 - c4 * a4 * b4
    if energy <= 0.0:
        return 0.0
    best = 0.0
    for j, (r, power) in enumerate(zip(CADENCE_RATIOS, (p0, p1, p2, p3, p4))):
        if j < lines and 20.0 <= r * bpm <= 240.0 and (r <= 1.0 or not at_or_above):
            best = max(best, power)
    return min(1.0, 3.0 * best / (used * energy))


@lru_cache(maxsize=8)
def hann_window(t: int) -> np.ndarray:
    """The Hann window of a window length, made once (a batch of one window would otherwise pay its cosines)."""
    out = _hann_rows(t)
    out.flags.writeable = False
    return out


@njit(cache=True)
def _hann_rows(t: int) -> np.ndarray:
    out = np.empty(t)
    for s in range(t):
        out[s] = 0.5 - 0.5 * math.cos(2.0 * math.pi * s / (t - 1))
    return out


@njit(cache=True)
def _beats_free(x, i, fs, beat_bpm, hann, moving, cadence_share) -> bool:
    """The beat rate is not itself a line of the motion (an arm swinging regularly makes regular 'beats')."""
    return not moving or _cadence_share(x, i, fs, beat_bpm, hann, BEAT_LINES) < cadence_share


@njit(cache=True)
def fuse_rows(x, probs, fs, bins, beat_bpm, beat_cv, hann, moving_g, cadence_share, regular_cv, disagree_bpm, beat_weight, beat_sigma,
              distrust, doubt_cv, doubted_distrust):
    """In place on `probs`; returns per window (acc RMS, the model's peak, the cadence share there, moved).
    A suspect peak (on the cadence) is moved to regular, motion-free beats that disagree with it; else it
    is mixed with a flat distribution, all but erased (`doubted_distrust`) where less regular beats disagree
    and the peak is the motion's own line or a harmonic of it (the exercise bike's pedals, a walk's steps).
    The RMS is taken here, where the window's motion is read anyway (in cache for the cadence share); every
    accelerometer share is computed only where a decision needs it."""
    n, k = probs.shape
    acc_rms = np.zeros(n)
    peaks = np.zeros(n)
    cadence = np.zeros(n)
    moved = np.zeros(n, dtype=np.bool_)
    has_acc = x.shape[1] >= 4
    for i in range(n):
        peaks[i] = bins[np.argmax(probs[i])]
        if has_acc:
            acc_rms[i] = window_acc_rms(x, i)
        if acc_rms[i] <= moving_g:
            continue
        cadence[i] = _cadence_share(x, i, fs, peaks[i], hann, 5)
        if cadence[i] < cadence_share:
            continue
        b = beat_bpm[i]
        disagree = abs(b - peaks[i]) > disagree_bpm
        if beat_cv[i] <= regular_cv and disagree and _beats_free(x, i, fs, b, hann, True, cadence_share):
            total = 0.0
            for j in range(k):  # a Gaussian at the beat rate, cut at 4 sigma
                d = (bins[j] - b) / beat_sigma
                probs[i, j] *= 1.0 - beat_weight
                if abs(d) < 4.0:
                    total += math.exp(-0.5 * d * d)
            for j in range(k):
                d = (bins[j] - b) / beat_sigma
                if abs(d) < 4.0:
                    probs[i, j] += beat_weight * math.exp(-0.5 * d * d) / total
            moved[i] = True
        else:  # a peak on the cadence says little about the pulse; less still where beats disagree with it
            mix = distrust
            if beat_cv[i] <= doubt_cv and disagree and _cadence_share(x, i, fs, peaks[i], hann, 5, True) >= cadence_share:
                mix = doubted_distrust
            for j in range(k):
                probs[i, j] = (1.0 - mix) * probs[i, j] + mix / k
    return acc_rms, peaks, cadence, moved


@njit(cache=True)
def temper_rows(x, bpm, confidence, hann, fs, acc_rms, peaks, cadence, beat_bpm, beat_cv, moving_g, cadence_share, regular_cv, doubt_cv,
                disagree_bpm, disagreement_factor, cadence_factor):
    """× `disagreement_factor` where fairly regular beats (to `doubt_cv`), not the motion, disagree with the
    published rate; else × `cadence_factor` where the published rate sits on a moving wrist's cadence line
    and regular beats, not the motion, do not confirm it."""
    n = bpm.shape[0]
    for i in range(n):
        moving = acc_rms[i] > moving_g
        agree = abs(beat_bpm[i] - bpm[i]) <= disagree_bpm
        if not agree and beat_cv[i] <= doubt_cv and _beats_free(x, i, fs, beat_bpm[i], hann, moving, cadence_share):
            confidence[i] *= disagreement_factor
        elif moving:
            share = cadence[i] if abs(bpm[i] - peaks[i]) <= 1.0 else _cadence_share(x, i, fs, bpm[i], hann, 5)
            if share >= cadence_share and not (agree and beat_cv[i] <= regular_cv and _beats_free(x, i, fs, beat_bpm[i], hann, True, cadence_share)):
                confidence[i] *= cadence_factor
    return confidence
