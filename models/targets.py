"""Heart rate as classification over 1-bpm bins: the bins, soft targets, and the student's model spec."""

from __future__ import annotations

import numpy as np

from stream.model_spec import ModelSpec

BINS_BPM = np.arange(30.0, 211.0, 1.0)  # 181 classes covering 30-210 bpm (the paper uses 180)
TARGET_SIGMA_BPM = 1.5  # label smoothing that respects the ordinal bins: the ECG reference is not exact


def gaussian_targets(hr_bpm: np.ndarray, bins: np.ndarray = BINS_BPM, sigma: float = TARGET_SIGMA_BPM) -> np.ndarray:
    """(N, K) rows summing to 1: a Gaussian over the bins centred on each reference HR."""
    t = np.exp(-0.5 * ((bins[None, :] - np.asarray(hr_bpm, dtype=np.float64)[:, None]) / sigma) ** 2)
    return (t / t.sum(axis=1, keepdims=True)).astype(np.float32)


def nearest_bin(hr_bpm: np.ndarray, bins: np.ndarray = BINS_BPM) -> np.ndarray:
    return np.clip(np.rint((np.asarray(hr_bpm) - bins[0]) / (bins[1] - bins[0])), 0, len(bins) - 1).astype(np.int64)


def student_spec(name: str, version: str, training_data: str, description: str, extra: dict | None = None, taper: str = "hann") -> ModelSpec:
    """The preprocessing every model of this project is trained and served with (the spectral estimator too);
    `taper` is the spectral front end's window, carried in the metadata so the exported graph matches."""
    return ModelSpec(
        name=name,
        version=version,
        fs=25.0,
        window_s=8.0,
        hop_s=2.0,
        channels=("ppg", "acc_x", "acc_y", "acc_z"),
        bins_bpm=BINS_BPM,
        bandpass_hz=(0.4, 4.0),
        bandpass_order=4,
        normalize="zscore",
        training_data=training_data,
        description=description,
        extra={"acc_normalize": "none", "taper": taper, **(extra or {})},
    )


TRAINING_SPEC = student_spec("training", "0", "", "")


def training_spec(taper: str = "hann") -> ModelSpec:
    """The spec models are built with for training: the training windows do not depend on the taper."""
    return TRAINING_SPEC if taper == "hann" else student_spec("training", "0", "", "", taper=taper)
