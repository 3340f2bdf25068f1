"""`ppg-distill accuracy`: tracker variants before and after, per failure class, on held-out data.

Evidence sets:
- **IEEE LOSO**: the shipped student's recipe trained once per leave-one-subject-out fold of the 12 IEEE
  SPC 2015 recordings (models/oof.py caches each fold's held-out probabilities and windows);
- **synthetic scenario sets** (models/scenarios.py, or any named list of recordings): windows from the
  stream's preprocessing, probabilities from a model that never saw them (the shipped student by default).

Variants run the real kernels: `ppg_stream.stream.core.tracker.Tracker` per recording in window order, then
`ppg_stream.stream.core.beats.refine_with_beats` on the same preprocessed windows the runtime hands it.

Failure classes (windows; a window may be in several). "Own estimate" is the model's window-by-window
estimate (decoded without tracking), so every class is the same set of windows for every variant:
- **jump capture**: windows whose own estimate is confidently wrong (> 15 bpm from the label, ≥ 50 %
  probability within ±5 bpm of it), and the 10 windows after each (where a captured track stays wrong);
- **harmonic**: windows whose own estimate lies within 5 % of 2×, 1/2, 3/2 or 2/3 of the label;
- **motion at HR**: the wrist moves (ACC RMS above the rest threshold) and the accelerometer's spectral
  peak, or its 2× or 1/2, lies within ±5 bpm of the label;
- **start-up**: the first 5 windows of each recording;
- **rest**: ACC RMS (band-passed, all axes) at most `BeatGate.acc_quiet_g` (0.02 g).
Two counts complete the table: tracked jumps > 15 bpm between consecutive windows that the label does
not make (label change < 5 bpm), and windows whose published estimate sits at a harmonic (within 5 % of
2×, 1/2, 3/2, 2/3 of the label, and > 10 bpm from it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import window_features
from .oof import OutOfFold
from .targets import TRAINING_SPEC
from ..stream.core.student_spec import BINS_BPM
from ..stream.core.beats import BeatGate, refine_with_beats
from ..stream.core.cues import CueParams
from ..stream.core.decode import decode_probabilities
from ..stream.core.estimate import estimate_windows
from ..stream.core.tracker import Tracker, TrackerParams

HARMONICS = (2.0, 0.5, 1.5, 2.0 / 3.0)
JUMP_BPM = 15.0
AFTER_CAPTURE = 10
STARTUP_WINDOWS = 5


@dataclass(frozen=True)
class Variant:
    tracker: TrackerParams | None  # None: window by window (--no-tracking)
    beats: BeatGate | None = None
    cues: bool = False  # the runtime's cues (issue 22): beats and motion question the model (stream/core/estimate.py)


VARIANTS: dict[str, Variant] = {
    "window by window": Variant(None),
    "previous tracker": Variant(TrackerParams(outlier_share=0.0, harmonic_tolerance=0.0, peak_radius_bpm=0.0)),
    "+ bounded evidence": Variant(TrackerParams(harmonic_tolerance=0.0, peak_radius_bpm=0.0)),
    "+ no harmonic re-acq.": Variant(TrackerParams(outlier_share=0.0, peak_radius_bpm=0.0)),
    "+ window's own peak": Variant(TrackerParams(outlier_share=0.0, harmonic_tolerance=0.0)),
    "new tracker": Variant(TrackerParams()),
    "new + beats": Variant(TrackerParams(), BeatGate()),
    "new + loose beats": Variant(TrackerParams(), BeatGate(acc_quiet_g=0.5, max_deviation=0.3, min_beats=4, tolerance_bpm=20.0)),
    "runtime (+ cues)": Variant(TrackerParams(), BeatGate(), cues=True),
}


def estimate(data: OutOfFold, variant: Variant) -> np.ndarray:
    """What the runtime would publish for every window of `data` under `variant`."""
    if variant.cues:
        bpm = np.empty(len(data))
        for rows in data.recordings():
            tracker = Tracker(BINS_BPM, variant.tracker) if variant.tracker is not None else None
            out = estimate_windows(data.x[rows], data.probs[rows], BINS_BPM, TRAINING_SPEC.fs, tracker.table if tracker else None,
                                   np.full(len(rows), tracker.row if tracker else 0), data.k[rows], CueParams(), variant.beats)
            bpm[rows] = out.bpm
        return bpm
    if variant.tracker is None:
        bpm, _ = decode_probabilities(data.probs, BINS_BPM)
    else:
        bpm = np.empty(len(data))
        for rows in data.recordings():
            bpm[rows], _ = Tracker(BINS_BPM, variant.tracker).update(data.k[rows], data.probs[rows])
    if variant.beats is not None:
        bpm, _ = refine_with_beats(data.x, bpm, TRAINING_SPEC.fs, variant.beats)
    return bpm


def _at_harmonic(bpm: np.ndarray, label: np.ndarray) -> np.ndarray:
    return np.any([np.abs(bpm - h * label) <= 0.05 * h * label for h in HARMONICS], axis=0)


def failure_classes(data: OutOfFold) -> dict[str, np.ndarray]:
    """Window masks per class (see the module docstring), the same for every variant."""
    own, confidence = decode_probabilities(data.probs, BINS_BPM)
    label, f = data.label, data.features
    quiet = f["acc_rms"] <= BeatGate().acc_quiet_g
    capture = np.zeros(len(data), dtype=bool)
    for rows in data.recordings():
        wrong = (np.abs(own[rows] - label[rows]) > JUMP_BPM) & (confidence[rows] >= 0.5)
        for i in np.flatnonzero(wrong):
            capture[rows[i : i + AFTER_CAPTURE + 1]] = True
    acc_peak = f["acc_peak_bpm"]
    at_hr = np.any([np.abs(h * acc_peak - label) <= 5.0 for h in (1.0, 2.0, 0.5)], axis=0) & ~quiet
    startup = np.zeros(len(data), dtype=bool)
    for rows in data.recordings():
        startup[rows[:STARTUP_WINDOWS]] = True
    return {
        "all windows": np.ones(len(data), dtype=bool),
        "jump capture": capture,
        "harmonic": _at_harmonic(own, label),
        "motion at HR": at_hr,
        "start-up": startup,
        "rest": quiet,
    }


def failure_counts(data: OutOfFold, bpm: np.ndarray) -> dict[str, int]:
    jumps = harmonic = 0
    for rows in data.recordings():
        step = np.abs(np.diff(bpm[rows]))
        label_step = np.abs(np.diff(data.label[rows]))
        jumps += int(((step > JUMP_BPM) & (label_step < 5.0)).sum())
    harmonic = int((_at_harmonic(bpm, data.label) & (np.abs(bpm - data.label) > 10.0)).sum())
    return {"tracked jumps > 15 bpm (count)": jumps, "windows at a harmonic (count)": harmonic}


def evaluate_set(data: OutOfFold, variants: dict[str, Variant] = VARIANTS) -> dict:
    """{'classes': {class: (n windows, {variant: MAE})}, 'counts': {count: {variant: n}}}."""
    classes = failure_classes(data)
    estimates = {name: estimate(data, v) for name, v in variants.items()}
    table = {}
    for cls, mask in classes.items():
        table[cls] = (int(mask.sum()), {name: float(np.abs(bpm - data.label)[mask].mean()) if mask.any() else float("nan")
                                        for name, bpm in estimates.items()})
    counts: dict[str, dict[str, int]] = {}
    for name, bpm in estimates.items():
        for what, n in failure_counts(data, bpm).items():
            counts.setdefault(what, {})[name] = n
    return {"classes": table, "counts": counts, "windows": len(data)}


def markdown_table(title: str, result: dict) -> str:
    names = list(next(iter(result["classes"].values()))[1])
    lines = [f"**{title}** ({result['windows']} windows; MAE in bpm)", "",
             "| class | windows | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for cls, (n, maes) in result["classes"].items():
        lines.append(f"| {cls} | {n} | " + " | ".join("—" if np.isnan(m) else f"{m:.2f}" for m in maes.values()) + " |")
    for what, per in result["counts"].items():
        lines.append(f"| {what} | | " + " | ".join(str(v) for v in per.values()) + " |")
    return "\n".join(lines) + "\n"


def scenario_windows(recordings: list, predict: Callable[[np.ndarray], np.ndarray]) -> OutOfFold:
    """A scenario set → windows through the stream's preprocessing, probabilities from `predict`."""
    from .dataset import labelled_windows

    parts = []
    for rec in recordings:
        w = labelled_windows(rec, TRAINING_SPEC)
        parts.append(OutOfFold(predict(w.x), w.k, w.hr_bpm.astype(np.float64), np.asarray(w.subject), window_features(w.x), w.x))
    return OutOfFold.concat(parts)


