"""Statistics over subjects: paired bootstrap of the window-by-window (or tracked) MAE, Holm's rule,
and what a design can detect.

Twelve subjects are the population the study speaks about, not the seeds. On leave-one-subject-out
(LOSO) every subject is held out once and each run keeps that subject's MAE and window count
(`per_fold`, one subject per fold), so two configurations are compared subject by subject on the same
windows: the difference of their pooled MAE, Σ nᵢ·(aᵢ − bᵢ) / Σ nᵢ, with nᵢ subject i's windows. Its
95 % interval comes from resampling the subjects with replacement (paired: a subject's two errors
travel together), and its two-sided p-value from the same bootstrap distribution, centred on zero.
Several seeds of a configuration are averaged per subject first (seeds shared by both sides when
there are any), so seed noise shrinks instead of counting as more subjects.

A verdict table tests many comparisons at once; Holm's step-down rule keeps the chance of any false
"winner" among them at 5 %. What the design can detect: the minimal detectable difference at 80 %
power, (z₁₋α/2 + z₀.₈) × the bootstrap standard error, at the strictest level Holm applies (α/m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.80
N_BOOT = 4000
BOOT_SEED = 20251118  # fixed: the report regenerates byte for byte
MIN_SUBJECTS = 5  # below this a bootstrap over subjects has too few distinct resamples for a p-value


def subject_errors(row: dict, metric: str = "mae") -> dict[str, tuple[float, int]] | None:
    """subject → (metric, windows) of one run, where its folds (or `per_subject`) name one subject each."""
    if row.get("per_subject"):
        return {s: (float(v[metric]), int(v["windows"])) for s, v in row["per_subject"].items() if v.get(metric) is not None}
    folds = row.get("per_fold") or []
    if not folds or any(len(f["held_out"]) != 1 for f in folds):
        return None
    return {f["held_out"][0]: (float(f[metric]), int(f["windows"])) for f in folds if f.get(metric) is not None}


def per_subject(runs: list[dict], metric: str = "mae", seeds: set[int] | None = None) -> dict[str, tuple[float, int]]:
    """Per subject, the metric averaged over the runs' seeds (only `seeds` when given)."""
    values: dict[str, list[float]] = {}
    windows: dict[str, int] = {}
    for r in runs:
        if seeds is not None and int(r.get("seed", 0)) not in seeds:
            continue
        errors = subject_errors(r, metric)
        for s, (v, n) in (errors or {}).items():
            values.setdefault(s, []).append(v)
            windows[s] = n
    return {s: (float(np.mean(v)), windows[s]) for s, v in values.items()}


def _seeds(runs: list[dict], metric: str) -> set[int]:
    return {int(r.get("seed", 0)) for r in runs if subject_errors(r, metric)}


@dataclass(frozen=True)
class SubjectDifference:
    """A − B on the pooled MAE over subjects, with a bootstrap interval and p-value."""

    mean: float
    low: float
    high: float
    p: float
    se: float
    subjects: int
    better: int  # subjects where A's error is lower
    runs: tuple[int, int]  # runs behind each side
    p_adjusted: float | None = None  # after Holm, within the family of comparisons it was tested in

    @property
    def outcome(self) -> str:
        """'lower' / 'higher' when significant (Holm-adjusted p where set), else 'tie'."""
        p = self.p if self.p_adjusted is None else self.p_adjusted
        if p < ALPHA and self.subjects >= MIN_SUBJECTS:
            return "lower" if self.mean < 0 else "higher"
        return "tie"

    def mdd(self, m: int = 1) -> float:
        """Minimal difference detectable with 80 % power at level α/m (Holm's strictest step)."""
        from scipy.stats import norm

        return float((norm.ppf(1 - ALPHA / (2 * m)) + norm.ppf(POWER)) * self.se)

    def text(self, unit: str = " bpm", digits: int = 2) -> str:
        from .repeats import signed

        p = self.p if self.p_adjusted is None else self.p_adjusted
        p_text = (f"p{'_Holm' if self.p_adjusted is not None else ''} {_p(p)}" if self.subjects >= MIN_SUBJECTS
                  else f"no p-value with {self.subjects} subjects")
        return (f"{signed(self.mean, digits)} [{signed(self.low, digits)}, {signed(self.high, digits)}]{unit}, "
                f"{self.better}/{self.subjects} subjects lower, {p_text}")

    def with_adjusted(self, p: float) -> "SubjectDifference":
        return SubjectDifference(self.mean, self.low, self.high, self.p, self.se, self.subjects, self.better, self.runs, p)


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def bootstrap_difference(a: dict[str, tuple[float, int]], b: dict[str, tuple[float, int]], n_boot: int = N_BOOT,
                         seed: int = BOOT_SEED, runs: tuple[int, int] = (1, 1)) -> SubjectDifference | None:
    """Paired bootstrap over the subjects both have: window-weighted mean of aᵢ − bᵢ."""
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        return None
    d = np.array([a[s][0] - b[s][0] for s in shared])
    w = np.array([a[s][1] for s in shared], dtype=float)
    observed = float(np.sum(w * d) / np.sum(w))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(shared), size=(n_boot, len(shared)))
    boot = np.sum(w[picks] * d[picks], axis=1) / np.sum(w[picks], axis=1)
    low, high = np.quantile(boot, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    centred = boot - boot.mean()
    p = float((np.sum(np.abs(centred) >= abs(observed)) + 1) / (n_boot + 1))
    return SubjectDifference(observed, float(low), float(high), p, float(boot.std(ddof=1)), len(shared), int(np.sum(d < 0)), runs)


def subject_difference(a_runs: list[dict], b_runs: list[dict], metric: str = "mae") -> SubjectDifference | None:
    """Configuration A − B on the subjects both were scored on (seeds both ran when they share any)."""
    shared = _seeds(a_runs, metric) & _seeds(b_runs, metric)
    seeds = shared or None
    a, b = per_subject(a_runs, metric, seeds), per_subject(b_runs, metric, seeds)
    n_a = len(shared) if shared else len(_seeds(a_runs, metric))
    n_b = len(shared) if shared else len(_seeds(b_runs, metric))
    return bootstrap_difference(a, b, runs=(n_a, n_b))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def holm_family(diffs: dict, alpha: float = ALPHA) -> dict:
    """The same mapping with every difference's `p_adjusted` set by Holm over the whole family (None kept)."""
    keys = [k for k, d in diffs.items() if d is not None]
    adjusted = holm([diffs[k].p for k in keys])
    out = dict(diffs)
    for k, p in zip(keys, adjusted):
        out[k] = diffs[k].with_adjusted(p)
    return out


def mdd_range(diffs, m: int) -> tuple[float, float] | None:
    """Smallest and largest minimal detectable difference of a family (80 % power, level α/m)."""
    values = [d.mdd(m) for d in diffs if d is not None and math.isfinite(d.se)]
    return (min(values), max(values)) if values else None
