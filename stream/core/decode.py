"""Logits over heart-rate bins → bpm and a confidence, for a whole batch in one Numba call.

bpm: the peak bin refined by a parabola through the log-probabilities of it and its neighbours
(exact for a Gaussian-shaped peak). confidence: the probability mass within ±5 bpm of the estimate.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

CONFIDENCE_BPM = 5.0


@njit(cache=True)
def softmax(logits: np.ndarray) -> np.ndarray:
    p = np.empty(logits.shape, dtype=np.float64)
    for i in range(logits.shape[0]):
        top = logits[i].max()
        total = 0.0
        for j in range(logits.shape[1]):
            p[i, j] = math.exp(logits[i, j] - top)
            total += p[i, j]
        for j in range(logits.shape[1]):
            p[i, j] /= total
    return p


@njit(cache=True)
def refined_peak(row: np.ndarray, bins_bpm: np.ndarray, peak: int) -> float:
    """The bpm of bin `peak` of one probability row, moved by a parabola through the log-probabilities of
    it and its neighbours (exact for a Gaussian-shaped peak); the bin itself at either end of the range."""
    estimate = bins_bpm[peak]
    if 0 < peak < len(row) - 1:
        y0 = math.log(max(row[peak - 1], 1e-300))
        y1 = math.log(max(row[peak], 1e-300))
        y2 = math.log(max(row[peak + 1], 1e-300))
        curvature = y0 - 2.0 * y1 + y2
        if curvature < 0:
            shift = min(max(0.5 * (y0 - y2) / curvature, -0.5), 0.5)
            estimate += shift * 0.5 * (bins_bpm[peak + 1] - bins_bpm[peak - 1])
    return estimate


@njit(cache=True)
def decode_probabilities(p: np.ndarray, bins_bpm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bpm, confidence) per row of a probability matrix (N, K)."""
    n, k = p.shape
    bpm = np.empty(n)
    confidence = np.empty(n)
    for i in range(n):
        peak = 0
        for j in range(1, k):
            if p[i, j] > p[i, peak]:
                peak = j
        estimate = refined_peak(p[i], bins_bpm, peak)
        mass = 0.0
        for j in range(k):
            if abs(bins_bpm[j] - estimate) <= CONFIDENCE_BPM:
                mass += p[i, j]
        bpm[i] = estimate
        confidence[i] = min(max(mass, 0.0), 1.0)
    return bpm, confidence


def decode_logits(logits: np.ndarray, bins_bpm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return decode_probabilities(softmax(np.ascontiguousarray(logits)), np.ascontiguousarray(bins_bpm, dtype=np.float64))