def onnx_predictor(model: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    from ..stream.core.decode import softmax
    from ..stream.core.engine import InferenceEngine

    engine = InferenceEngine(str(model))
    return lambda x: softmax(engine.run(np.ascontiguousarray(x, dtype=np.float32)))


def sensitivity_table(sets: dict[str, OutOfFold], shares: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)) -> str:
    """All-window MAE of the new tracker per evidence set as the outlier share ε varies, beside the model's
    gross-error share (window estimates > 15 bpm off), which is what ε stands for."""
    lines = ["| set | model's gross-error share | " + " | ".join(f"ε = {e:g}" for e in shares) + " |",
             "|---|---:|" + "---:|" * len(shares)]
    for name, data in sets.items():
        own, _ = decode_probabilities(data.probs, BINS_BPM)
        maes = [np.abs(estimate(data, Variant(TrackerParams(outlier_share=e))) - data.label).mean() for e in shares]
        lines.append(f"| {name} | {np.mean(np.abs(own - data.label) > JUMP_BPM):.2f} | " + " | ".join(f"{m:.2f}" for m in maes) + " |")
    return "\n".join(lines) + "\n"


def report(sets: dict[str, OutOfFold], variants: dict[str, Variant] = VARIANTS) -> str:
    """The markdown the command prints and writes: one table per evidence set, then ε's sensitivity."""
    parts = [markdown_table(name, evaluate_set(data, variants)) for name, data in sets.items()]
    parts.append("**Outlier share ε of the bounded evidence** (all-window MAE, new tracker without beats)\n\n" + sensitivity_table(sets))
    return "\n".join(parts)
