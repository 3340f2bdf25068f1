"""Logits over heart-rate bins → bpm and a confidence, for a whole batch at once."""

from __future__ import annotations

import numpy as np

CONFIDENCE_BPM = 5.0  # confidence = probability mass within ± this of the estimate


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def decode_probabilities(p: np.ndarray, bins_bpm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bpm, confidence) per row of a probability matrix (N, K)."""
    n, k = p.shape
    peak = p.argmax(axis=1)
    # parabola through the log-probabilities of the peak and its neighbours: exact for a Gaussian peak
    lo, hi = np.clip(peak - 1, 0, k - 1), np.clip(peak + 1, 0, k - 1)
    rows = np.arange(n)
    y0, y1, y2 = (np.log(np.maximum(p[rows, i], 1e-300)) for i in (lo, peak, hi))
    curvature = y0 - 2 * y1 + y2
    inner = (peak > 0) & (peak < k - 1) & (curvature < 0)
    shift = np.where(inner, 0.5 * (y0 - y2) / np.where(inner, curvature, -1.0), 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    step = (bins_bpm[hi] - bins_bpm[lo]) / np.maximum(hi - lo, 1)
    bpm = bins_bpm[peak] + shift * step
    near = np.abs(bins_bpm[None, :] - bpm[:, None]) <= CONFIDENCE_BPM
    confidence = np.clip((p * near).sum(axis=1), 0.0, 1.0)
    return bpm, confidence


def decode_logits(logits: np.ndarray, bins_bpm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return decode_probabilities(softmax(logits.astype(np.float64)), bins_bpm)
