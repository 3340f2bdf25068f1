"""From the model's distributions to what is published: cues, tracking, beat refinement, confidence.

One function for the runtime (stream/runtime/pipeline.py) and the accuracy harness (models/across.py,
models/accuracy.py) alike, so what is measured is what is published:

1. the cues (stream/core/cues.py): where the model's peak sits on a moving wrist's cadence and regular
   beats say otherwise, the window's distribution leans towards the beats;
2. the tracker (stream/core/tracker.py) over those distributions, with the activity prior fed by the
   windows' accelerometer RMS; or the window's own peak without tracking;
3. beat refinement of still, clean windows (stream/core/beats.py);
4. the confidence tempered by the cues (beats that disagree, a rate on the cadence with no beats to
   confirm it);
5. the model's confidence map (metadata `confidence_map`, stream/core/confidence_map.py), if it has one:
   calibrates the published confidence last, so the tracker's evidence and the bpm are untouched.
`reliable` (the HR message's field) is then `confidence >= min_confidence`, on the calibrated value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .beats import BeatGate, refine_with_beats
from .confidence_map import ConfidenceMap
from .cues import CueParams, cues_for, temper
from .decode import decode_probabilities
from .gait import strongest_acc_line
from .message import DEFAULT_MIN_CONFIDENCE
from .tracker import TrackerTable

__all__ = ["DEFAULT_MIN_CONFIDENCE", "Estimates", "estimate_windows"]


@dataclass(frozen=True)
class Estimates:
    bpm: np.ndarray  # what is published
    confidence: np.ndarray  # published confidence (0-1)
    untracked: np.ndarray  # the model's own window-by-window estimate, before cues and tracking
    refined: np.ndarray  # bool: beat refinement replaced the rate


def estimate_windows(x: np.ndarray, probs: np.ndarray, bins: np.ndarray, fs: float, trackers: TrackerTable | None,
                     rows: np.ndarray, k: np.ndarray, cues: CueParams | None = CueParams(),
                     beat_gate: BeatGate | None = BeatGate(), overwrite_probs: bool = False,
                     confidence_map: ConfidenceMap | None = None) -> Estimates:
    """`x` (N, C, T) the preprocessed windows, `probs` (N, K) the model's softmax rows; `rows` each window's
    tracker row and `k` its index (each row's windows in order). `cues=None` and `beat_gate=None` turn those off
    (a model without accelerometer channels gets no cues: there is no motion to judge by). `overwrite_probs`:
    the cues may change `probs` in place (the runtime's own softmax output, used once; saves a batch-sized copy).
    `confidence_map`: the model's calibration of the published confidence (`ModelSpec.confidence_map`; None: none)."""
    untracked, confidence = decode_probabilities(probs, bins)
    use_cues = cues is not None and x.shape[1] >= 4
    evidence, activity, found = probs, None, None
    rms = None  # the windows' accelerometer RMS: measured once, for the cues, the activity prior and the still gate
    if use_cues:
        evidence, found = cues_for(x, probs, fs, bins, cues, overwrite=overwrite_probs)
        activity = rms = found.acc_rms
    if trackers is not None:
        acc_line = None  # the gait, read only where the tracker's walk-start ceiling may still lift (gait.py)
        if activity is not None:
            wanted = trackers.gait_wanted(rows, activity)
            if wanted.any():
                acc_line = strongest_acc_line(x, fs, wanted)
        bpm, confidence = trackers.update(rows, k, evidence, activity, acc_line)
    elif use_cues:
        bpm, confidence = decode_probabilities(evidence, bins)
    else:
        bpm = untracked
    refined = np.zeros(len(bpm), dtype=bool)
    if beat_gate is not None:
        bpm, refined = refine_with_beats(x, bpm, fs, beat_gate, rms)
    if use_cues:
        confidence = temper(bpm, confidence, x, found, fs, cues)
    if confidence_map is not None:
        confidence = confidence_map(confidence)
    return Estimates(bpm, confidence, untracked, refined)
