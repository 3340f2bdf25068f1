"""Scaling laws of error against model size: four candidate forms, fitted by least squares, compared by AIC.

  power law with floor  MAE = a·N^(−b) + c
  pure power law        MAE = a·N^(−b)
  log-linear            MAE = a − b·ln N
  exponential           MAE = a·exp(−N/s) + c   (s: the size over which the excess error falls by e)

An exponential in ln N rather than N is a·exp(−b·ln N) + c = a·N^(−b) + c, the power law with floor,
so "exponential in log-parameters" is already the first form. Every repeat (seed, fold split) is a
point, so the residuals carry the seed noise and AIC (n·ln(RSS/n) + 2k) weighs the extra parameters
against it. Coefficients are kept physical (a, b, s > 0, floor c ≥ 0), and a fit that predicts a
negative error anywhere in the range it was fitted on is rejected. Forms within 2 AIC of each other
are not told apart.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

AIC_TIE = 2.0  # an AIC difference below this does not separate two forms


@dataclass(frozen=True)
class Form:
    name: str
    formula: str
    fn: Callable[..., np.ndarray]  # fn(n, *coef)
    starts: Callable[[np.ndarray, np.ndarray], list[tuple[float, ...]]]  # starting points from the data
    bounds: Callable[[np.ndarray], tuple[list[float], list[float]]]


def _power_floor(n, a, b, c):
    return a * n ** (-b) + c


def _power(n, a, b):
    return a * n ** (-b)


def _log_linear(n, a, b):
    return a - b * np.log(n)


def _exponential(n, a, s, c):
    return a * np.exp(-n / s) + c


def _power_starts(n, y):
    return [(max(y.max(), 1e-3) * n.min() ** b, b, c) for b in (0.2, 0.5, 1.0) for c in (0.0, 0.8 * y.min())]


def _exp_starts(n, y):
    scales = np.geomspace(n.min(), n.max(), 5)
    floor = 0.9 * y.min()
    return [(max(y.max() - floor, 1e-3) * math.exp(n.min() / s), float(s), floor) for s in scales]


FORMS: dict[str, Form] = {
    "power+floor": Form("power+floor", "a·N^(−b) + c", _power_floor, _power_starts,
                        lambda n: ([0.0, 0.0, 0.0], [np.inf, 5.0, np.inf])),
    "power": Form("power", "a·N^(−b)", _power, lambda n, y: [s[:2] for s in _power_starts(n, y)[::2]],
                  lambda n: ([0.0, 0.0], [np.inf, 5.0])),
    "log-linear": Form("log-linear", "a − b·ln N", _log_linear, lambda n, y: [(float(y.mean() + 0.1 * np.log(n).mean()), 0.1)],
                       lambda n: ([-np.inf, -np.inf], [np.inf, np.inf])),
    "exponential": Form("exponential", "a·exp(−N/s) + c", _exponential, _exp_starts,
                        lambda n: ([0.0, n.min() / 100, 0.0], [np.inf, n.max() * 100, np.inf])),
}


@dataclass(frozen=True)
class Fit:
    form: str
    coef: tuple[float, ...]
    rss: float
    aic: float
    n_min: float  # the range of sizes it was fitted on: draw and quote it only there
    n_max: float

    def predict(self, n: np.ndarray) -> np.ndarray:
        return FORMS[self.form].fn(np.asarray(n, dtype=float), *self.coef)


def aic(rss: float, n_points: int, k: int) -> float:
    """Least-squares AIC with Gaussian residuals: n·ln(RSS/n) + 2k."""
    return n_points * math.log(max(rss, 1e-12) / n_points) + 2 * k


def _least_squares(form: Form, n: np.ndarray, y: np.ndarray, sigma: np.ndarray | None) -> tuple[np.ndarray, float] | None:
    """The best of several starts of `form` fitted to (n, y), weighted by 1/σ² where `sigma` is given:
    (coefficients, residual sum of squares in σ units); None when no start converges or the curve goes
    below zero error within the sizes fitted."""
    from scipy.optimize import OptimizeWarning, curve_fit

    lower, upper = form.bounds(n)
    scale = np.ones_like(y) if sigma is None else sigma
    best = None
    for p0 in form.starts(n, y):
        p0 = np.clip(np.asarray(p0, dtype=float), np.asarray(lower) + 1e-12, np.asarray(upper) - 1e-12)
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)  # no covariance with as many points as parameters: fine
                coef, _ = curve_fit(form.fn, n, y, p0=p0, sigma=sigma, bounds=(lower, upper), maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        rss = float(np.sum(((form.fn(n, *coef) - y) / scale) ** 2))
        if np.isfinite(rss) and (best is None or rss < best[1]):
            best = (coef, rss)
    if best is None or np.any(form.fn(np.geomspace(n.min(), n.max(), 200), *best[0]) < 0):
        return None
    return best


def fit_form(form: Form, n: np.ndarray, y: np.ndarray) -> Fit | None:
    """The best of several starts; None when it does not converge, or predicts a negative error in range."""
    k = len(form.bounds(n)[0])
    if len(n) <= k or (found := _least_squares(form, n, y, None)) is None:
        return None
    coef, rss = found
    return Fit(form.name, tuple(float(c) for c in coef), rss, aic(rss, len(n), k), float(n.min()), float(n.max()))


def fit_scaling(params: np.ndarray, mae: np.ndarray) -> dict[str, Fit]:
    """Every form that fits these points (one point per repeat), keyed by form name."""
    n = np.asarray(params, dtype=float)
    y = np.asarray(mae, dtype=float)
    fits = {name: fit_form(form, n, y) for name, form in FORMS.items()}
    return {name: fit for name, fit in fits.items() if fit is not None}


def best_form(fits: dict[str, Fit]) -> str | None:
    return min(fits, key=lambda f: fits[f].aic) if fits else None


def form_outcome(fits: dict[str, Fit], form: str) -> str:
    """Is `form` the law of these points? 'best' (ahead of every other form by ≥ 2 AIC), 'worse'
    (another form ahead of it by ≥ 2), 'tie' (within 2 of the best), 'no fit'."""
    if form not in fits:
        return "no fit"
    others = [f.aic for name, f in fits.items() if name != form]
    mine = fits[form].aic
    if not others or mine <= min(others) - AIC_TIE:
        return "best"
    if min(others) <= mine - AIC_TIE:
        return "worse"
    return "tie"


def describe(fit: Fit) -> str:
    """Coefficients as a readable formula, e.g. `1.4·exp(−N/3,200) + 1.6`."""
    c = fit.coef
    if fit.form == "power+floor":
        return f"{c[0]:.3g}·N^(−{c[1]:.3g}) + {c[2]:.3g}"
    if fit.form == "power":
        return f"{c[0]:.3g}·N^(−{c[1]:.3g})"
    if fit.form == "log-linear":
        return f"{c[0]:.3g} − {c[1]:.3g}·ln N"
    return f"{c[0]:.3g}·exp(−N/{c[1]:,.0f}) + {c[2]:.3g}"


# --- laws fitted on per-size means, tested on a held-out size ------------------------------------------

@dataclass(frozen=True)
class SizeMean:
    """One student size of a series: its mean error over the runs behind it and their spread."""

    params: float
    mean: float
    sd: float | None  # over runs (seeds); None with one run
    n: int  # runs behind the mean

    @property
    def se(self) -> float | None:
        return None if self.sd is None else self.sd / math.sqrt(self.n)


def _sigmas(points: list[SizeMean]) -> np.ndarray:
    """Each mean's standard error, floored at the series' median (two seeds can agree by chance, and a
    size with one run borrows the median), so no single size dominates a weighted fit."""
    known = [p.se for p in points if p.se]
    floor = float(np.median(known)) if known else 0.1
    return np.array([max(p.se or floor, floor) for p in points])


def fit_form_weighted(form: Form, n: np.ndarray, y: np.ndarray, sigma: np.ndarray, exact: bool = False) -> Fit | None:
    """`fit_form` on means weighted by 1/σ²; `exact` allows as many points as coefficients (an
    interpolation, used only to predict a held-out size). RSS is the weighted χ²."""
    k = len(form.bounds(n)[0])
    if len(n) < k or (len(n) == k and not exact) or (found := _least_squares(form, n, y, sigma)) is None:
        return None
    coef, chi2 = found
    return Fit(form.name, tuple(float(c) for c in coef), chi2, aicc(chi2, len(n), k), float(n.min()), float(n.max()))


def aicc(chi2: float, n_points: int, k: int) -> float:
    """AIC with the small-sample correction, χ² + 2k + 2k(k+1)/(n−k−1); inf where n ≤ k+1 (no verdict)."""
    if n_points - k - 1 <= 0:
        return math.inf
    return chi2 + 2 * k + 2 * k * (k + 1) / (n_points - k - 1)


@dataclass(frozen=True)
class MeanFits:
    """Every form fitted to a series' per-size means, the sizes left out, and each form's prediction of
    every included size from the others (leave one size out)."""

    points: list[SizeMean]  # included in the fit
    excluded: list[SizeMean]  # above the baseline: shown, not fitted
    fits: dict[str, Fit]
    held_out: dict[str, list[tuple[float, float]]]  # form → [(params, predicted)] for each included size

    def loo_error(self, form: str) -> float | None:
        """Mean |predicted − measured| over the held-out sizes (None if the form predicts none)."""
        measured = {p.params: p.mean for p in self.points}
        errors = [abs(pred - measured[n]) for n, pred in self.held_out.get(form, [])]
        return float(np.mean(errors)) if errors else None

    def largest(self, form: str) -> tuple[float, float] | None:
        """(predicted, measured) of the largest included size, fitted on the smaller ones only."""
        if not self.points:
            return None
        top = self.points[-1].params
        pred = dict(self.held_out.get(form, [])).get(top)
        return None if pred is None else (pred, self.points[-1].mean)


def fit_means(points: list[SizeMean], ceiling: float | None = None) -> MeanFits:
    """Fit every form to the means of the sizes whose error is below `ceiling` (the baseline: a
    student above it has not learnt, and would drag any law); predict each included size from the rest."""
    points = sorted(points, key=lambda p: p.params)
    included = [p for p in points if ceiling is None or p.mean < ceiling]
    excluded = [p for p in points if p not in included]
    n = np.array([p.params for p in included], float)
    y = np.array([p.mean for p in included], float)
    sigma = _sigmas(included) if included else np.array([])
    fits, held = {}, {}
    for name, form in FORMS.items():
        fit = fit_form_weighted(form, n, y, sigma) if len(included) else None
        if fit is not None:
            fits[name] = fit
        predictions = []
        for i in range(len(included)):
            keep = np.arange(len(included)) != i
            partial = fit_form_weighted(form, n[keep], y[keep], sigma[keep], exact=True) if keep.sum() else None
            if partial is not None:
                predictions.append((float(n[i]), float(partial.predict(np.array([n[i]]))[0])))
        if predictions:
            held[name] = predictions
    return MeanFits(included, excluded, fits, held)


PREDICTION_TIE = 0.10  # forms whose held-out errors are within 10 % of each other are not told apart


def prediction_outcome(mf: MeanFits, form: str) -> str:
    """'best' (lowest leave-one-size-out error, ahead of every other form by more than 10 %), 'worse'
    (another form ahead of it by more than that), 'tie', or 'no fit'."""
    mine = mf.loo_error(form)
    others = [e for name in FORMS if name != form for e in [mf.loo_error(name)] if e is not None]
    if mine is None:
        return "no fit"
    if not others:
        return "best"
    if mine < min(others) * (1 - PREDICTION_TIE):
        return "best"
    if min(others) < mine * (1 - PREDICTION_TIE):
        return "worse"
    return "tie"
