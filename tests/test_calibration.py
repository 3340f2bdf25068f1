"""Calibration: ECE measures the gap between confidence and being right, a fitted temperature closes
it on an overconfident model, and a temperature baked into the head is what the exported file serves."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from ppg_stream.models.architectures import build  # noqa: E402
from ppg_stream.models.calibration import (  # noqa: E402
    apply_temperature,
    calibrated_probabilities,
    confidence_and_correct,
    expected_calibration_error,
    fit_temperature,
    reliability,
)
from ppg_stream.models.export import export  # noqa: E402
from ppg_stream.models.targets import training_spec  # noqa: E402
from ppg_stream.stream.core.student_spec import BINS_BPM, student_spec  # noqa: E402
from ppg_stream.stream.core.engine import InferenceEngine  # noqa: E402


def test_ece_is_zero_when_confidence_matches_the_hit_rate_and_grows_with_the_gap():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200_000)
    honest = rng.random(conf.size) < conf
    assert expected_calibration_error(conf, honest) < 0.01
    overconfident = rng.random(conf.size) < conf * 0.6
    assert abs(expected_calibration_error(conf, overconfident) - 0.4 * conf.mean()) < 0.01
    table = reliability(conf, honest)
    assert sum(table["count"]) == conf.size and all(abs(a - c) < 0.02 for a, c in zip(table["accuracy"], table["confidence"]))


def _overconfident_logits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A model that is right 60 % of the time (otherwise 20-40 bpm off) and always sure of itself."""
    hr = rng.uniform(60, 160, n)
    wrong = rng.random(n) < 0.4
    peak = hr + wrong * rng.choice([-1, 1], n) * rng.uniform(20, 40, n)
    logits = -0.5 * ((BINS_BPM[None, :] - peak[:, None]) / 1.0) ** 2  # a narrow, confident peak
    return logits, hr


@pytest.mark.slow
def test_a_fitted_temperature_softens_an_overconfident_model_and_lowers_its_ece():
    rng = np.random.default_rng(1)
    logits, hr = _overconfident_logits(4000, rng)
    conf, ok = confidence_and_correct(calibrated_probabilities(logits, 1.0), hr)
    assert conf.mean() > 0.95 and 0.55 < ok.mean() < 0.65
    t = fit_temperature(logits[:2000], hr[:2000])
    assert t > 1.5
    before = expected_calibration_error(conf[2000:], ok[2000:])
    conf_t, ok_t = confidence_and_correct(calibrated_probabilities(logits[2000:], t), hr[2000:])
    assert (ok_t == ok[2000:]).all()  # a temperature moves no peak
    assert expected_calibration_error(conf_t, ok_t) < 0.5 * before


def test_a_baked_in_temperature_is_what_onnxruntime_serves(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 4, 200)).astype(np.float32)
    model = build("resnet", training_spec(), 8, 2, seed=0).eval()
    with torch.no_grad():
        plain = model(torch.from_numpy(x)).numpy()
    apply_temperature(model, 2.5)
    path = tmp_path / "t.onnx"
    export(model, student_spec("t", "0", "-", "-"), path, check_windows=x)
    np.testing.assert_allclose(InferenceEngine(path).run(x), plain / 2.5, atol=1e-3)


def test_export_calibrate_without_a_cv_row_is_one_line(tmp_path, capsys):
    from ppg_stream.models.cli import main
    from ppg_stream.replay.synthetic import synthesize, write_synthetic_dalia

    dalia = tmp_path / "dalia"
    dalia.mkdir()
    for i in (1, 2):
        write_synthetic_dalia(dalia / f"S{i}.pkl", synthesize(40, seed=80 + i), subject=f"S{i}", with_chest=False)
    status = main(["export", "--ieee", "none", "--dalia", str(dalia), "--folds", "2", "--cache", str(tmp_path / "cache"), "--calibrate",
                   "--results", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "s.onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "--calibrate needs this configuration's CV row" in err[0], err
    assert not (tmp_path / "s.onnx").exists()


def _underconfident_logits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A model that is right 92 % of the time (otherwise 30 bpm off) with a wide, hesitant peak."""
    hr = rng.uniform(60, 160, n)
    wrong = rng.random(n) < 0.08
    peak = hr + wrong * 30.0 + rng.normal(0, 1.0, n)
    logits = -0.5 * ((BINS_BPM[None, :] - peak[:, None]) / 6.0) ** 2
    return logits, hr


def test_a_temperature_fitted_to_the_published_confidence_closes_an_underconfident_models_gap():
    from ppg_stream.models.calibration import fit_confidence_temperature

    rng = np.random.default_rng(3)
    logits, hr = _underconfident_logits(4000, rng)
    conf, ok = confidence_and_correct(calibrated_probabilities(logits[2000:], 1.0), hr[2000:])
    assert conf.mean() < ok.mean() - 0.1  # it is right more often than it says
    eces = {}
    for name, fit in (("nll", fit_temperature), ("confidence", fit_confidence_temperature)):
        t = fit(logits[:2000], hr[:2000])
        c, k = confidence_and_correct(calibrated_probabilities(logits[2000:], t), hr[2000:])
        eces[name] = expected_calibration_error(c, k)
    assert eces["confidence"] < 0.05 and eces["confidence"] < eces["nll"]  # on windows it was not fitted on
