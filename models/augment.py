"""Augmentations that respect physiology, applied to model-ready windows (N, 4, T).

- time-stretch by r ∈ [0.9, 1.1] about the window centre: every rhythm (pulse and cadence) speeds
  up by r, so the heart-rate label is multiplied by r too;
- baseline wander (a slow sinusoid) and white noise on the PPG, then re-standardised as served;
- accelerometer amplitude scaling (its magnitude carries the motion intensity);
- accelerometer dropout: a window with the ACC channels zeroed, as from a PPG-only source.
"""

from __future__ import annotations

import numpy as np


def time_stretch(x: np.ndarray, factor: np.ndarray) -> np.ndarray:
    n, c, t = x.shape
    centre = (t - 1) / 2
    pos = np.clip(centre + (np.arange(t)[None, :] - centre) * factor[:, None], 0, t - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, t - 1)
    frac = (pos - i0)[:, None, :]
    rows = np.arange(n)[:, None, None]
    chans = np.arange(c)[None, :, None]
    return (x[rows, chans, i0[:, None, :]] * (1 - frac) + x[rows, chans, i1[:, None, :]] * frac).astype(np.float32)


def augment(x: np.ndarray, hr_bpm: np.ndarray, rng: np.random.Generator, fs: float = 25.0, stretch: bool = True) -> tuple[np.ndarray, np.ndarray]:
    n, _, t = x.shape
    factor = rng.uniform(0.9, 1.1, n) if stretch else np.ones(n)
    x = time_stretch(x, factor) if stretch else x
    hr = hr_bpm * factor
    time = np.arange(t) / fs
    wander = rng.uniform(0, 0.5, (n, 1)) * np.sin(2 * np.pi * rng.uniform(0.05, 0.3, (n, 1)) * time[None, :] + rng.uniform(0, 6.3, (n, 1)))
    ppg = x[:, 0] + wander + rng.uniform(0, 0.3, (n, 1)) * rng.standard_normal((n, t))
    ppg = (ppg - ppg.mean(axis=1, keepdims=True)) / (ppg.std(axis=1, keepdims=True) + 1e-6)
    out = x.copy()
    out[:, 0] = ppg
    out[:, 1:] *= rng.uniform(0.7, 1.3, (n, 1, 1))
    out[rng.random(n) < 0.1, 1:] = 0.0
    return out.astype(np.float32), hr.astype(np.float32)
