"""Per-window features that classify failures: where the accelerometer's and the PPG's power peak, and
how much the wrist moves. Pure functions of the preprocessed windows (N, C, T) at the model's rate."""

from __future__ import annotations

import numpy as np

from ..stream.core.student_spec import BINS_BPM

FS = 25.0  # the training spec's rate


def bin_power(signal: np.ndarray, fs: float = FS, bins_bpm: np.ndarray = BINS_BPM) -> np.ndarray:
    """Hann-windowed power at each bin frequency, (N, T) → (N, K): the same grid the model's logits use."""
    t = np.arange(signal.shape[-1]) / fs
    hann = np.hanning(signal.shape[-1])
    phase = 2 * np.pi * np.outer(bins_bpm / 60.0, t)
    basis = (np.cos(phase) - 1j * np.sin(phase)) * hann
    return np.abs(signal @ basis.T) ** 2


def window_features(x: np.ndarray, fs: float = FS) -> dict[str, np.ndarray]:
    """acc_rms (g, band-passed 0.4-4 Hz, summed over axes), acc_peak_bpm (peak of the summed ACC power over
    the bins), ppg_peak_bpm (peak of the PPG power)."""
    x = np.asarray(x, dtype=np.float64)
    acc = x[:, 1:4] if x.shape[1] >= 4 else np.zeros((len(x), 3, x.shape[-1]))
    acc_power = sum(bin_power(acc[:, i], fs) for i in range(3))
    return {
        "acc_rms": np.sqrt((acc**2).sum(axis=1).mean(axis=1)),
        "acc_peak_bpm": BINS_BPM[np.argmax(acc_power, axis=1)],
        "ppg_peak_bpm": BINS_BPM[np.argmax(bin_power(x[:, 0], fs), axis=1)],
    }
