"""The preprocessing and heart-rate bins every model of this project is trained and served with (the
shipped student and the spectral estimator alike), as a `ModelSpec` of the contract."""

from __future__ import annotations

import numpy as np

from .model_spec import ModelSpec

BINS_BPM = np.arange(30.0, 211.0, 1.0)  # 181 classes covering 30-210 bpm (the paper uses 180)


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
