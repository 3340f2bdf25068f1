"""`ppg-distill calibrate-confidence`: calibrate what a model publishes as its confidence, not its evidence.

`devices-train --cv K --cv-probs DIR` keeps each held-out recording's softmax rows (`<subject>.npy`). Here each
of those recordings is published as the runtime publishes it (`across.publish`: cues, tracker, beat refinement,
tempered confidence; `stream/core/estimate.py`), a window counts as right when the published bpm is within ±5
bpm of the reference (`calibration.correct`, the ECE's own rule), and a Platt map of the confidence
(`stream/core/confidence_map.py`) is cross-fitted over the CV's folds (`calibration.cross_fitted_map`). The map
fitted on all held-out windows goes into the model's metadata (`confidence_map`); the weights, and so the bpm,
stay as they were. Per data set it says what the map does to the ECE, to the issue's check (confidence ≥ 0.9
within 10 bpm: `across.CONFIDENT`, `across.WITHIN_BPM`) and to the share published as `reliable`, and the same on
another device the model never trained on: a map fitted on one device's held-out windows can undo the cues that
make the confidence honest on another (docs/distillation.md, "A map of the published confidence").
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .across import CONFIDENT, WITHIN_BPM, LabelledRecording, ieee_set, publish, wrist_exercise_set
from .calibration import correct, cross_fitted_map, expected_calibration_error
from ..stream.core.confidence_map import ConfidenceMap
from ..stream.core.message import DEFAULT_MIN_CONFIDENCE
from ..stream.core.student_spec import BINS_BPM


@dataclass(frozen=True)
class HeldOut:
    recording: LabelledRecording
    probs: np.ndarray  # (N, K) the CV fold's softmax rows for it


def load_held_out(cv_probs: Path, ieee_dir: str | Path, wrist_dir: str | Path | None) -> list[HeldOut]:
    """Every `<subject>.npy` of `cv_probs` beside that recording's windows and labels (IEEE SPC 2015 for DATA_*,
    Wrist PPG During Exercise otherwise); ValueError naming the file when one does not fit its recording."""
    files = sorted(Path(cv_probs).glob("*.npy"))
    if not files:
        raise ValueError(f"--cv-probs {cv_probs}: no <subject>.npy files (written by devices-train --cv K --cv-probs DIR)")
    names = [f.stem for f in files]
    recordings: dict[str, LabelledRecording] = {}
    if any(n.startswith("DATA_") for n in names):
        recordings |= {r.name: r for r in ieee_set(ieee_dir, trained_on=False)}
    if any(not n.startswith("DATA_") for n in names):
        recordings |= {r.name: r for r in wrist_exercise_set(wrist_dir)}
    out = []
    for f in files:
        rec = recordings.get(f.stem)
        if rec is None:
            raise ValueError(f"{f.name}: no recording {f.stem!r} in the data folders (--ieee, --wrist)")
        try:
            probs = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{f.name}: not a readable .npy array ({str(e)[:80]})") from None
        if probs.shape != (len(rec.k), len(BINS_BPM)) or not np.all(np.isfinite(probs)):
            raise ValueError(f"{f.name}: expected {len(rec.k)} windows x {len(BINS_BPM)} bins of finite probabilities "
                             f"(the recording's windows), got shape {list(probs.shape)}")
        out.append(HeldOut(rec, np.ascontiguousarray(probs, dtype=np.float64)))
    return out


def folds_of(names: list[str], folds: int) -> list[list[int]]:
    """Which held-out recordings form each fold: IEEE SPC 2015 as the model card's folds (names in order, every
    `folds`-th from i: `across.ieee_groups`), other recordings one subject per fold (`s2_walk` → s2)."""
    ieee = sorted((n, i) for i, n in enumerate(names) if n.startswith("DATA_"))
    groups = [[i for _, i in ieee[f::folds]] for f in range(min(folds, len(ieee)))]
    by_subject: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if not n.startswith("DATA_"):
            by_subject.setdefault(n.split("_")[0], []).append(i)
    return [g for g in groups if g] + list(by_subject.values())


def model_held_out(model: str | Path, recordings: list[LabelledRecording]) -> list[HeldOut]:
    """The model's own probabilities on recordings it never trained on (a data set its metadata does not name)."""
    from .accuracy import onnx_predictor

    predict = onnx_predictor(model)
    return [HeldOut(r, predict(r.x)) for r in recordings]


