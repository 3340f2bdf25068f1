"""The published confidence's calibration (issue 22, item 4): a monotone map carried in the model's metadata,
applied after the tracker and the cues, so the bpm never moves; fitted by `ppg-distill calibrate-confidence` on a
CV's held-out probabilities and written into a model file without touching its weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from scipy.io import savemat

from ppg_stream.models.across import LabelledRecording, publish
from ppg_stream.models.calibration import cross_fitted_map, expected_calibration_error, fit_confidence_map
from ppg_stream.models.published_confidence import write_confidence_map
from ppg_stream.replay.synthetic import synthesize
from ppg_stream.stream.core.confidence_map import ConfidenceMap
from ppg_stream.stream.core.decode import softmax
from ppg_stream.stream.core.engine import InferenceEngine, ModelLoadError
from ppg_stream.stream.core.model_spec import ModelContractError, ModelSpec
from ppg_stream.stream.core.spectral_model import build_spectral_model, spectral_spec
from tests.conftest import ROOT, run_cli
from tests.models_for_tests import with_metadata


def distill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ppg_stream.models.cli", *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def spectral_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "spectral.onnx"
    onnx.save(build_spectral_model(), str(path))
    return path


def test_the_map_keeps_the_order_and_brings_an_overconfident_set_to_its_hit_rate():
    """Held-out windows published at 0.8-1.0 but right only 0.6-0.8 of the time: the cross-fitted map (no window
    calibrates itself) lowers their ECE several-fold and never reorders two windows."""
    rng = np.random.default_rng(0)
    conf = [rng.uniform(0.8, 1.0, 3000) for _ in range(4)]
    right = [rng.random(c.size) < c - 0.2 for c in conf]
    fit = cross_fitted_map(conf, right)
    assert fit["ece"] > 0.15 and fit["ece_calibrated"] < 0.03 and fit["ece"] > 5 * fit["ece_calibrated"]
    grid = np.linspace(0.0, 1.0, 1001)
    for m in (fit["map"], *fit["fold_maps"]):
        assert m.a > 0 and np.all(np.diff(m(grid)) > 0)
        assert np.all((m(grid) > 0) & (m(grid) < 1))


def test_a_set_where_every_window_is_right_gets_a_finite_map():
    m = fit_confidence_map(np.full(50, 0.7), np.ones(50, dtype=bool))
    assert 0.7 < float(m(np.array([0.7]))[0]) < 1.0 and np.isfinite([m.a, m.b]).all()


def test_the_key_round_trips_through_the_model_file_and_leaves_the_weights(spectral_file, tmp_path):
    out = tmp_path / "calibrated.onnx"
    fitted = ConfidenceMap(0.6180339887498949, -0.3141592653589793)
    write_confidence_map(spectral_file, out, fitted, {"ece": 0.07})
    engine, before = InferenceEngine(str(out)), InferenceEngine(str(spectral_file))
    assert engine.spec.confidence_map == fitted  # every digit: the file serves the fitted map
    assert before.spec.confidence_map is None
    assert json.loads(engine.spec.extra["confidence_map_fit"]) == {"ece": 0.07}
    assert onnx.load(str(out)).graph.SerializeToString() == onnx.load(str(spectral_file)).graph.SerializeToString()
    x = np.random.default_rng(1).standard_normal((3, 4, spectral_spec().window_samples)).astype(np.float32)
    np.testing.assert_array_equal(engine.run(x), before.run(x))


@pytest.mark.parametrize("text, message", [
    ("temperature:0.7", "'confidence_map' must be \"platt:a,b\""),
    ("platt:1", "two numbers, got 1"),
    ("platt:a,b", "with two numbers"),
    ("platt:-1,0", "slope a must be"),
    ("platt:0,0", "slope a must be"),
    ("platt:nan,0", "slope a must be"),
    ("platt:1,inf", "offset b must be"),
    ("platt:1," + "9" * 300, "must be \"platt:a,b\""),
])
def test_a_bad_map_is_refused_by_key_when_the_model_loads(spectral_file, tmp_path, text, message):
    with pytest.raises(ModelContractError, match=message):
        ModelSpec.from_metadata({**spectral_spec().to_metadata(), "confidence_map": text})
    bad = tmp_path / "bad.onnx"
    onnx.save(with_metadata(onnx.load(str(spectral_file)), confidence_map=text), str(bad))
    with pytest.raises(ModelLoadError, match="confidence_map"):
        InferenceEngine(str(bad))


def test_publishing_moves_only_the_confidence(synthetic_60s):
    """Through the accuracy harness's path (the runtime's estimate_windows): with no map the confidence is what the
    tracker and the cues give; with one, every bpm is the same and every confidence is the map of the old one."""
    from ppg_stream.models.dataset import labelled_windows
    from ppg_stream.models.targets import TRAINING_SPEC
    from ppg_stream.replay.load import load_recording

    w = labelled_windows(load_recording(synthetic_60s.path), TRAINING_SPEC)
    rec = LabelledRecording("synthetic", "syn60", "mixed", w.x, w.k, w.hr_bpm.astype(np.float64))
    probs = softmax(InferenceEngine("student").run(np.ascontiguousarray(w.x, dtype=np.float32)))
    m = ConfidenceMap(0.5, -1.0)
    plain, mapped = publish(rec, probs.copy()), publish(rec, probs.copy(), confidence_map=m)
    np.testing.assert_array_equal(plain.bpm, mapped.bpm)
    np.testing.assert_allclose(mapped.confidence, m(plain.confidence))
    assert not np.allclose(mapped.confidence, plain.confidence)


@pytest.mark.slow
def test_the_stream_publishes_the_calibrated_confidence_and_reliable_follows_it(tmp_path, synthetic_60s):
    """`ppg-stream --replay` with the shipped student, then with a copy carrying a map that lowers every confidence:
    the same bpm in every message, the confidence mapped, and `reliable` (≥ --min-confidence) read on the mapped value."""
    shipped = ROOT / "stream" / "core" / "student.onnx"
    calibrated = tmp_path / "student-calibrated.onnx"
    m = ConfidenceMap(1.0, -3.0)
    write_confidence_map(shipped, calibrated, m, {})
    runs = [run_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--no-mqtt", "--stdout", "--model", str(path), "--min-confidence", "0.5")
            for path in (shipped, calibrated)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    plain, mapped = (r.messages for r in runs)
    assert len(plain) == len(mapped) == synthetic_60s.n_windows
    assert [p["bpm"] for p in plain] == [q["bpm"] for q in mapped]
    shown, got = np.array([p["confidence"] for p in plain]), np.array([q["confidence"] for q in mapped])
    assert np.all((m(shown - 5e-4) - 5e-4 <= got) & (got <= m(shown + 5e-4) + 5e-4))  # messages round to 3 decimals
    assert [q["reliable"] for q in mapped] == [q["confidence"] >= 0.5 for q in mapped]
    assert sum(p["reliable"] for p in plain) > sum(q["reliable"] for q in mapped)


def _ieee_folder(directory: Path, n: int = 4) -> Path:
    """`n` short recordings in IEEE SPC 2015's training layout (6 rows at 125 Hz, labels beside them)."""
    directory.mkdir()
    for i in range(1, n + 1):
        syn = synthesize(40, seed=20 + i)
        t125 = np.arange(int(40 * 125)) / 125
        ppg = np.interp(t125, np.arange(len(syn.ppg)) / 64, syn.ppg)
        acc = np.stack([np.interp(t125, np.arange(len(syn.acc_g)) / 32, syn.acc_g[:, j]) for j in range(3)])
        name = f"DATA_{i:02d}_TYPE02"
        savemat(directory / f"{name}.mat", {"sig": np.vstack([ppg, ppg, ppg, acc])})
        savemat(directory / f"{name}_BPMtrace.mat", {"BPM0": syn.labels_bpm[:, None]})
    return directory


