"""Synthetic wrist recordings with known heart rate, for tests, demos and pre-training.

The heart rate drifts and steps; each beat has a systolic peak and a dicrotic wave; respiration and
drift move the baseline; motion segments shake the accelerometer at a cadence and leak into the PPG
(the artefact every wrist algorithm must reject). Labels follow the window protocol exactly as
PPG-DaLiA's do: the mean instantaneous heart rate over [2k, 2k+8) s.

`python -m ppg_stream.replay.synthetic OUT.pkl --duration 180 --seed 7` writes a DaLiA-structured pickle.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .recording import HOP_S, WINDOW_S, window_count

DEMO_RECORDING = Path(__file__).resolve().parent / "demo_dalia.pkl"  # `ppg-stream --demo`: 3 min made by this generator
FS_PPG = 64.0
FS_ACC = 32.0
FS_RPEAKS = 700.0


@dataclass(frozen=True)
class Synthetic:
    ppg: np.ndarray  # (n,) at fs_ppg
    acc_g: np.ndarray  # (m, 3) at fs_acc, in g
    hr_bpm: np.ndarray  # (n,) instantaneous heart rate at fs_ppg
    labels_bpm: np.ndarray  # (n_windows,)
    rpeaks: np.ndarray  # beat times as sample indices at 700 Hz
    motion: np.ndarray  # (n,) bool, True where the wearer moves
    fs_ppg: float = FS_PPG
    fs_acc: float = FS_ACC


def heart_rate_trajectory(n: int, fs: float, rng: np.random.Generator, start_bpm: float | None = None) -> np.ndarray:
    """A slow random drift plus a few smoothed steps, kept within 45-185 bpm."""
    duration = n / fs
    hr0 = rng.uniform(65, 110) if start_bpm is None else start_bpm
    t = np.arange(n) / fs
    # drift: integrated noise, low-passed to ~0.02 Hz
    steps = rng.normal(0, 1, int(duration / 5) + 2).cumsum() * 1.5
    drift = np.interp(t, np.arange(len(steps)) * 5.0, steps)
    hr = hr0 + drift
    for _ in range(max(1, int(duration / 60))):
        at = rng.uniform(0.1, 0.9) * duration
        size = rng.choice([-1, 1]) * rng.uniform(8, 25)
        hr += size * 0.5 * (1 + np.tanh((t - at) / 4.0))  # a step over ~8 s
    return np.clip(hr, 45, 185)


def pulse_wave(phase: np.ndarray) -> np.ndarray:
    """One beat per unit of phase: systolic peak then a smaller, wider dicrotic wave."""
    p = phase % 1.0
    return np.exp(-((p - 0.18) ** 2) / (2 * 0.06**2)) + 0.45 * np.exp(-((p - 0.45) ** 2) / (2 * 0.09**2))


def motion_segments(duration: float, rng: np.random.Generator, share: float) -> list[tuple[float, float, float]]:
    """(start, end, cadence Hz) segments covering about `share` of the recording."""
    segments, t = [], rng.uniform(5, 25)
    while t < duration:
        length = rng.uniform(20, 60)
        if rng.random() < share:
            segments.append((t, min(t + length, duration), rng.uniform(1.2, 2.8)))
        t += length + rng.uniform(5, 20)
    return segments


def synthesize(
    duration_s: float = 180.0,
    seed: int = 0,
    motion_share: float = 0.5,
    artefact_gain: float = 2.0,
    noise: float = 0.05,
    start_bpm: float | None = None,
) -> Synthetic:
    """Generate one recording. `motion_share=0` gives a clean signal (the estimator must be right)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * FS_PPG))
    t = np.arange(n) / FS_PPG
    hr = heart_rate_trajectory(n, FS_PPG, rng, start_bpm)
    beat_hz = hr / 60.0 * (1 + 0.02 * np.sin(2 * np.pi * 0.25 * t))  # respiratory sinus arrhythmia
    phase = np.cumsum(beat_hz) / FS_PPG + rng.random()
    hr_inst = beat_hz * 60.0
    ppg = pulse_wave(phase)
    ppg += 0.15 * np.sin(2 * np.pi * 0.25 * t + rng.random() * 6) + 0.3 * np.sin(2 * np.pi * 0.03 * t)
    ppg += noise * rng.normal(size=n)

    m = int(round(duration_s * FS_ACC))
    ta = np.arange(m) / FS_ACC
    gravity = np.array([0.1, -0.2, 0.97])
    acc = np.tile(gravity, (m, 1)) + 0.01 * rng.normal(size=(m, 3))
    moving = np.zeros(n, dtype=bool)
    artefact = np.zeros(n)
    for start, end, cadence in motion_segments(duration_s, rng, motion_share) if motion_share > 0 else []:
        amp = rng.uniform(0.3, 1.0, 3)
        ph = rng.uniform(0, 2 * np.pi, 3)
        cad = cadence * (1 + 0.03 * np.sin(2 * np.pi * 0.05 * ta))
        cad_phase = 2 * np.pi * np.cumsum(cad) / FS_ACC
        shake = np.stack([amp[i] * (np.sin(cad_phase + ph[i]) + 0.35 * np.sin(2 * cad_phase + 2 * ph[i])) for i in range(3)], axis=1)
        in_seg = (ta >= start) & (ta < end)
        acc[in_seg] += shake[in_seg] + 0.05 * rng.normal(size=(in_seg.sum(), 3))
        seg = (t >= start) & (t < end)
        moving |= seg
        leak = np.interp(t[seg], ta, shake @ rng.uniform(0.5, 1.0, 3))
        artefact[seg] += artefact_gain * leak / max(np.std(leak), 1e-9) * 0.35
    spikes = rng.random(n) < (moving * 0.002)
    artefact += spikes * rng.normal(0, 1.5, n)
    ppg = 50.0 * (ppg + artefact)

    n_win = window_count(duration_s)
    w, h = int(WINDOW_S * FS_PPG), int(HOP_S * FS_PPG)
    labels = np.array([hr_inst[k * h : k * h + w].mean() for k in range(n_win)])
    beat_idx = np.flatnonzero(np.diff(np.floor(phase)) > 0) + 1
    rpeaks = np.round(beat_idx / FS_PPG * FS_RPEAKS).astype(np.int64)
    return Synthetic(ppg=ppg, acc_g=acc, hr_bpm=hr_inst, labels_bpm=labels, rpeaks=rpeaks, motion=moving)


