"""The spectral estimator is right on clean signals; the engine enforces the model contract."""

import json

import numpy as np
import onnx
import pytest

from ppg_stream.stream.core.spectral_model import build_spectral_model, spectral_spec
from ppg_stream.replay.recording import Recording, uniform_times
from ppg_stream.replay.synthetic import synthesize
from ppg_stream.stream.core.chunk import ACC, PPG, Chunk
from ppg_stream.stream.core.decode import decode_logits
from ppg_stream.stream.core.engine import InferenceEngine, ModelLoadError
from ppg_stream.stream.core.model_spec import ModelSpec
from ppg_stream.stream.core.preprocess import StreamPreprocessor
from tests.models_for_tests import identity_model, with_metadata


def _estimate(engine, syn):
    pre = StreamPreprocessor(engine.spec, {PPG: syn.fs_ppg, ACC: syn.fs_acc})
    pre.push(Chunk(PPG, uniform_times(len(syn.ppg), syn.fs_ppg), syn.ppg[:, None]))
    pre.push(Chunk(ACC, uniform_times(len(syn.acc_g), syn.fs_acc), syn.acc_g))
    batch = pre.windows()
    bpm, conf = decode_logits(engine.run(batch.x), engine.spec.bins_bpm)
    return batch.k, bpm, conf


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spectral_estimator_is_right_on_clean_signals(seed):
    syn = synthesize(120, seed=seed, motion_share=0.0)
    k, bpm, conf = _estimate(InferenceEngine("spectral"), syn)
    err = np.abs(bpm - syn.labels_bpm[k])
    # 8 s windows: the spectral peak of a drifting HR sits within ~1-2 bpm of the window mean
    assert err.mean() < 1.5 and err.max() < 5.0
    assert conf.mean() > 0.6


def test_spectral_estimator_uses_the_accelerometer_against_motion():
    syn = synthesize(180, seed=8, motion_share=0.9, artefact_gain=2.0)
    engine = InferenceEngine("spectral")
    k, bpm, _ = _estimate(engine, syn)
    with_acc = np.abs(bpm - syn.labels_bpm[k]).mean()
    pre = StreamPreprocessor(engine.spec, {PPG: syn.fs_ppg})  # same PPG, accelerometer withheld
    pre.push(Chunk(PPG, uniform_times(len(syn.ppg), syn.fs_ppg), syn.ppg[:, None]))
    b = pre.windows()
    without, _ = decode_logits(engine.run(b.x), engine.spec.bins_bpm)
    without_acc = np.abs(without - syn.labels_bpm[b.k]).mean()
    assert with_acc < 3.0
    assert without_acc > 2 * with_acc


def test_metadata_round_trip_and_written_model_loads(tmp_path):
    from ppg_stream.stream.core.spectral_model import main

    main(["--out", str(tmp_path / "s.onnx")])
    engine = InferenceEngine(tmp_path / "s.onnx")
    spec = spectral_spec()
    assert engine.spec.fs == spec.fs and engine.spec.channels == spec.channels
    np.testing.assert_array_equal(engine.spec.bins_bpm, spec.bins_bpm)
    assert ModelSpec.from_metadata(spec.to_metadata()).bandpass_hz == (0.4, 4.0)


def test_decoding_finds_the_peak_and_reports_confidence():
    bins = np.arange(30.0, 211.0)
    logits = -0.5 * ((bins[None, :] - np.array([[72.4], [150.0]])) / 2.0) ** 2
    bpm, conf = decode_logits(logits, bins)
    np.testing.assert_allclose(bpm, [72.4, 150.0], atol=0.2)
    assert (conf > 0.95).all()
    flat_bpm, flat_conf = decode_logits(np.zeros((1, len(bins))), bins)
    assert flat_conf[0] < 0.1  # no information: low confidence


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"fs": None}, "lacks 'fs'"),
        ({"fs": "fast"}, "'fs' is not a number"),
        ({"channels": json.dumps(["acc_x"])}, "'channels' must be"),
        ({"bins_bpm": json.dumps([100, 90])}, "'bins_bpm' must be an increasing"),
        ({"preprocess": "{"}, "'preprocess' is not valid JSON"),
        ({"window_s": "4"}, "does not match metadata"),
        ({"ppg_stream.contract": "99"}, "contract '99'"),
    ],
)
def test_model_that_breaks_the_contract_is_refused_with_the_reason(tmp_path, changes, message):
    path = tmp_path / "bad.onnx"
    onnx.save(with_metadata(build_spectral_model(), **changes), path)
    with pytest.raises(ModelLoadError, match=message):
        InferenceEngine(path)


def test_output_shape_must_match_bins_and_files_must_be_onnx(tmp_path):
    onnx.save(identity_model(), tmp_path / "id.onnx")
    with pytest.raises(ModelLoadError, match="does not match 181 bins"):
        InferenceEngine(tmp_path / "id.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        InferenceEngine(tmp_path / "junk.onnx")
    with pytest.raises(ModelLoadError, match="no such model file"):
        InferenceEngine(tmp_path / "none.onnx")


def test_recording_without_accelerometer_still_estimates():
    syn = synthesize(60, seed=4, motion_share=0.0)
    rec = Recording("x", syn.ppg[:, None], uniform_times(len(syn.ppg), 64.0), 64.0, labels_bpm=syn.labels_bpm)
    engine = InferenceEngine("spectral")
    pre = StreamPreprocessor(engine.spec, {PPG: rec.fs_ppg})
    b = pre.feed(Chunk(PPG, rec.t_ppg, rec.ppg))
    bpm, _ = decode_logits(engine.run(b.x), engine.spec.bins_bpm)
    assert np.abs(bpm - syn.labels_bpm[b.k]).mean() < 1.5
