"""Synthetic scenario sets that each isolate one failure class of a tracker (issue 12).

A scenario set is just a named list of recordings with reference labels, so any generator (for example
`replay.synthetic`'s activity scenarios) can be plugged into `ppg-distill accuracy` as another set.
The ones here start from a clean, still recording of the project's generator and add arm motion
whose accelerometer trace and PPG leak are placed where the failure needs them:

- `rest`: no motion at all (rest precision: the spectral floor against beat intervals);
- `motion at HR`: bouts of arm motion (20-40 s, pauses of 10-20 s) whose cadence follows the heart
  rate (±3 %), so the accelerometer has power at the HR (suppressing ACC frequencies would remove the
  pulse);
- `motion at 2x HR`: the same bouts with the cadence at twice the heart rate (a harmonic the model
  can prefer);
- `bursts`: short strong shakes (3-5 s) at an unrelated cadence every 20-40 s: single confident,
  wrong windows (jump capture);
- `moving start`: strong motion at an unrelated cadence from the first sample for 30 s (start-up).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from replay.recording import Recording, uniform_times
from replay.synthetic import Synthetic, synthesize

DURATION_S = 300.0


def add_arm_motion(syn: Synthetic, segments: list[tuple[float, float, Callable[[np.ndarray], np.ndarray]]], gain: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(ppg, acc_g) of `syn` with motion added: per segment (start s, end s, cadence Hz as a function of the
    HR in bpm). The accelerometer shakes at the cadence (and a weaker 2nd harmonic); the PPG receives a
    leak of that shake scaled to `gain` × the pulse's standard deviation."""
    ppg = syn.ppg.copy()
    acc = syn.acc_g.copy()
    t = np.arange(len(ppg)) / syn.fs_ppg
    ta = np.arange(len(acc)) / syn.fs_acc
    hr_acc = np.interp(ta, t, syn.hr_bpm)
    pulse_sd = float(np.std(syn.ppg))
    for start, end, cadence_of in segments:
        cadence = cadence_of(hr_acc)
        phase = 2 * np.pi * np.cumsum(cadence) / syn.fs_acc
        amp = rng.uniform(0.3, 1.0, 3)
        offset = rng.uniform(0, 2 * np.pi, 3)
        shake = np.stack([amp[i] * (np.sin(phase + offset[i]) + 0.35 * np.sin(2 * phase + 2 * offset[i])) for i in range(3)], axis=1)
        on = (ta >= start) & (ta < end)
        acc[on] += shake[on] + 0.05 * rng.normal(size=(int(on.sum()), 3))
        seg = (t >= start) & (t < end)
        leak = np.interp(t[seg], ta, shake @ rng.uniform(0.5, 1.0, 3))
        ppg[seg] += gain * pulse_sd * leak / max(float(np.std(leak)), 1e-9)
    return ppg, acc


def _recording(name: str, syn: Synthetic, ppg: np.ndarray, acc: np.ndarray) -> Recording:
    return Recording(name, ppg[:, None], uniform_times(len(ppg), syn.fs_ppg), syn.fs_ppg,
                     acc, uniform_times(len(acc), syn.fs_acc), syn.fs_acc, syn.labels_bpm)


def _still(seed: int) -> Synthetic:
    return synthesize(DURATION_S, seed=seed, motion_share=0.0, noise=0.02)


def rest(n: int, seed: int = 0) -> list[Recording]:
    out = []
    for i in range(n):
        syn = _still(seed * 1000 + i)
        out.append(_recording(f"rest{i}", syn, syn.ppg, syn.acc_g))
    return out


def _locked(name: str, ratio: float, n: int, seed: int, gain: float) -> list[Recording]:
    out = []
    for i in range(n):
        rng = np.random.default_rng(seed * 1000 + i + 1)
        syn = _still(seed * 1000 + i + 500)
        segments, t = [], rng.uniform(5, 15)
        while t < DURATION_S - 10:
            length = rng.uniform(20, 40)
            r = ratio * (1 + rng.uniform(-0.03, 0.03))
            segments.append((t, min(t + length, DURATION_S), lambda hr, r=r: hr / 60.0 * r))
            t += length + rng.uniform(10, 20)
        out.append(_recording(f"{name}{i}", syn, *add_arm_motion(syn, segments, gain, rng)))
    return out


def motion_at_hr(n: int, seed: int = 0) -> list[Recording]:
    return _locked("at-hr", 1.0, n, seed, gain=1.5)


def motion_at_double_hr(n: int, seed: int = 0) -> list[Recording]:
    return _locked("at-2hr", 2.0, n, seed, gain=1.5)


def bursts(n: int, seed: int = 0) -> list[Recording]:
    out = []
    for i in range(n):
        rng = np.random.default_rng(seed * 1000 + i + 2)
        syn = _still(seed * 1000 + i + 600)
        segments, t = [], rng.uniform(20, 40)
        while t < DURATION_S - 10:
            length = rng.uniform(3, 5)
            cadence = rng.uniform(1.2, 2.8)
            segments.append((t, t + length, lambda hr, c=cadence: np.full_like(hr, c)))
            t += length + rng.uniform(20, 40)
        out.append(_recording(f"bursts{i}", syn, *add_arm_motion(syn, segments, 4.0, rng)))
    return out


def moving_start(n: int, seed: int = 0) -> list[Recording]:
    out = []
    for i in range(n):
        rng = np.random.default_rng(seed * 1000 + i + 3)
        syn = _still(seed * 1000 + i + 700)
        cadence = rng.uniform(1.2, 2.8)
        segments = [(0.0, 30.0, lambda hr, c=cadence: np.full_like(hr, c))]
        out.append(_recording(f"start{i}", syn, *add_arm_motion(syn, segments, 3.0, rng)))
    return out


SCENARIO_SETS: dict[str, Callable[[int, int], list[Recording]]] = {
    "rest": rest,
    "motion at HR": motion_at_hr,
    "motion at 2x HR": motion_at_double_hr,
    "bursts": bursts,
    "moving start": moving_start,
}
