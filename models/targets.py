"""Heart rate as classification over 1-bpm bins: soft targets over the bins, and the spec models are trained with."""

from __future__ import annotations

import numpy as np

from ..stream.core.model_spec import ModelSpec
from ..stream.core.student_spec import BINS_BPM, student_spec

TARGET_SIGMA_BPM = 1.5  # label smoothing that respects the ordinal bins: the ECG reference is not exact


def gaussian_targets(hr_bpm: np.ndarray, bins: np.ndarray = BINS_BPM, sigma: float = TARGET_SIGMA_BPM) -> np.ndarray:
    """(N, K) rows summing to 1: a Gaussian over the bins centred on each reference HR."""
    t = np.exp(-0.5 * ((bins[None, :] - np.asarray(hr_bpm, dtype=np.float64)[:, None]) / sigma) ** 2)
    return (t / t.sum(axis=1, keepdims=True)).astype(np.float32)


def nearest_bin(hr_bpm: np.ndarray, bins: np.ndarray = BINS_BPM) -> np.ndarray:
    return np.clip(np.rint((np.asarray(hr_bpm) - bins[0]) / (bins[1] - bins[0])), 0, len(bins) - 1).astype(np.int64)


TRAINING_SPEC = student_spec("training", "0", "", "")


def training_spec(taper: str = "hann") -> ModelSpec:
    """The spec models are built with for training: the training windows do not depend on the taper."""
    return TRAINING_SPEC if taper == "hann" else student_spec("training", "0", "", "", taper=taper)
