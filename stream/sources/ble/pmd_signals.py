"""Decoded PMD frames → the signals the model eats: one PPG value per sample, ACC x, y, z in g.

The SDK hands applications every channel; ppg-stream needs one PPG trace. Per frame type:
- type 0 (Verity Sense, OH1): the mean of the three PPG channels minus the ambient-light channel
  (light that reaches the photodiodes whatever the pulse does);
- types 7 and 8 (16 / 24 PPG channels) and 13 (2 channels): the mean of the PPG channels;
- type 10: the mean of the 8 green channels (green carries the wrist pulse best).
Status words and side-information frames (gains, operation mode, sport id) carry no PPG samples.
"""

from __future__ import annotations

import numpy as np

from .pmd_control import Measurement
from .pmd_frames import MG_PER_G, PPG_CHANNEL_ROLES, PmdFrame


def carries_signal(frame: PmdFrame) -> bool:
    return frame.layout.signal and len(frame.samples) > 0


def ppg_signal(frame: PmdFrame) -> np.ndarray:
    """(n, 1) float64 PPG trace of a PPG frame (in the SDK's units, FACTOR already applied)."""
    roles = PPG_CHANNEL_ROLES[frame.frame_type]
    x = frame.samples.astype(np.float64)
    if "ambient" in roles:
        trace = x[:, roles["ppg"]].mean(axis=1) - x[:, roles["ambient"]][:, 0]
    elif "green" in roles:
        trace = x[:, roles["green"]].mean(axis=1)
    else:
        trace = x[:, roles["ppg"]].mean(axis=1)
    return trace.reshape(-1, 1)


def acc_signal_g(frame: PmdFrame) -> np.ndarray:
    """(n, 3) float64 acceleration in g, from the SDK's mG."""
    return frame.samples.astype(np.float64) / MG_PER_G


def signal_of(frame: PmdFrame) -> np.ndarray:
    return ppg_signal(frame) if frame.measurement == Measurement.PPG else acc_signal_g(frame)