def calibrate(held: list[HeldOut], folds: int) -> dict:
    """Publish every held-out recording, cross-fit the map over the folds, and say per data set what it does to the
    ECE, the issue's check (confidence ≥ 0.9 within 10 bpm) and the share published as `reliable`; also checks that
    the map leaves every published bpm as it was (it only reads the confidence)."""
    published = [publish(h.recording, h.probs) for h in held]
    right = [correct(p.bpm, h.recording.label) for p, h in zip(published, held)]
    groups = folds_of([h.recording.name for h in held], folds)
    if len(groups) < 2:
        raise ValueError(f"{len(held)} held-out recording(s) make {len(groups)} fold: cross-fitting needs at least 2")
    fit = cross_fitted_map([np.concatenate([published[i].confidence for i in g]) for g in groups],
                           [np.concatenate([right[i] for i in g]) for g in groups])
    cross: list[np.ndarray] = [np.empty(0)] * len(held)  # each recording's confidence under its fold's map (fitted without it)
    for fold_map, g in zip(fit["fold_maps"], groups):
        for i in g:
            cross[i] = fold_map(published[i].confidence)
    mapped = [publish(h.recording, h.probs, confidence_map=fit["map"]) for h in held]
    if not all(np.array_equal(a.bpm, b.bpm) for a, b in zip(published, mapped)):
        raise AssertionError("the confidence map changed a published bpm")  # it reads only the confidence: never
    label = np.concatenate([h.recording.label for h in held])
    sets = {}
    for name in dict.fromkeys(h.recording.data_set for h in held):
        idx = [i for i, h in enumerate(held) if h.recording.data_set == name]
        sets[name] = summary(*(np.concatenate([a[i] for i in idx]) for a in
                               ([p.confidence for p in published], cross, [np.abs(p.bpm - h.recording.label) for p, h in zip(published, held)])))
    return {**fit, "folds": len(groups), "recordings": len(held), "sets": sets,
            "mae_published": float(np.mean(np.abs(np.concatenate([p.bpm for p in published]) - label))),
            "mae_published_mapped": float(np.mean(np.abs(np.concatenate([m.bpm for m in mapped]) - label)))}


def summary(before: np.ndarray, after: np.ndarray, error: np.ndarray) -> dict:
    """One data set's windows, confidence before and after the map: ECE (right: within ±5 bpm), the issue's check
    (windows at ≥ 0.9, of them within 10 bpm) and the share at ≥ the default --min-confidence (`reliable`)."""
    right = correct(error, 0.0)
    sure0, sure1 = before >= CONFIDENT, after >= CONFIDENT
    return {"windows": int(error.size), "right": float(right.mean()),
            "ece": expected_calibration_error(before, right), "ece_calibrated": expected_calibration_error(after, right),
            "confident": (int(sure0.sum()), int((error[sure0] <= WITHIN_BPM).sum())),
            "confident_calibrated": (int(sure1.sum()), int((error[sure1] <= WITHIN_BPM).sum())),
            "reliable": float(np.mean(before >= DEFAULT_MIN_CONFIDENCE)), "reliable_calibrated": float(np.mean(after >= DEFAULT_MIN_CONFIDENCE))}


def off_device(held: list[HeldOut], confidence_map: ConfidenceMap) -> dict:
    """The map as written, on recordings of another device that neither the model nor the map saw."""
    out = [publish(h.recording, h.probs) for h in held]
    before = np.concatenate([o.confidence for o in out])
    return summary(before, confidence_map(before), np.concatenate([np.abs(o.bpm - h.recording.label) for o, h in zip(out, held)]))


def write_confidence_map(model: Path, out: Path, confidence_map: ConfidenceMap, provenance: dict) -> None:
    """`model`'s graph and weights, byte for byte, with metadata `confidence_map` (and `confidence_map_fit`, how it
    was fitted) set, written to `out` through a temporary file (a failed write leaves `out` as it was)."""
    import onnx
    from onnx import helper

    from ..stream.core.model_spec import ModelSpec

    proto = onnx.load(str(model))
    meta = {p.key: p.value for p in proto.metadata_props}
    meta["confidence_map"] = confidence_map.to_metadata()
    meta["confidence_map_fit"] = json.dumps(provenance, sort_keys=True)
    ModelSpec.from_metadata(meta)  # still under the contract
    del proto.metadata_props[:]
    helper.set_model_props(proto, meta)
    out = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent if str(out.parent) else ".")
    os.close(fd)
    try:
        onnx.save(proto, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
