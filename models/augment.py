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


# ---- device augmentation (issue 22): whole recordings made to look like another sensor ----------------------
# Applied to raw recordings before the stream's own preprocessing cuts them into windows (train/serve parity:
# models/dataset.py), so every change a sensor brings passes through the very filters serving runs.

DEVICE_RATES_HZ = (25.0, 32.0, 50.0, 64.0, 100.0, 128.0, 256.0)
GRIP_SHARE = 0.6  # share of device variants with grip-type motion whose cadence is not the HR (a bike, a stroller)
WALK_SHARE = 0.0  # share of device variants with a walking arm swing (0 by default: ppg-student@1.4's recipe is reproduced)
WALK_STEP_PER_MIN = (70.0, 135.0)  # step cadences of a walk, slow to brisk (the wrist recordings walk at ~85 steps/min)
WALK_PPG_GAIN = (0.5, 2.5)  # the swing's PPG artefact against the pulse (unit RMS each): the wrist walks' strongest line
# carries 2-6 times the pulse line's power (median per window); a gain of 1-5.5, as the grip's, made 7-23 times
WALK_HR_BPM = (70.0, 120.0)  # heart rates of a walk: with `walk_slow` a running recording is slowed into this range


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _resample(t: np.ndarray, x: np.ndarray, fs: float, new_fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Offline resampling of a whole recording with an anti-alias low-pass (zero phase: training data only)."""
    from scipy.signal import butter, sosfiltfilt

    if new_fs < fs:
        sos = butter(4, 0.45 * new_fs, btype="low", fs=fs, output="sos")
        x = sosfiltfilt(sos, x, axis=0)
    new_t = np.arange(0.0, t[-1], 1.0 / new_fs)
    return new_t, np.column_stack([np.interp(new_t, t, x[:, i]) for i in range(x.shape[1])])


def _cadence_wave(t: np.ndarray, cadence_hz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A periodic motion at a slowly drifting cadence with a few harmonics, unit RMS."""
    phase = 2 * np.pi * np.cumsum(cadence_hz) * np.median(np.diff(t)) + rng.uniform(0, 2 * np.pi)
    wave = np.sin(phase) + rng.uniform(0, 0.6) * np.sin(2 * phase + rng.uniform(0, 6.3)) + rng.uniform(0, 0.3) * np.sin(3 * phase + rng.uniform(0, 6.3))
    return wave / (wave.std() + 1e-12)


def grip_cadence_hz(hr_bpm: float, rng: np.random.Generator) -> float:
    """A cadence (35-100 per minute) that is no simple ratio of the heart rate: no line of its motion (×½, 1,
    3/2, 2, 3) falls within 10 bpm of the HR, so its dominant peak is exactly what the model must not report."""
    for _ in range(100):
        c = rng.uniform(35.0, 100.0)
        if all(abs(r * c - hr_bpm) > 10.0 for r in (0.5, 1.0, 1.5, 2.0, 3.0)):
            return c / 60.0
    return 37.0 / 60.0


def walk_step_hz(hr_bpm: float, rng: np.random.Generator) -> float:
    """A walking step cadence near the heart rate (0.8-1.2 × HR, within WALK_STEP_PER_MIN): on a wrist the
    step line and its octave sit where the pulse is, the case a running-trained student gets wrong."""
    return float(np.clip(hr_bpm * rng.uniform(0.8, 1.2), *WALK_STEP_PER_MIN)) / 60.0


def walk_swing(t: np.ndarray, hr_bpm: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """A walking arm's swing at a slowly drifting cadence: the PPG artefact (unit RMS) with lines at the stride
    (the swing, half the step cadence) and its harmonics 2-4 (the step and its octave, which the wrist
    recordings' PPG shows as strong as the swing), one of them dominant; the accelerometer's (3 axes, in g) with
    the swing along one direction and the step's impact along another. Returns (ppg, acc, step cadence in Hz)."""
    step = walk_step_hz(hr_bpm, rng)
    cadence = step / 2 * (1 + 0.03 * np.sin(2 * np.pi * t / rng.uniform(60, 200) + rng.uniform(0, 6.3)))
    phase = 2 * np.pi * np.cumsum(cadence) * np.median(np.diff(t)) + rng.uniform(0, 2 * np.pi)
    weights = rng.uniform(0.1, 0.7, 4)
    weights[rng.integers(4)] = 1.0
    ppg = sum(w * np.sin((h + 1) * phase + rng.uniform(0, 6.3)) for h, w in enumerate(weights))
    swing, impact = np.sin(phase), rng.uniform(0.5, 1.5) * np.sin(2 * phase + rng.uniform(0, 6.3))
    directions = _rotation(rng)[:2]
    acc = np.outer(swing, directions[0]) + np.outer(impact, directions[1])
    acc *= rng.uniform(0.05, 0.25) / (acc.std(axis=0).max() + 1e-12)  # the wrist recordings' walks: 0.07-0.21 g per axis
    return ppg / (ppg.std() + 1e-12), acc, step


def slowed(t: np.ndarray, ta: np.ndarray, labels: np.ndarray, r: float, rng: np.random.Generator):
    """A recording played r times as fast (r < 1: slower), cut back to its own duration at a random whole hop:
    every rhythm (pulse, cadence, respiration) times r, so its labels are too (window k' takes the label of the
    original window nearest its centre). Returns (t, ta, labels) on the new clock and the masks of the PPG and
    accelerometer samples kept (the samples themselves are unchanged)."""
    duration = t[-1]
    t, ta = t / r, ta / r
    n_new = len(labels) - 1  # windows that fit the original duration, minus one for the offset's rounding
    offset = 2.0 * rng.integers(0, max(1, int((t[-1] - duration) / 2.0)))
    keep, keep_a = (t >= offset) & (t < offset + duration), (ta >= offset) & (ta < offset + duration)
    centres = (offset + 2.0 * np.arange(n_new) + 4.0) * r  # the new windows' centres on the original clock
    nearest = np.clip(np.round((centres - 4.0) / 2.0).astype(int), 0, len(labels) - 1)
    return t[keep] - offset, ta[keep_a] - offset, labels[nearest] * r, keep, keep_a


def device_variant(recording, rng: np.random.Generator, grip_share: float = GRIP_SHARE, walk_share: float = WALK_SHARE,
                   walk_slow: bool = False, acc_scale: tuple[float, float] | None = None):
    """`recording` as another wrist device might have recorded it (labels unchanged): another sampling rate
    with its anti-alias filter, another pulse shape and maybe inverted polarity, amplitude, baseline wander and
    respiration, sensor noise, the accelerometer scaled and turned, and in GRIP_SHARE of the variants a
    grip-type motion (a bike's pedalling, a pushed stroller) at a cadence that is no simple ratio of the heart
    rate, strong in the PPG (up to 30 times the pulse's power) and present in the accelerometer. `grip_share`
    (default GRIP_SHARE) is that share. In `walk_share` of the variants (default WALK_SHARE, drawn first; the
    grip share applies to the others) a walking arm swing instead (`walk_swing`): its step line near the HR,
    as strong in the PPG, and in the accelerometer over what is left of the recording's own motion (5-30 %).
    With `walk_slow` a walking variant is first slowed (`slowed`) so that its median HR lies in WALK_HR_BPM
    (a runner's arm swing and steps slow down into a walker's with it), its labels scaled to match.
    `extra["motion"]` says which ("walk", "grip" or "none") and `extra["step_hz"]` a walk's step cadence.
    `acc_scale` (lo, hi): the accelerometer's scale drawn uniformly there (a sensor in g, as the runtime's
    motion rules assume) instead of the training's 0.1-2× (the model must not lean on the scale at all)."""
    from dataclasses import replace

    if recording.acc is None or recording.labels_bpm is None:
        raise ValueError(f"{recording.subject}: device variants need an accelerometer and labels")
    rate = float(rng.choice(DEVICE_RATES_HZ))
    t, ppg = _resample(recording.t_ppg, recording.ppg.mean(axis=1, keepdims=True), recording.fs_ppg, rate)
    ppg = ppg[:, 0]
    ppg = (ppg - ppg.mean()) / (ppg.std() + 1e-12)
    # pulse shape: a share of its derivative (a sharper upstroke or a phase shift) and a skew; polarity
    slope = np.gradient(ppg) * rate / (2 * np.pi * 1.5)
    ppg = ppg + rng.uniform(-0.6, 0.6) * slope + rng.uniform(-0.3, 0.3) * (ppg**2 - 1)
    ppg = ppg * (-1 if rng.random() < 0.3 else 1)
    ppg = (ppg - ppg.mean()) / (ppg.std() + 1e-12)
    # baseline wander and respiration, then noise
    ppg += rng.uniform(0, 1.5) * np.sin(2 * np.pi * rng.uniform(0.03, 0.12) * t + rng.uniform(0, 6.3))
    ppg += rng.uniform(0, 1.0) * np.sin(2 * np.pi * rng.uniform(0.15, 0.5) * t + rng.uniform(0, 6.3))
    ppg += rng.uniform(0, 0.3) * rng.standard_normal(len(t))
    ta, acc = _resample(recording.t_acc, recording.acc, recording.fs_acc, rate)
    turn = _rotation(rng)
    scale = 10 ** rng.uniform(-1.0, 0.3) if acc_scale is None else rng.uniform(*acc_scale)  # raw sensors differ by far more than 2x
    acc = acc @ turn.T * scale
    labels = recording.labels_bpm
    hr = float(np.nanmedian(labels)) if np.isfinite(labels).any() else 80.0
    extra: dict = {"motion": "none"}
    if walk_share > 0 and rng.random() < walk_share:  # no draw at 0: the recipes before walking variants reproduce
        if walk_slow:
            r = min(1.0, rng.uniform(*WALK_HR_BPM) / hr)
            t, ta, labels, keep, keep_a = slowed(t, ta, labels, r, rng)
            ppg, acc, rate = ppg[keep], acc[keep_a], rate * r
            hr = float(np.nanmedian(labels)) if np.isfinite(labels).any() else 80.0
        wave, swing, step = walk_swing(t, hr, rng)
        ppg += rng.uniform(*WALK_PPG_GAIN) * wave
        # a walking wrist: the swing dominates the accelerometer, the recording's own (running) motion a residue
        acc = acc * rng.uniform(0.05, 0.3) + scale * np.column_stack([np.interp(ta, t, swing[:, i]) for i in range(3)])
        extra = {"motion": "walk", "step_hz": step}
    elif rng.random() < grip_share:
        cadence = grip_cadence_hz(hr, rng) * (1 + 0.04 * np.sin(2 * np.pi * t / rng.uniform(60, 200)))
        wave = _cadence_wave(t, cadence, rng)
        ppg += rng.uniform(1.0, 5.5) * wave
        direction = rng.standard_normal(3)
        acc += np.outer(np.interp(ta, t, wave) * rng.uniform(0.02, 0.1) * np.sqrt(2), direction / np.linalg.norm(direction))
        extra = {"motion": "grip"}
    ppg *= 10 ** rng.uniform(-1, 1)
    return replace(recording, ppg=ppg[:, None], t_ppg=t, fs_ppg=rate, acc=acc, t_acc=ta, fs_acc=rate, labels_bpm=labels, extra=extra)
