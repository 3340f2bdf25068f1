"""Held-out errors per subject, the unit of the subject-level statistics (`ppg_stream.models.subjects`).

Shared by the study's students, the teacher screen and the spectral baseline, so every row names its
subjects the same way.
"""

from __future__ import annotations

import numpy as np

from .cross_data import per_person
from .dataset import WindowSet
from .train import evaluate_probabilities


def subject_units(per_window_subject: dict[str, dict], data_name: str) -> dict:
    """`per_subject` as the statistics' unit: on wrist-ppg-exercise the window 'subjects' are recordings,
    kept as `per_recording` and pooled per person into `per_subject`."""
    if data_name != "wrist":
        return {"per_subject": per_window_subject}
    return {"per_subject": per_person(per_window_subject), "per_recording": per_window_subject}


def per_subject_errors(probs: np.ndarray, test_set: WindowSet) -> dict[str, dict]:
    """subject → {windows, mae, mae_untracked} of held-out windows (each subject tracked on its own)."""
    out = {}
    for subject in np.unique(test_set.subject):
        sel = test_set.subject == subject
        m = evaluate_probabilities(probs[sel], test_set.select(sel))
        out[str(subject)] = {"windows": int(sel.sum()), "mae": m["mae"], "mae_untracked": m["mae_untracked"]}
    return out