def _held_out_probs(ieee: Path, directory: Path) -> Path:
    """What devices-train --cv-probs writes, from the spectral estimator: <subject>.npy softmax rows per recording."""
    from ppg_stream.models.across import ieee_set

    directory.mkdir()
    engine = InferenceEngine("spectral")
    for rec in ieee_set(ieee):
        np.save(directory / f"{rec.name}.npy", softmax(engine.run(np.ascontiguousarray(rec.x, dtype=np.float32))))
    return directory


@pytest.mark.slow
def test_calibrate_confidence_writes_the_map_and_says_what_it_did(tmp_path, spectral_file):
    ieee = _ieee_folder(tmp_path / "ieee")
    probs = _held_out_probs(ieee, tmp_path / "cv")
    out = tmp_path / "calibrated.onnx"
    result = distill("calibrate-confidence", "--model", str(spectral_file), "--cv-probs", str(probs), "--ieee", str(ieee),
                     "--wrist", str(tmp_path / "none"), "--folds", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "2 folds, 4 held-out recordings" in result.stdout and "IEEE SPC 2015 (held out, cross-fitted): " in result.stdout
    assert "ECE " in result.stdout and "confidence >= 0.9 within 10 bpm" in result.stdout and "(every bpm unchanged)" in result.stdout
    assert "off the training device: skipped" in result.stdout  # no wrist folder here
    spec = InferenceEngine(str(out)).spec
    assert spec.confidence_map is not None and f"confidence_map {spec.confidence_map.to_metadata()}" in result.stdout
    assert InferenceEngine(str(spectral_file)).spec.confidence_map is None  # --out: the model itself is left as it was
    before = spectral_file.read_bytes()
    dry = distill("calibrate-confidence", "--model", str(spectral_file), "--cv-probs", str(probs), "--ieee", str(ieee),
                  "--wrist", str(tmp_path / "none"), "--folds", "2")
    assert dry.returncode == 0 and "not written (no --out)" in dry.stdout
    assert spectral_file.read_bytes() == before  # without --out the figures come, and nothing is written


@pytest.mark.slow
def test_calibrate_confidence_refuses_bad_input_in_one_line(tmp_path, spectral_file):
    ieee = _ieee_folder(tmp_path / "ieee", n=2)
    probs = _held_out_probs(ieee, tmp_path / "cv")
    common = ("--ieee", str(ieee), "--wrist", str(tmp_path / "none"), "--folds", "2")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    (tmp_path / "empty").mkdir()
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    np.save(wrong / "DATA_01_TYPE02.npy", np.full((3, 181), 1 / 181))
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    np.save(unknown / "DATA_99_TYPE01.npy", np.full((3, 181), 1 / 181))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "DATA_01_TYPE02.npy").write_bytes(b"\x93NUMPY garbage")
    cases = [
        ((str(tmp_path / "nope.onnx"), str(probs)), "no such file"),
        ((str(garbage), str(probs)), "not a loadable ONNX model"),
        ((str(spectral_file), str(tmp_path / "missing")), "no such folder"),
        ((str(spectral_file), str(tmp_path / "empty")), "no <subject>.npy files"),
        ((str(spectral_file), str(wrong)), "DATA_01_TYPE02.npy: expected"),
        ((str(spectral_file), str(unknown)), "no recording 'DATA_99_TYPE01'"),
        ((str(spectral_file), str(corrupt)), "not a readable .npy array"),
    ]
    for (model, cv), message in cases:
        result = distill("calibrate-confidence", "--model", model, "--cv-probs", cv, *common, "--out", str(tmp_path / "out.onnx"))
        assert result.returncode != 0 and result.stderr.count("\n") == 1 and message in result.stderr, (message, result.stderr)
    result = distill("calibrate-confidence", "--model", str(spectral_file), "--cv-probs", str(probs), *common[:-2], "--folds", "1")
    assert result.returncode == 2 and "--folds 1: at least 2" in result.stderr and result.stderr.count("\n") == 1
    saw_wrist = tmp_path / "saw-wrist.onnx"
    onnx.save(with_metadata(onnx.load(str(spectral_file)), training_data="Wrist PPG During Exercise (8 recordings)"), str(saw_wrist))
    result = distill("calibrate-confidence", "--model", str(saw_wrist), "--cv-probs", str(probs), *common, "--fit-on-wrist")
    assert result.returncode == 2 and "its outputs there are not held out" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out.onnx").exists()
