"""When is a difference between two configurations real? Paired differences over shared repeats.

A repeat is one cross-validation of a configuration: a seed on a fold split (4-fold or 12-fold
leave-one-subject-out). Two configurations run with the same seed on the same split share their
held-out subjects and their students' initial weights, so their difference on that repeat is free of
both; the spread of those differences over repeats is the noise left. A winner is called only when
the 95 % confidence interval of the mean difference (Student t) excludes zero; otherwise it is a tie.
One shared repeat gives no interval at all: a tie until more are run.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


def repeat_of(row: dict) -> tuple[int, int]:
    """(fold split, seed): the unit two configurations are paired on."""
    return int(row.get("folds", 4)), int(row.get("seed", 0))


def per_repeat(runs: list[dict], metric: str = "mae") -> dict[tuple[int, int], float]:
    """Metric per repeat (runs of one configuration; duplicates of a repeat are averaged)."""
    values = defaultdict(list)
    for r in runs:
        if r.get(metric) is not None:
            values[repeat_of(r)].append(float(r[metric]))
    return {unit: float(np.mean(v)) for unit, v in values.items()}


def t_half_width(values: np.ndarray) -> float:
    """95 % confidence half-width of the mean of `values` (inf with fewer than two)."""
    n = len(values)
    if n < 2:
        return math.inf
    from scipy.stats import t

    return float(t.ppf(0.5 + CONFIDENCE / 2, n - 1) * np.std(values, ddof=1) / math.sqrt(n))


def signed(value: float, digits: int = 2) -> str:
    """`+0.42` / `−0.42` (a true minus sign, as in the tables' other figures)."""
    return f"{value:+.{digits}f}".replace("-", "−")


@dataclass(frozen=True)
class Difference:
    """Mean of (A − B) over shared repeats and its 95 % confidence half-width."""

    mean: float
    half_width: float
    n: int

    @property
    def outcome(self) -> str:
        """'lower' (A below B beyond the noise), 'higher', or 'tie'."""
        if self.n >= 2 and self.mean + self.half_width < 0:
            return "lower"
        if self.n >= 2 and self.mean - self.half_width > 0:
            return "higher"
        return "tie"

    def text(self, unit: str = "", digits: int = 2) -> str:
        """`−0.42 ± 0.21 (n=4)`; `−0.42 (n=1)` when there is no interval."""
        spread = f" ± {self.half_width:.{digits}f}" if math.isfinite(self.half_width) else ""
        return f"{signed(self.mean, digits)}{spread}{unit} (n={self.n})"


def paired_difference(a: list[dict], b: list[dict], metric: str = "mae") -> Difference | None:
    """A − B over the repeats both ran; None when they share none."""
    va, vb = per_repeat(a, metric), per_repeat(b, metric)
    shared = sorted(set(va) & set(vb))
    if not shared:
        return None
    d = np.array([va[u] - vb[u] for u in shared])
    return Difference(float(d.mean()), t_half_width(d), len(d))


def relative_gain(strategy: list[dict], scratch: list[dict], metric: str = "mae") -> Difference | None:
    """(scratch − strategy) / scratch per shared repeat: the share of scratch's error distillation removes."""
    vs, v0 = per_repeat(strategy, metric), per_repeat(scratch, metric)
    shared = sorted(set(vs) & set(v0))
    if not shared:
        return None
    g = np.array([(v0[u] - vs[u]) / v0[u] for u in shared])
    return Difference(float(g.mean()), t_half_width(g), len(g))


def welch_difference(a: np.ndarray, b: np.ndarray) -> Difference | None:
    """Mean(a) − mean(b) for unpaired samples (Welch's t interval); None if either has fewer than two."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else len(a) + len(b) - 2
    from scipy.stats import t

    return Difference(float(a.mean() - b.mean()), float(t.ppf(0.5 + CONFIDENCE / 2, dof) * se), len(a) + len(b))
