"""Synthetic activities whose motion lands at and around the heart rate, with known ground truth.

`synthesize` (replay/synthetic.py) shakes the wrist at a running cadence that rarely meets the HR.
The recordings people actually make are harder, and these scenarios reproduce what fails there:

- `arm_exercise`: curls/raises/circles whose cadence sits at, at half of, or near the HR (some sets
  move in step with it), with harmonics, while the HR climbs through the set;
- `boxing`: combos of sharp punches (broadband, harmonic-rich) and bouncing footwork, HR rising fast;
- `walking`, `stairs`: steps and arm swing (swing at half the step cadence), HR rising with effort;
- `aperiodic`: gestures and fidgeting: band-limited random motion with no cadence at all;
- `rest_irregular`: a still hand, clean PPG, irregular beats (RR jitter, premature beats with a
  compensatory pause and a weaker pulse).

Beats are placed one by one (so RR intervals can be irregular); the PPG artefact is the wrist motion
leaking in linearly and squared (the square adds the motion's harmonics). Labels follow the window
protocol as `synthesize`'s do: the mean instantaneous heart rate (60 / RR) over [2k, 2k+8) s.

`python -m ppg_stream.replay.activity OUT.pkl --kind boxing --seed 3` writes a DaLiA-structured pickle.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .recording import HOP_S, WINDOW_S, window_count
from .synthetic import FS_ACC, FS_PPG, FS_RPEAKS, Synthetic, pulse_wave, write_synthetic_dalia

ACTIVITIES = ("arm_exercise", "boxing", "walking", "stairs", "aperiodic", "rest_irregular")
GRAVITY = np.array([0.1, -0.2, 0.97])


@dataclass(frozen=True)
class Activity:
    syn: Synthetic
    kind: str
    cadence_hz: np.ndarray  # (m,) at fs_acc: the periodic motion's fundamental, 0 where there is none


@dataclass(frozen=True)
class _Profile:
    rest_bpm: tuple[float, float]  # HR at rest before the first bout
    rise_bpm: tuple[float, float]  # how far a bout pushes the HR up
    artefact: tuple[float, float]  # artefact gain range (as `synthesize`'s artefact_gain)
    noise: tuple[float, float]


PROFILES = {
    "arm_exercise": _Profile((60, 95), (15, 45), (0.5, 2.5), (0.02, 0.15)),
    "boxing": _Profile((65, 100), (35, 75), (1.0, 3.5), (0.03, 0.2)),
    "walking": _Profile((60, 90), (10, 25), (0.3, 1.5), (0.02, 0.15)),
    "stairs": _Profile((60, 90), (25, 50), (0.3, 1.5), (0.02, 0.15)),
    "aperiodic": _Profile((55, 95), (0, 12), (0.5, 2.5), (0.02, 0.15)),
    "rest_irregular": _Profile((48, 90), (0, 0), (0.0, 0.0), (0.005, 0.03)),
}


def bouts(duration: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Alternating rest (10-35 s) and activity (30-80 s), starting at rest: (start, end) of each bout."""
    out, t = [], rng.uniform(10, 25)
    while t < duration - 10:
        length = rng.uniform(30, 80)
        out.append((t, min(t + length, duration)))
        t += length + rng.uniform(10, 35)
    return out


def exercise_response(t: np.ndarray, segments: list[tuple[float, float]], rises: list[float], rng: np.random.Generator) -> np.ndarray:
    """HR above rest: first-order rise towards each bout's level (τ 15-35 s), recovery after (τ 25-50 s)."""
    step = 0.25  # s: the response is slow, compute it at 4 Hz and interpolate
    grid = np.arange(0, t[-1] + step, step)
    target = np.zeros_like(grid)
    tau = np.full_like(grid, rng.uniform(25, 50))
    for (start, end), rise in zip(segments, rises):
        inside = (grid >= start) & (grid < end)
        target[inside] = rise
        tau[inside] = rng.uniform(15, 35)
    x = np.zeros_like(grid)
    for i in range(1, len(grid)):
        x[i] = x[i - 1] + (target[i - 1] - x[i - 1]) * step / tau[i - 1]
    return np.interp(t, grid, x)


