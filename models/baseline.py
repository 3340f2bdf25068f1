"""The non-learned spectral estimator (the runtime's built-in `spectral` model) scored on the study's
windows: the line a learned student has to be below to count as having learnt anything.

Its error needs no training and no folds (nothing is fitted), so one row serves every split:
`ppg-distill baseline` appends it to the results file, where the report reads it. Beside it,
`constant_baseline_row`: per fold, the training subjects' median heart rate guessed for every held-out
window — what a model that learnt only the training subjects' typical rate scores (on a data set of
three subjects, a real risk).
"""

from __future__ import annotations

import numpy as np


def spectral_baseline_row(data) -> dict:
    """MAE tracked and window by window of the built-in spectral model on every labelled window."""
    from ..stream.core.decode import softmax
    from ..stream.core.engine import InferenceEngine
    from .train import evaluate_probabilities

    engine = InferenceEngine("spectral")
    x = data.labelled.x
    logits = np.concatenate([engine.run(x[i : i + 256]) for i in range(0, len(x), 256)]).astype(np.float64)
    from .held_out import per_subject_errors, subject_units

    probs = softmax(logits)
    metrics = evaluate_probabilities(probs, data.labelled)
    return {"key": f"baseline|spectral|{data.name}", "strategy": "baseline", "family": "spectral", "data": data.name,
            "windows": len(x), **metrics, **subject_units(per_subject_errors(probs, data.labelled), data.name)}


def constant_guess(train_hr: np.ndarray, n: int) -> np.ndarray:
    """Probabilities of a model that always answers the training windows' median heart rate."""
    from .targets import gaussian_targets

    return gaussian_targets(np.full(n, float(np.median(train_hr))))


def constant_baseline_row(data) -> dict:
    """MAE of the constant guess per fold (tracked = window by window: the guess never moves)."""
    from .held_out import per_subject_errors, subject_units
    from .train import evaluate_probabilities, pool_folds

    subjects, estimates = {}, []
    for fold in range(len(data.folds)):
        train, test = data.split(fold)
        probs = constant_guess(train.hr_bpm, len(test))
        estimates.append((evaluate_probabilities(probs, test), len(test)))
        subjects.update(per_subject_errors(probs, test))
    total, metrics = pool_folds(estimates)
    return {"key": f"baseline|constant|{data.name}|k{len(data.folds)}", "strategy": "baseline", "family": "constant", "data": data.name,
            "folds": len(data.folds), "windows": total, **metrics, **subject_units(subjects, data.name)}
