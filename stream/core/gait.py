"""The moving wrist's strongest accelerometer line: is it a walker's step or a runner's (issue 22)?

The tracker's walk-start ceiling (stream/core/tracker.py) leans on a stream that has only moved gently.
The accelerometer's RMS tells gentle from vigorous motion only on a wrist in g's reach of running (1-1.5 g
band-passed); a sensor on the upper arm, or one a little off in scale, runs at walking's 0.1-0.3 g, and a
ceiling on a runner's 170 bpm drives the track onto half of it. The *rate* of the strongest line does not
depend on scale or placement: a walk's steps fall at 70-130 a minute (the wrist recordings: 86-88), a run's
at 140-190 (IEEE SPC 2015's runners: 150-168). So the line is measured where the tracker still has a
ceiling to lift, never after: one Hann-windowed FFT of the three axes, every other sample (the
accelerometer is band-passed to 4 Hz), its strongest line between 60 and 200 a minute.
"""

from __future__ import annotations

import numpy as np

from .cues import ACC_STEP, hann_window

LINE_FROM_PER_MIN = 60.0
LINE_TO_PER_MIN = 200.0
FFT_LENGTH = 128  # the every-other-sample window (100 at 25 Hz) zero-padded: lines 5.9 a minute apart (an 8 s window resolves 7.5)


def strongest_acc_line(x: np.ndarray, fs: float, mask: np.ndarray) -> np.ndarray:
    """Per window of the batch (N, C, T), PPG then accelerometer x, y, z: the rate (per minute) of its
    accelerometer's strongest line between 60 and 200 a minute (power summed over the axes, Hann-windowed),
    where `mask` holds (0 elsewhere, and where the window has no accelerometer or it is flat). One batched FFT
    of the masked windows: a few microseconds a window."""
    out = np.zeros(x.shape[0])
    if x.shape[1] < 4 or not np.any(mask):
        return out
    acc = np.asarray(x[np.asarray(mask, dtype=bool), 1:4, ::ACC_STEP], dtype=np.float64)
    acc = acc * hann_window(x.shape[2])[::ACC_STEP]
    power = np.abs(np.fft.rfft(acc, n=max(FFT_LENGTH, acc.shape[2]), axis=2)) ** 2
    power = power.sum(axis=1)
    per_min = np.fft.rfftfreq(power.shape[1] * 2 - 2, d=ACC_STEP / fs) * 60.0
    band = (per_min >= LINE_FROM_PER_MIN) & (per_min <= LINE_TO_PER_MIN)
    strongest = per_min[band][np.argmax(power[:, band], axis=1)]
    out[np.asarray(mask, dtype=bool)] = np.where(power[:, band].max(axis=1) > 0.0, strongest, 0.0)
    return out