def beat_times(t: np.ndarray, hr: np.ndarray, rng: np.random.Generator, jitter: float, premature: float) -> tuple[np.ndarray, np.ndarray]:
    """Beat onsets (s) and each beat's pulse amplitude: RR = 60 / HR with jitter; a premature beat comes
    early (0.6-0.75 RR) with a weaker pulse and is followed by a compensatory pause."""
    times, amps = [-rng.uniform(0, 1.0)], [1.0]
    pause = 0.0
    while times[-1] < t[-1] + 2.0:
        rr = 60.0 / np.interp(max(times[-1], 0.0), t, hr) * (1 + jitter * rng.standard_normal())
        amp = 1.0
        if pause:
            rr, pause = rr * pause, 0.0
        elif rng.random() < premature:
            early = rng.uniform(0.6, 0.75)
            rr, amp, pause = rr * early, rng.uniform(0.3, 0.6), 2.0 - early
        times.append(times[-1] + max(rr, 0.25))
        amps.append(amp)
    return np.array(times), np.array(amps)


def _periodic(phase: np.ndarray, amps: np.ndarray, harmonics: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """(m, 3): a fundamental plus 2nd and 3rd harmonics per axis, random phases."""
    h2, h3 = harmonics
    out = np.empty((len(phase), 3))
    for i in range(3):
        p = rng.uniform(0, 2 * np.pi, 3)
        out[:, i] = amps[i] * (np.sin(phase + p[0]) + h2 * np.sin(2 * phase + p[1]) + h3 * np.sin(3 * phase + p[2]))
    return out


def _cadence_phase(cadence_hz: np.ndarray, ta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    wobble = 1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.02, 0.08) * ta + rng.uniform(0, 6.3))
    return 2 * np.pi * np.cumsum(cadence_hz * wobble) / FS_ACC


def _bandlimited(m: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """(m, 3) random motion with power only in lo-hi Hz, unit std per axis."""
    spec = np.fft.rfft(rng.standard_normal((m, 3)), axis=0)
    f = np.fft.rfftfreq(m, 1 / FS_ACC)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n=m, axis=0)
    return x / (x.std(axis=0) + 1e-12)


