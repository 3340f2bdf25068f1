"""Is the model's confidence worth trusting? Reliability, expected calibration error, temperature.

The runtime's confidence is the probability mass within ±5 bpm of the estimate, so a calibrated
model is one where windows reported at confidence c are within 5 bpm of the reference a share c of
the time. ECE is the gap between the two, averaged over equal-width confidence bins weighted by
their windows. A temperature T divides the logits (softmax(z / T)): T > 1 softens an overconfident
model without moving its peak. It is fitted on held-out windows only, and a fitted T is baked into
the exported head (`apply_temperature`), so the runtime needs no new key. But the tracker weighs its evidence
by those probabilities, so a temperature moves the bpm too; `fit_confidence_map` / `cross_fitted_map` fit a
map of the *published* confidence instead (stream/core/confidence_map.py, the model key `confidence_map`),
which the runtime applies after the tracker and the cues (`ppg-distill calibrate-confidence`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .targets import gaussian_targets

from ..stream.core.confidence_map import EDGE, OFFSET_LIMIT, SLOPE_RANGE, ConfidenceMap
from ..stream.core.student_spec import BINS_BPM
from ..stream.core.decode import CONFIDENCE_BPM, decode_probabilities, softmax

if TYPE_CHECKING:  # torch only for apply_temperature: fitting a confidence map needs no [train] extra
    from torch import nn

N_BINS = 10
TEMPERATURES = np.exp(np.linspace(np.log(0.1), np.log(30.0), 81))  # the grid T is chosen from


def correct(bpm: np.ndarray, hr_bpm: np.ndarray) -> np.ndarray:
    """A window is right when its estimate is within ±5 bpm of the reference: the span its confidence is the mass of."""
    return np.abs(np.asarray(bpm) - np.asarray(hr_bpm)) <= CONFIDENCE_BPM


def confidence_and_correct(probs: np.ndarray, hr_bpm: np.ndarray, bins: np.ndarray = BINS_BPM) -> tuple[np.ndarray, np.ndarray]:
    """The model's per-window confidence (its own peak's, before tracking) and whether that peak is right (`correct`)."""
    bpm, confidence = decode_probabilities(np.ascontiguousarray(probs, dtype=np.float64), np.ascontiguousarray(bins, dtype=np.float64))
    return confidence, correct(bpm, hr_bpm)


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> dict[str, list]:
    """Per equal-width confidence bin: windows, mean confidence and share correct (None when empty)."""
    which = np.minimum((np.asarray(confidence) * n_bins).astype(int), n_bins - 1)
    count, conf, acc = [], [], []
    for b in range(n_bins):
        sel = which == b
        count.append(int(sel.sum()))
        conf.append(float(confidence[sel].mean()) if sel.any() else None)
        acc.append(float(correct[sel].mean()) if sel.any() else None)
    return {"count": count, "confidence": conf, "accuracy": acc}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float:
    table = reliability(confidence, correct, n_bins)
    total = sum(table["count"])
    return float(sum(n * abs(c - a) for n, c, a in zip(table["count"], table["confidence"], table["accuracy"]) if n) / max(total, 1))


def soft_nll(logits: np.ndarray, hr_bpm: np.ndarray, temperature: float) -> float:
    """Cross-entropy of softmax(logits / T) against the training targets (Gaussian over the bins)."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-(gaussian_targets(hr_bpm) * log_p).sum(axis=1).mean())


def fit_temperature(logits: np.ndarray, hr_bpm: np.ndarray) -> float:
    """The T on a log grid (0.1-30) that minimises held-out cross-entropy: one number, no overfitting to speak of."""
    logits = np.asarray(logits, dtype=np.float64)
    return float(min(TEMPERATURES, key=lambda t: soft_nll(logits, hr_bpm, t)))


