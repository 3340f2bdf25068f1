"""Scaling laws on per-size means (models/scaling.py): known laws recovered from synthetic means,
sizes above the baseline left out, and a held-out size predicted by the right law."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from ppg_stream.models.scaling import SizeMean, fit_means, prediction_outcome  # noqa: E402

SIZES = np.geomspace(1e3, 4e5, 7)


def _points(fn, sd=0.02, n=3):
    return [SizeMean(float(p), float(fn(p)), sd, n) for p in SIZES]


def test_known_exponential_parameters_are_recovered_and_it_predicts_held_out_sizes_best():
    mf = fit_means(_points(lambda n: 3.0 * np.exp(-n / 2e4) + 1.5))
    a, s, c = mf.fits["exponential"].coef
    assert a == pytest.approx(3.0, rel=1e-3) and s == pytest.approx(2e4, rel=1e-3) and c == pytest.approx(1.5, abs=1e-3)
    assert mf.loo_error("exponential") < 1e-3
    assert prediction_outcome(mf, "exponential") == "best"
    predicted, measured = mf.largest("exponential")
    assert predicted == pytest.approx(measured, abs=1e-3)  # extrapolated from the six smaller sizes


def test_known_power_law_with_floor_is_recovered_and_beats_the_exponential_out_of_sample():
    mf = fit_means(_points(lambda n: 9.0 * n**-0.35 + 1.2))
    np.testing.assert_allclose(mf.fits["power+floor"].coef, [9.0, 0.35, 1.2], rtol=1e-3)
    assert prediction_outcome(mf, "power+floor") == "best"
    assert prediction_outcome(mf, "exponential") == "worse"


def test_sizes_above_the_baseline_are_left_out_and_kept_for_the_record():
    pts = _points(lambda n: 2.0 - 0.1 * np.log(n / 1e3))
    pts[0] = SizeMean(pts[0].params, 20.0, 1.0, 2)  # a student that did not learn
    mf = fit_means(pts, ceiling=6.0)
    assert [p.params for p in mf.excluded] == [SIZES[0]]
    assert len(mf.points) == 6
    np.testing.assert_allclose(mf.fits["log-linear"].coef, [2.0 + 0.1 * np.log(1e3), 0.1], rtol=1e-6)


def test_too_few_sizes_give_no_fit_rather_than_an_exact_curve():
    mf = fit_means(_points(lambda n: 3.0 * np.exp(-n / 2e4) + 1.5)[:3])
    assert "exponential" not in mf.fits  # three means for three coefficients: no residual, no law
    assert "power" in mf.fits
    assert mf.loo_error("exponential") is None  # refitting it on two sizes is impossible