def write_synthetic_dalia(path: str | Path, syn: Synthetic, subject: str = "SYN", with_chest: bool = True) -> None:
    from .dalia import write_dalia

    activity = syn.motion[:: int(FS_PPG / 4)].astype(float)  # DaLiA's activity track is 4 Hz
    write_dalia(path, subject, syn.ppg, syn.acc_g, syn.labels_bpm, rpeaks=syn.rpeaks, activity=activity, with_chest=with_chest)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ppg_stream.replay.synthetic", description="Write a synthetic DaLiA-structured recording with known heart rate.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds (default 180)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--motion-share", type=float, default=0.5, help="share of time with motion artefacts (0-1)")
    parser.add_argument("--subject", default="SYN")
    parser.add_argument("--no-chest", action="store_true", help="leave the 700 Hz chest arrays empty (small files)")
    args = parser.parse_args(argv)
    syn = synthesize(args.duration, args.seed, args.motion_share)
    write_synthetic_dalia(args.out, syn, args.subject, with_chest=not args.no_chest)
    print(f"wrote {args.out}: {args.duration:.0f} s, {len(syn.labels_bpm)} windows, HR {syn.labels_bpm.min():.0f}-{syn.labels_bpm.max():.0f} bpm")


if __name__ == "__main__":
    main()