def fit_confidence_temperature(logits: np.ndarray, hr_bpm: np.ndarray) -> float:
    """The T on the same grid that minimises the Brier score of the published confidence (the mass within ±5
    bpm) against being within ±5 bpm. The cross-entropy fit (`fit_temperature`) matches the Gaussian training
    targets, whose width caps that mass: on a model that is right more often than its targets' spread says
    (an underconfident one, as the device-trained students are), it leaves most of the gap open."""
    logits = np.asarray(logits, dtype=np.float64)

    def brier(t: float) -> float:
        conf, ok = confidence_and_correct(calibrated_probabilities(logits, t), hr_bpm)
        return float(np.mean((conf - ok) ** 2))

    return float(min(TEMPERATURES, key=brier))


FITS = {"nll": fit_temperature, "confidence": fit_confidence_temperature}  # what a temperature is fitted to


def calibrated_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(np.ascontiguousarray(np.asarray(logits, dtype=np.float64) / temperature))


def apply_temperature(model: "nn.Module", temperature: float) -> None:
    """Divide the model's logits by T for good: the last layer's weight and bias scale by 1/T."""
    head = model.head
    head.weight.data /= temperature
    if head.bias is not None:
        head.bias.data /= temperature


def cross_fitted(held_logits: list[np.ndarray], held_sets: list, fit: str = "nll") -> dict:
    """Calibration of a cross-validated recipe, on held-out windows only.

    Each fold's temperature is fitted on the *other* folds' held-out logits and applied to its own
    (so no window calibrates itself); the temperature to ship is fitted on all of them. Returns the
    ECE and reliability table before and after, the temperatures, and the metrics of the tracked and
    window-by-window estimates with the calibrated probabilities (a temperature moves no peak, but the
    tracker weighs the evidence by it). `fit`: the objective (FITS: "nll", the cross-entropy; "confidence",
    the published confidence's Brier score)."""
    from .dataset import WindowSet
    from .train import evaluate_probabilities, pool_folds

    raw_conf, raw_ok, cal_conf, cal_ok, estimates, temps = [], [], [], [], [], []
    for f, (logits, data) in enumerate(zip(held_logits, held_sets)):
        others = [i for i in range(len(held_logits)) if i != f]
        t = FITS[fit](np.concatenate([held_logits[i] for i in others]), np.concatenate([held_sets[i].hr_bpm for i in others])) if others else 1.0
        temps.append(t)
        c, ok = confidence_and_correct(softmax(np.ascontiguousarray(logits)), data.hr_bpm)
        raw_conf.append(c)
        raw_ok.append(ok)
        probs = calibrated_probabilities(logits, t)
        c, ok = confidence_and_correct(probs, data.hr_bpm)
        cal_conf.append(c)
        cal_ok.append(ok)
        estimates.append((evaluate_probabilities(probs, data), len(data)))
    _, metrics = pool_folds(estimates)
    pooled = WindowSet.concat(held_sets)
    raw_conf, raw_ok, cal_conf, cal_ok = (np.concatenate(a) for a in (raw_conf, raw_ok, cal_conf, cal_ok))
    return {
        "temperature": FITS[fit](np.concatenate(held_logits), pooled.hr_bpm), "fold_temperatures": temps,
        **({"temperature_fit": fit} if fit != "nll" else {}),
        "ece": expected_calibration_error(raw_conf, raw_ok), "ece_calibrated": expected_calibration_error(cal_conf, cal_ok),
        "reliability": reliability(raw_conf, raw_ok), "reliability_calibrated": reliability(cal_conf, cal_ok),
        "mae_calibrated": metrics["mae"], "mae_untracked_calibrated": metrics["mae_untracked"],
    }


# ---- a map on the published confidence (issue 22, item 4) ------------------------------------------------------
# A temperature sharpens the tracker's evidence too (1.4: ECE 0.073 → 0.016 but tracked MAE 1.14 → 1.24). The map
# of stream/core/confidence_map.py acts on the published number only: fitted here on held-out windows' published
# confidence and whether the published bpm is `correct`.


PRIOR = 1.0  # log loss per unit of (a - 1)² + b², against thousands of windows: only decides degenerate sets


