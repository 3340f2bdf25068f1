"""The front end's taper: the exported graph computes what torch computes for either taper, a
rectangular window sharpens the heart-rate peak, and an export whose graph disagrees with torch fails."""

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from ppg_stream.models.architectures import build  # noqa: E402
from ppg_stream.models.export import ExportMismatch, export  # noqa: E402
from ppg_stream.stream.core.spectral_model import build_spectral_model, spectral_spec  # noqa: E402
from ppg_stream.models.spectral_front import SpectralFront  # noqa: E402
from ppg_stream.models.targets import training_spec  # noqa: E402
from ppg_stream.stream.core.student_spec import student_spec  # noqa: E402
from ppg_stream.stream.core.engine import InferenceEngine  # noqa: E402
from tests.conftest import make_synthetic_file  # noqa: E402


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    """Real model inputs: a synthetic recording with motion pushed through the stream's preprocessing."""
    from ppg_stream.models.dataset import labelled_windows
    from ppg_stream.replay.load import load_recording

    rec = make_synthetic_file(tmp_path_factory.mktemp("taper"), "t", 60.0, seed=31)
    return labelled_windows(load_recording(rec.path), training_spec()).x


@pytest.mark.parametrize("taper", ["hann", "rect"])
def test_torch_and_onnxruntime_agree_for_each_taper(taper, windows, tmp_path):
    model = build("resnet", training_spec(taper), 8, 2, seed=0).eval()
    path = tmp_path / f"{taper}.onnx"
    diff = export(model, student_spec("t", "0", "-", "-", taper=taper), path, check_windows=windows)
    assert diff < 1e-3
    engine = InferenceEngine(path)
    assert engine.spec.taper == taper
    with torch.no_grad():
        np.testing.assert_allclose(engine.run(windows[:8]), model(torch.from_numpy(windows[:8])).numpy(), atol=1e-3)


def test_the_two_tapers_are_different_models(windows):
    """Same weights, other taper: different logits (so the metadata key matters)."""
    hann = build("resnet", training_spec("hann"), 8, 2, seed=0).eval()
    rect = build("resnet", training_spec("rect"), 8, 2, seed=0).eval()
    rect.load_state_dict({k: v for k, v in hann.state_dict().items() if k != "front.dft"}, strict=False)
    with torch.no_grad():
        x = torch.from_numpy(windows[:8])
        assert (hann(x) - rect(x)).abs().max() > 0.1


def _peak_width(features: np.ndarray, bins: np.ndarray) -> float:
    """Width in bpm of the PPG spectrum's main peak at half power (feature row 0 is log relative power)."""
    rel = np.exp(features[0])
    return float(np.sum(rel >= 0.5) * (bins[1] - bins[0]))


def test_a_rectangular_taper_narrows_the_heart_rate_peak():
    spec = training_spec()
    t = np.arange(spec.window_samples) / spec.fs
    x = np.zeros((1, 4, spec.window_samples), dtype=np.float32)
    x[0, 0] = np.sin(2 * np.pi * 1.3 * t)  # 78 bpm, no motion
    widths = {}
    for taper in ("hann", "rect"):
        with torch.no_grad():
            feats = SpectralFront(training_spec(taper))(torch.from_numpy(x))[0].numpy()
        bins = spec.bins_bpm
        assert abs(bins[np.argmax(feats[0])] - 78) <= 1
        widths[taper] = _peak_width(feats, bins)
    assert widths["rect"] < 0.75 * widths["hann"], widths


def test_no_motion_means_the_same_accelerometer_amplitude_for_either_taper():
    """A faint wrist tremor stays under the floor for both tapers: motion evidence does not depend on it."""
    spec = training_spec()
    t = np.arange(spec.window_samples) / spec.fs
    x = np.zeros((1, 4, spec.window_samples), dtype=np.float32)
    x[0, 0] = np.sin(2 * np.pi * 1.3 * t)
    x[0, 1] = 0.02 * np.sin(2 * np.pi * 1.3 * t)  # 0.02 g at the HR: below the "no motion" floor
    for taper in ("hann", "rect"):
        with torch.no_grad():
            acc_rel = np.exp(SpectralFront(training_spec(taper))(torch.from_numpy(x))[0, 1].numpy())
        assert acc_rel.max() < 0.5, taper


def test_the_spectral_estimator_follows_its_taper_and_rect_is_closer_at_rest(tmp_path):
    """At rest the error of a spectral peak is its width's floor: the narrower rectangular peak is closer."""
    import onnx

    from ppg_stream.models.dataset import labelled_windows
    from ppg_stream.replay.load import load_recording
    from ppg_stream.stream.core.decode import decode_logits

    spec = spectral_spec()
    errors = {}
    for taper in ("hann", "rect"):
        sets = [labelled_windows(load_recording(make_synthetic_file(tmp_path, f"r{seed}", 90.0, seed=seed, motion_share=0.0).path), spec)
                for seed in (41, 42, 43)]
        path = tmp_path / f"spectral-{taper}.onnx"
        onnx.save(build_spectral_model(replace(spec, extra={**spec.extra, "taper": taper})), path)
        engine = InferenceEngine(path)
        assert engine.spec.taper == taper
        err = [np.abs(decode_logits(engine.run(w.x), spec.bins_bpm)[0] - w.hr_bpm) for w in sets]
        errors[taper] = float(np.concatenate(err).mean())
    assert errors["rect"] < errors["hann"], errors


def test_an_export_whose_graph_disagrees_with_torch_fails_and_keeps_the_old_file(windows, tmp_path):
    model = build("resnet", training_spec("hann"), 8, 2, seed=0).eval()
    path = tmp_path / "student.onnx"
    path.write_bytes(b"the model in service")
    with pytest.raises(ExportMismatch, match="disagree"):
        export(model, student_spec("t", "0", "-", "-", taper="rect"), path, check_windows=windows)
    assert path.read_bytes() == b"the model in service"
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.slow
def test_export_command_exits_1_with_one_line_when_the_graph_disagrees(tmp_path, monkeypatch, capsys):
    """`ppg-distill export` used to print the mismatch and exit 0; now the command fails and writes nothing."""
    import ppg_stream.models.export as export_module
    from ppg_stream.models.cli import main
    from ppg_stream.replay.synthetic import synthesize, write_synthetic_dalia

    dalia = tmp_path / "dalia"
    dalia.mkdir()
    for i in (1, 2):
        write_synthetic_dalia(dalia / f"S{i}.pkl", synthesize(40, seed=70 + i), subject=f"S{i}", with_chest=False)
    real_front = export_module.front_graph
    # a deliberately mismatched exporter: the graph's front end uses the other taper
    monkeypatch.setattr(export_module, "front_graph", lambda spec: real_front(replace(spec, extra={**spec.extra, "taper": "rect"})))
    out = tmp_path / "student.onnx"
    status = main(["export", "--ieee", "none", "--dalia", str(dalia), "--folds", "2", "--cache", str(tmp_path / "cache"),
                   "--student", "resnet:4x1", "--epochs", "1", "--threads", "1", "--results", str(tmp_path / "r.jsonl"), "--out", str(out)])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip() and "BinResNet" not in line]  # minus the progress bar
    assert status == 1
    assert len(err) == 1 and err[0].startswith("ppg-distill: error:") and "disagree" in err[0], err
    assert not out.exists() and not out.with_suffix(".md").exists()
