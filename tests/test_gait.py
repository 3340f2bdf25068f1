"""The accelerometer's strongest line (stream/core/gait.py): a walker's steps or a runner's, whatever the scale."""

from __future__ import annotations

import numpy as np

from ppg_stream.models.targets import TRAINING_SPEC
from ppg_stream.stream.core.gait import strongest_acc_line

FS = TRAINING_SPEC.fs
T = int(TRAINING_SPEC.window_s * FS)


def gait_windows(n: int, step_per_min: float, g: float, seed: int = 0) -> np.ndarray:
    """Windows (n, 4, T): a wrist's step impacts at `step_per_min` (with their harmonic) and its arm swing at
    half of it, the swing the larger on one axis and the steps on the others, `g` the RMS scale."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / FS
    x = np.zeros((n, 4, T), dtype=np.float32)
    for i in range(n):
        phase = rng.uniform(0, 2 * np.pi)
        step = np.sin(2 * np.pi * step_per_min / 60 * t + phase) + 0.4 * np.sin(4 * np.pi * step_per_min / 60 * t + 2 * phase)
        swing = np.sin(np.pi * step_per_min / 60 * t + phase)
        x[i, 0] = rng.normal(size=T)
        x[i, 1] = g * (0.6 * swing + 0.2 * step)
        x[i, 2] = g * step
        x[i, 3] = g * (0.8 * step + 0.05 * rng.normal(size=T))
    return x


def test_the_strongest_line_is_the_step_rate_at_any_scale():
    for step, scale in ((86.0, 0.15), (86.0, 0.015), (165.0, 1.2), (165.0, 0.2), (120.0, 0.3)):
        x = gait_windows(6, step, scale)
        line = strongest_acc_line(x, FS, np.ones(6, dtype=bool))
        assert np.all(np.abs(line - step) <= 6.0), (step, scale, line)  # the FFT's lines are 5.9 a minute apart


def test_only_the_masked_windows_are_read():
    x = gait_windows(6, 165.0, 0.2)
    mask = np.array([True, False, True, False, False, True])
    line = strongest_acc_line(x, FS, mask)
    assert np.all(line[~mask] == 0.0) and np.all(np.abs(line[mask] - 165.0) <= 6.0)
    assert not strongest_acc_line(x, FS, np.zeros(6, dtype=bool)).any()


def test_no_accelerometer_or_a_flat_one_gives_no_line():
    x = gait_windows(4, 165.0, 0.2)
    assert not strongest_acc_line(x[:, :1], FS, np.ones(4, dtype=bool)).any()
    x[:, 1:] = 0.0
    assert not strongest_acc_line(x, FS, np.ones(4, dtype=bool)).any()


def test_the_runtime_lifts_the_walk_ceiling_for_a_runner_with_a_quiet_sensor():
    # estimate_windows end to end: an upper-arm sensor (0.25 g) on a runner at 168 steps a minute, the model torn
    # between 168 and half of it; the gait read from the windows themselves lifts the walk-start ceiling
    from ppg_stream.stream.core.estimate import estimate_windows
    from ppg_stream.stream.core.student_spec import BINS_BPM
    from ppg_stream.stream.core.tracker import Tracker, TrackerParams

    n = 40
    probs = np.full((n, len(BINS_BPM)), 1e-6)
    probs[:, np.argmin(np.abs(BINS_BPM - 168.0))] += 0.3
    probs[:, np.argmin(np.abs(BINS_BPM - 84.0))] += 0.2
    probs /= probs.sum(axis=1, keepdims=True)
    x = gait_windows(n, 168.0, 0.25)
    published = {}
    for name, params in (("gait read", TrackerParams()), ("force only", TrackerParams(running_per_min=1e9))):
        tracker = Tracker(BINS_BPM, params)
        published[name] = estimate_windows(x, probs.copy(), BINS_BPM, FS, tracker.table, np.full(n, tracker.row), np.arange(n)).bpm
    assert np.all(np.abs(published["gait read"][10:] - 168.0) < 3.0)
    assert np.all(np.abs(published["force only"] - 84.0) < 3.0)  # what the ceiling did to such a runner without it