def fit_confidence_map(confidence: np.ndarray, right: np.ndarray, iterations: int = 100) -> ConfidenceMap:
    """Platt scaling of the published confidence: the (a, b) of sigmoid(a·logit(c) + b) with the least log loss
    against being right, by Newton's method. The targets are Platt's (N₊ + 1)/(N₊ + 2) and 1/(N₋ + 2) rather than 1
    and 0, so a set where every window is right (or wrong) gives a finite map, not an infinite offset; a weak pull
    towards the identity (`PRIOR`, worth one window) settles sets whose confidence is all one value; a is kept
    positive, so the order of windows by confidence never changes."""
    c = np.clip(np.asarray(confidence, dtype=np.float64), EDGE, 1.0 - EDGE)
    right = np.asarray(right, dtype=bool)
    if c.size == 0:
        raise ValueError("no windows to fit a confidence map on")
    n_right, n_wrong = int(right.sum()), int((~right).sum())
    y = np.where(right, (n_right + 1.0) / (n_right + 2.0), 1.0 / (n_wrong + 2.0))
    z = np.log(c) - np.log1p(-c)

    def loss(a: float, b: float) -> float:  # log loss against y, plus the prior
        t = a * z + b
        return float(np.sum(np.logaddexp(0.0, t) - y * t) + 0.5 * PRIOR * ((a - 1.0) ** 2 + b * b))

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):  # Newton's method with a halving line search: never a step that raises the loss
        p = 1.0 / (1.0 + np.exp(-(a * z + b)))
        w = p * (1.0 - p)
        g = np.array([np.dot(p - y, z), np.sum(p - y)]) + PRIOR * np.array([a - 1.0, b])
        h = np.array([[np.dot(w, z * z), np.dot(w, z)], [np.dot(w, z), np.sum(w)]]) + PRIOR * np.eye(2)
        step = np.linalg.solve(h, g)
        if (a <= SLOPE_RANGE[0] and step[0] > 0) or (a >= SLOPE_RANGE[1] and step[0] < 0):  # a held at its bound: b alone
            step = np.array([0.0, g[1] / h[1, 1]])
        for _ in range(40):
            na, nb = float(np.clip(a - step[0], *SLOPE_RANGE)), float(np.clip(b - step[1], -OFFSET_LIMIT, OFFSET_LIMIT))
            trial = loss(na, nb)
            if trial <= current:
                break
            step = step / 2.0
        else:
            break
        done = abs(current - trial) <= 1e-12 * max(1.0, abs(current))
        a, b, current = na, nb, trial
        if done:
            break
    return ConfidenceMap(a, b)


def cross_fitted_map(confidence: list[np.ndarray], right: list[np.ndarray]) -> dict:
    """The published confidence's calibration on held-out windows, one array per fold: each fold's map fitted on the
    *other* folds' windows and applied to its own (no window calibrates itself), ECE and reliability before and after;
    the map to ship fitted on all of them (`map`, and the ECE it reaches on the same windows, `ece_in_sample`)."""
    before, after, maps = [], [], []
    for f, c in enumerate(confidence):
        others = [i for i in range(len(confidence)) if i != f]
        fold_map = fit_confidence_map(np.concatenate([confidence[i] for i in others]), np.concatenate([right[i] for i in others]))
        maps.append(fold_map)
        before.append(c)
        after.append(fold_map(c))
    c_all, ok_all, cal = np.concatenate(before), np.concatenate(right), np.concatenate(after)
    final = fit_confidence_map(c_all, ok_all)
    return {
        "map": final, "fold_maps": maps, "windows": int(c_all.size), "right": float(ok_all.mean()),
        "ece": expected_calibration_error(c_all, ok_all), "ece_calibrated": expected_calibration_error(cal, ok_all),
        "ece_in_sample": expected_calibration_error(final(c_all), ok_all),
        "reliability": reliability(c_all, ok_all), "reliability_calibrated": reliability(cal, ok_all),
    }
