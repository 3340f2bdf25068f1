"""What an exported student carries besides its weights: its recipe's cross-validation and its data's licences.

`ppg-distill export` (the shipped student's path) and `ppg-distill devices-train` write these keys through
`trained_metadata`, so a file from either can be shipped: tests/test_shipped_student.py asks a shipped
student for `cv` (held-out figures of its recipe: subject-wise MAE, held-out synthetic recordings and
activity scenarios, the confidence's ECE) and `licence_training_data` (the terms of every data set it
learnt from; a data set that asks to be cited is cited there, and so in the model card).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

# the CV row's figures an exported student keeps (models/study.py `run_cv`, models/across.py `cv_for_devices`)
CV_KEYS = ("folds", "mae", "rmse", "within5", "mae_untracked", "mae_synthetic", "mae_scenarios", "ece", "ece_calibrated", "mae_calibrated")

LICENCES = {
    "ieee": "IEEE SPC 2015: academic research only (copyright with its authors)",
    "dalia": "PPG-DaLiA: the terms of its publisher (UCI Machine Learning Repository)",
    "wrist": ("Wrist PPG During Exercise: open, with attribution (its PhysioNet page is the authority); cite D. Jarchi and "
              "A. J. Casson, \"Description of a Database Containing Wrist PPG Signals Recorded during Physical Exercise with Both "
              "Accelerometer and Gyroscope Measures of Motion\", Data 2(1):1, 2017"),
}


def trained_metadata(cv: dict, data_sets: Iterable[str]) -> dict[str, str]:
    """`cv` (the CV row's figures, JSON; empty where the recipe was not cross-validated) and
    `licence_training_data` for a student trained on `data_sets` (keys of LICENCES)."""
    return {"cv": json.dumps({k: cv[k] for k in CV_KEYS if k in cv}),
            "licence_training_data": "; ".join(LICENCES[d] for d in data_sets)}