def bout_motion(kind: str, ta: np.ndarray, hr_acc: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One bout's wrist acceleration (m, 3) over its samples `ta` and its cadence (Hz, 0 if aperiodic)."""
    m = len(ta)
    if kind == "arm_exercise":
        # the cadence relative to the HR at the bout's middle: in step with it, half of it, or near it
        mode = rng.choice(["locked", "at", "half", "near"], p=[0.25, 0.3, 0.2, 0.25])
        hr_mid = hr_acc[m // 2] / 60.0
        if mode == "locked":  # moving in step with the pulse throughout (the hardest case)
            cadence = hr_acc / 60.0 * rng.uniform(0.97, 1.03)
        else:
            ratio = {"at": 1.0, "half": 0.5, "near": rng.choice([-1, 1]) * rng.uniform(0.06, 0.25) + 1.0}[str(mode)]
            cadence = np.full(m, hr_mid * ratio)
        cadence = np.clip(cadence, 0.4, 3.2)
        motion = _periodic(_cadence_phase(cadence, ta, rng), rng.uniform(0.2, 0.9, 3), (rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.3)), rng)
        return motion, cadence
    if kind in ("walking", "stairs"):
        step_hz = rng.uniform(1.5, 2.0) if kind == "walking" else rng.uniform(1.1, 1.6)
        cadence = np.full(m, step_hz / 2)  # the wrist swings once per two steps
        phase = _cadence_phase(cadence, ta, rng)
        swing = _periodic(phase, rng.uniform(0.1, 0.5, 3), (rng.uniform(0.3, 0.8), rng.uniform(0.1, 0.4)), rng)
        return swing, cadence
    if kind == "boxing":
        motion = np.zeros((m, 3))
        t, end = ta[0] + rng.uniform(0, 0.5), ta[-1]
        while t < end:
            for _ in range(rng.integers(1, 5)):  # a combo of 1-4 punches
                width = rng.uniform(0.04, 0.09)
                direction = rng.normal(0, 1, 3)
                direction /= np.linalg.norm(direction)
                d = (ta - t) / width
                motion += rng.uniform(1.0, 3.0) * (-d * np.exp(-0.5 * d**2))[:, None] * direction  # biphasic jab
                t += rng.uniform(0.25, 0.5)
            t += rng.uniform(0.3, 1.5)
        bounce_hz = rng.uniform(1.4, 2.6)
        cadence = np.full(m, bounce_hz)
        motion += _periodic(_cadence_phase(cadence, ta, rng), rng.uniform(0.05, 0.25, 3), (0.3, 0.1), rng)
        return motion, cadence
    if kind == "aperiodic":
        envelope = 0.3 + np.abs(_bandlimited(m, 0.02, 0.3, rng)[:, :1])
        return rng.uniform(0.1, 0.6, 3) * _bandlimited(m, 0.3, 4.0, rng) * envelope, np.zeros(m)
    raise ValueError(f"unknown activity {kind!r}; choose from {', '.join(ACTIVITIES)}")


def ppg_leak(t: np.ndarray, ta: np.ndarray, motion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The PPG artefact of wrist `motion` (m, 3) at times `ta`, sampled at the PPG times `t`, unit std:
    a random projection of the motion, linear plus squared (the square adds harmonics, intermodulation)."""
    lin = np.interp(t, ta, motion @ rng.uniform(0.3, 1.0, 3))
    lin /= max(np.std(lin), 1e-9)
    leak = lin + rng.uniform(0.1, 0.5) * (lin**2 - np.mean(lin**2))
    return leak / max(np.std(leak), 1e-9)


def fade(ta: np.ndarray, start: float, end: float, fade_s: float) -> np.ndarray:
    """(m, 1) envelope rising from 0 to 1 over `fade_s` after `start` and falling back before `end`."""
    return np.clip(np.minimum(ta - start, end - ta) / fade_s, 0, 1)[:, None]


Cadence = Callable[[np.ndarray], np.ndarray]  # the HR (bpm) over a bout's samples → the motion's cadence (Hz)


def add_wrist_motion(syn: Synthetic, segments: list[tuple[float, float, Cadence]], gain: float, rng: np.random.Generator,
                     fade_s: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(ppg, acc_g) of a still recording `syn` with periodic arm motion added in each segment (start s,
    end s, cadence as a function of the HR): the accelerometer swings at the cadence with harmonics (as
    `arm_exercise`'s bouts), the PPG receives its leak (`ppg_leak`) scaled to `gain` × the pulse's std.
    Used to build recordings that isolate one failure (motion exactly at the HR, at 2× it, short bursts)."""
    ppg, acc = syn.ppg.copy(), syn.acc_g.copy()
    t = np.arange(len(ppg)) / syn.fs_ppg
    ta = np.arange(len(acc)) / syn.fs_acc
    hr_acc = np.interp(ta, t, syn.hr_bpm)
    pulse_sd = float(np.std(syn.ppg))
    for start, end, cadence_of in segments:
        sel = (ta >= start) & (ta < end)
        cadence = np.clip(cadence_of(hr_acc[sel]), 0.4, 6.0)
        harmonics = (rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.3))
        motion = _periodic(_cadence_phase(cadence, ta[sel], rng), rng.uniform(0.3, 1.0, 3), harmonics, rng) * fade(ta[sel], start, end, fade_s)
        acc[sel] += motion + 0.05 * rng.normal(size=(int(sel.sum()), 3))
        seg = (t >= start) & (t < end)
        ppg[seg] += gain * pulse_sd * ppg_leak(t[seg], ta[sel], motion, rng)
    return ppg, acc


def synthesize_activity(kind: str, duration_s: float = 240.0, seed: int = 0) -> Activity:
    """Generate one recording of `kind` (see ACTIVITIES) with its ground truth."""
    if kind not in ACTIVITIES:
        raise ValueError(f"unknown activity {kind!r}; choose from {', '.join(ACTIVITIES)}")
    rng = np.random.default_rng(seed)
    prof = PROFILES[kind]
    n, m = int(round(duration_s * FS_PPG)), int(round(duration_s * FS_ACC))
    t, ta = np.arange(n) / FS_PPG, np.arange(m) / FS_ACC
    segments = [] if kind == "rest_irregular" else bouts(duration_s, rng)
    rest = rng.uniform(*prof.rest_bpm)
    drift = np.interp(t, np.arange(int(duration_s / 5) + 2) * 5.0, rng.normal(0, 1, int(duration_s / 5) + 2).cumsum())
    hr = rest + drift + exercise_response(t, segments, [rng.uniform(*prof.rise_bpm) for _ in segments], rng)
    hr = np.clip(hr * (1 + 0.02 * np.sin(2 * np.pi * 0.25 * t)), 40, 195)  # respiratory sinus arrhythmia

    irregular = kind == "rest_irregular"
    beats, amps = beat_times(t, hr, rng, jitter=rng.uniform(0.04, 0.1) if irregular else 0.015, premature=rng.uniform(0.03, 0.12) if irregular else 0.0)
    idx = np.clip(np.searchsorted(beats, t, side="right") - 1, 0, len(beats) - 2)
    rr = beats[idx + 1] - beats[idx]
    hr_inst = 60.0 / rr
    ppg = amps[idx] * pulse_wave((t - beats[idx]) / rr)
    ppg += 0.15 * np.sin(2 * np.pi * 0.25 * t + rng.random() * 6) + 0.3 * np.sin(2 * np.pi * 0.03 * t)
    ppg += rng.uniform(*prof.noise) * rng.normal(size=n)

    acc = np.tile(GRAVITY, (m, 1)) + 0.005 * rng.normal(size=(m, 3))
    cadence = np.zeros(m)
    artefact = np.zeros(n)
    moving = np.zeros(n, dtype=bool)
    gain = rng.uniform(*prof.artefact)
    hr_acc = np.interp(ta, t, hr)
    for start, end in segments:
        sel = (ta >= start) & (ta < end)
        motion, cad = bout_motion(kind, ta[sel], hr_acc[sel], rng)
        ramp = fade(ta[sel], start, end, 2.0)
        acc[sel] += motion * ramp + 0.03 * rng.normal(size=(sel.sum(), 3))
        cadence[sel] = cad
        seg = (t >= start) & (t < end)
        moving |= seg
        artefact[seg] += gain * 0.35 * ppg_leak(t[seg], ta[sel], motion * ramp, rng)
    artefact += (rng.random(n) < moving * 0.002) * rng.normal(0, 1.5, n)
    ppg = 50.0 * (ppg + artefact)

    w, h = int(WINDOW_S * FS_PPG), int(HOP_S * FS_PPG)
    labels = np.array([hr_inst[k * h : k * h + w].mean() for k in range(window_count(duration_s))])
    in_range = beats[(beats >= 0) & (beats < duration_s)]
    rpeaks = np.round(in_range * FS_RPEAKS).astype(np.int64)
    return Activity(Synthetic(ppg=ppg, acc_g=acc, hr_bpm=hr_inst, labels_bpm=labels, rpeaks=rpeaks, motion=moving), kind, cadence)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ppg_stream.replay.activity", description="Write a synthetic activity recording (DaLiA-structured) with known heart rate.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--kind", choices=ACTIVITIES, required=True)
    parser.add_argument("--duration", type=float, default=240.0, help="seconds (default 240)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subject", default="SYN")
    args = parser.parse_args(argv)
    if not 20 <= args.duration <= 36_000:
        parser.error("--duration must be 20-36000 s")
    act = synthesize_activity(args.kind, args.duration, args.seed)
    write_synthetic_dalia(args.out, act.syn, args.subject, with_chest=False)
    labels = act.syn.labels_bpm
    print(f"wrote {args.out}: {args.kind}, {args.duration:.0f} s, {len(labels)} windows, HR {labels.min():.0f}-{labels.max():.0f} bpm")


if __name__ == "__main__":
    main()
