"""The non-learned spectral estimator (the runtime's built-in `spectral` model) scored on the study's
windows: the line a learned student has to be below to count as having learnt anything.

Its error needs no training and no folds (nothing is fitted), so one row serves every split:
`ppg-distill baseline` appends it to the results file, where the report reads it.
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
