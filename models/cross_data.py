"""A second data set in the study: models trained on the 12 IEEE SPC 2015 runners, scored on
wrist-ppg-exercise (another PPG device and rate; walking, running and two kinds of cycling).

Windows come through the same `StreamPreprocessor` as training (resampled to the training rate), and
each recording's labels are its `reference_bpm.json` entry (null where the ECG reference is missing or
implausible: those windows are left out). Every model is scored per recording, tracked (each
recording tracked on its own) and window by window; `ppg-distill cross-data` writes one JSON line per
model and recording, which `ppg-distill report` tabulates when the file lies beside the results.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .dataset import WindowSet, labelled_windows
from .targets import TRAINING_SPEC


def wrist_windows(directory: Path) -> WindowSet:
    """Every `<subject>_<activity>.csv` of the folder with its reference, one 'subject' per recording."""
    from ..replay.load import load_recording

    directory = Path(directory)
    reference = json.loads((directory / "reference_bpm.json").read_text())
    sets = []
    for path in sorted(directory.glob("*.csv")):
        labels = reference.get(path.stem)
        if labels is None:
            continue
        rec = load_recording(path)
        rec = replace(rec, labels_bpm=np.array([np.nan if v is None else float(v) for v in labels], dtype=np.float64))
        sets.append(labelled_windows(rec, TRAINING_SPEC, subject=path.stem))
    if not sets:
        raise FileNotFoundError(f"{directory}: no <subject>_<activity>.csv recordings with a reference_bpm.json entry")
    return WindowSet.concat(sets)


def person(recording: str) -> str:
    """`s2_high_resistance_bike` → `s2`: the subject a recording belongs to."""
    return recording.split("_", 1)[0]


def wrist_folds(recordings: np.ndarray, n_folds: int) -> list[np.ndarray]:
    """Folds of the recordings by person: every recording of a subject is held out together (as many folds
    as subjects = leave one subject out); deterministic."""
    names = np.unique(recordings.astype(str))
    people = sorted({person(r) for r in names})
    if not 2 <= n_folds <= len(people):
        raise ValueError(f"--folds {n_folds}: wrist-ppg-exercise has {len(people)} subjects ({', '.join(people)}): 2-{len(people)} folds")
    held = [people[i::n_folds] for i in range(n_folds)]
    return [np.array([r for r in names if person(r) in group]) for group in held]


def per_person(per_recording: dict[str, dict]) -> dict[str, dict]:
    """Per-recording errors pooled per subject, window-weighted: {windows, mae, mae_untracked} (each
    recording was tracked on its own; the subject is the unit of the subject-level statistics)."""
    out: dict[str, dict] = {}
    for rec, v in sorted(per_recording.items()):
        out.setdefault(person(rec), []).append(v)
    return {p: {"windows": sum(v["windows"] for v in vs),
                **{k: sum(v[k] * v["windows"] for v in vs) / sum(v["windows"] for v in vs) for k in ("mae", "mae_untracked")}}
            for p, vs in out.items()}


def activity(recording: str) -> str:
    """`s2_high_resistance_bike` → `high_resistance_bike`."""
    return recording.split("_", 1)[1] if "_" in recording else recording


def score(name: str, probs: np.ndarray, windows: WindowSet, extra: dict | None = None) -> list[dict]:
    """One row per recording: MAE tracked and window by window."""
    from ..stream.core.decode import softmax  # noqa: F401  (probabilities come in already normalised)
    from .train import evaluate_probabilities

    rows = []
    for rec in np.unique(windows.subject):
        sel = windows.subject == rec
        m = evaluate_probabilities(probs[sel], windows.select(sel))
        rows.append({"model": name, "recording": str(rec), "activity": activity(str(rec)), "windows": int(sel.sum()),
                     "mae": m["mae"], "mae_untracked": m["mae_untracked"], **(extra or {})})
    return rows


def onnx_probabilities(model: str, windows: WindowSet) -> np.ndarray:
    """A model under the contract (a built-in name or an .onnx file) on the study's windows."""
    from ..stream.core.decode import softmax
    from ..stream.core.engine import InferenceEngine

    engine = InferenceEngine(model)
    logits = np.concatenate([engine.run(windows.x[i : i + 256]) for i in range(0, len(windows), 256)]).astype(np.float64)
    return softmax(logits)


def cross_data_section(rows: list[dict]) -> str:
    """Per model: pooled MAE over the recordings and per activity (tracked / window by window)."""
    if not rows:
        return ""
    latest = {}
    for r in rows:
        latest[(r["model"], r["recording"])] = r
    rows = list(latest.values())
    activities = sorted({r["activity"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))

    def pooled(sel, key):
        n = sum(r["windows"] for r in sel)
        return sum(r[key] * r["windows"] for r in sel) / n if n else float("nan")

    lines = ["## Second data set: wrist-ppg-exercise (trained on IEEE SPC 2015, tested there)", "",
             "Another PPG device and sampling rate, subjects 2-4 of Jarchi & Casson (2017): treadmill walking and running, and "
             "cycling at low and high resistance (the wrist barely moves; the pedalling cadence dominates PPG and accelerometer "
             "alike). Every model was trained on the 12 IEEE runners only (`ppg-distill cross-data`). Cells: MAE tracked / window "
             "by window (bpm), windows pooled over the recordings of that activity.", "",
             "| model | all recordings | " + " | ".join(a.replace("_", " ") for a in activities) + " |",
             "|---|---|" + "---|" * len(activities)]
    for m in models:
        mine = [r for r in rows if r["model"] == m]
        cells = [f"{pooled([r for r in mine if r['activity'] == a], 'mae'):.2f} / {pooled([r for r in mine if r['activity'] == a], 'mae_untracked'):.2f}"
                 if any(r["activity"] == a for r in mine) else "-" for a in activities]
        lines.append(f"| {m} | {pooled(mine, 'mae'):.2f} / {pooled(mine, 'mae_untracked'):.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", ""])
