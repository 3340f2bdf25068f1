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


def fit_form(form: Form, n: np.ndarray, y: np.ndarray) -> Fit | None:
    """The best of several starts; None when it does not converge, or predicts a negative error in range."""
    from scipy.optimize import OptimizeWarning, curve_fit

    lower, upper = form.bounds(n)
    k = len(lower)
    if len(n) <= k:
        return None
    best = None
    for p0 in form.starts(n, y):
        p0 = np.clip(np.asarray(p0, dtype=float), np.asarray(lower) + 1e-12, np.asarray(upper) - 1e-12)
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)  # no covariance with as many points as parameters: fine
                coef, _ = curve_fit(form.fn, n, y, p0=p0, bounds=(lower, upper), maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        rss = float(np.sum((form.fn(n, *coef) - y) ** 2))
        if np.isfinite(rss) and (best is None or rss < best[1]):
            best = (coef, rss)
    if best is None:
        return None
    coef, rss = best
    grid = np.geomspace(n.min(), n.max(), 200)
    if np.any(form.fn(grid, *coef) < 0):
        return None
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
