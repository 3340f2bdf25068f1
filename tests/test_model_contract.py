"""Model metadata outside sane ranges is refused by key, and everything inside them can run."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppg_stream.stream.core.spectral_model import spectral_spec
from ppg_stream.stream.core.chunk import PPG, Chunk
from ppg_stream.stream.core.model_spec import (
    BANDPASS_LO_RANGE_HZ,
    BANDPASS_ORDER_RANGE,
    FS_RANGE_HZ,
    ModelContractError,
    ModelSpec,
)
from ppg_stream.stream.core.preprocess import StreamPreprocessor
from ppg_stream.replay.recording import MAX_SOURCE_FS_HZ, MIN_SOURCE_FS_HZ, source_rate_problem
from ppg_stream.stream.core.sos_filter import design_bandpass


def _meta(**changes: str | None) -> dict[str, str]:
    meta = spectral_spec().to_metadata()
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    return meta


def _pre(**fields) -> str:
    pre = {"bandpass_hz": [0.4, 4.0], "bandpass_order": 4, "normalize": "zscore", **fields}
    return json.dumps(pre)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"hop_s": "1e-9"}, r"'hop_s' must be 0\.1 s up to window_s \(8 s\), got 1e-09"),
        ({"hop_s": "9"}, "'hop_s' must be 0.1 s up to window_s"),
        ({"hop_s": "2.01"}, r"'hop_s' \(2\.01 s\) must be a whole number of samples at fs 25 Hz"),
        ({"window_s": "1e6"}, "'window_s' must be 1-60 s, got 1e\\+06"),
        ({"fs": "1e9"}, "'fs' must be 8-1000 Hz, got 1e\\+09"),
        ({"fs": "1e999"}, "'fs' must be a positive finite number, got inf"),
        ({"fs": "nan"}, "'fs' must be a positive finite number, got nan"),
        ({"channels": '"ppg"'}, "'channels' must be a JSON list of channel names, got str"),
        ({"channels": '{"ppg": 1}'}, "'channels' must be a JSON list of channel names, got dict"),
        ({"channels": "[1, 2]"}, "'channels' must be a JSON list"),
        ({"channels": '["ppg", "acc_x"]'}, "'channels' must be"),
        ({"bins_bpm": '["a", "b"]'}, "'bins_bpm' must hold finite numbers, got str"),
        ({"bins_bpm": "[60, true]"}, "'bins_bpm' must hold finite numbers, got bool"),
        ({"bins_bpm": "[60, NaN]"}, "'bins_bpm' must hold finite numbers, got float"),
        ({"bins_bpm": json.dumps(list(range(1, 5000)))}, "'bins_bpm' must be a JSON list of at most 4096 numbers"),
        ({"bins_bpm": "[0.5, 60]"}, "'bins_bpm' must be an increasing list of 2-4096 bin centres within 1-600 bpm"),
        ({"bins_bpm": "[" * 100_000 + "]" * 100_000}, "'bins_bpm' is not valid JSON"),
        ({"bins_bpm": "[" + "9" * 5000 + "]"}, "'bins_bpm' is not valid JSON"),
        ({"preprocess": "[]"}, "'preprocess' must be a JSON object"),
        ({"preprocess": _pre(bandpass_order=-1)}, "bandpass_order must be 1-10, got -1"),
        ({"preprocess": _pre(bandpass_order=4.5)}, "bandpass_order must be an integer, got float"),
        ({"preprocess": _pre(bandpass_order=True)}, "bandpass_order must be an integer, got bool"),
        ({"preprocess": _pre(bandpass_order=500)}, "bandpass_order must be 1-10, got 500"),
        ({"preprocess": _pre(bandpass_hz=[0.0, 4.0])}, r"band-pass 0-4 Hz must start at 0\.01-3 Hz"),
        ({"preprocess": _pre(bandpass_hz=[3.5, 4.0])}, r"band-pass 3\.5-4 Hz must start at 0\.01-3 Hz"),
        ({"preprocess": _pre(bandpass_hz=[0.4, 13.0])}, r"below fs/2 = 12\.5 Hz"),
        ({"preprocess": _pre(bandpass_hz=[0.4])}, "needs bandpass_hz \\[lo, hi\\]"),
        ({"preprocess": _pre(bandpass_hz=["0.4", 4])}, "'preprocess' must hold finite numbers, got str"),
        ({"preprocess": _pre(normalize=["zscore"])}, "normalize must be a string"),
        ({"acc_normalize": "minmax"}, "'acc_normalize' must be one of \\('zscore', 'none'\\), got 'minmax'"),
        ({"taper": "kaiser"}, "'taper' must be one of \\('hann', 'rect'\\), got 'kaiser'"),
        ({"name": "x" * 101}, "'name' must be 1-100 printable characters"),
        ({"version": "1\n2"}, "'version' must be 1-100 printable characters"),
    ],
)
def test_metadata_outside_the_sane_ranges_is_refused_by_key(changes, message):
    with pytest.raises(ModelContractError, match=message):
        ModelSpec.from_metadata(_meta(**changes))


def test_a_model_without_a_taper_key_predates_it_and_means_hann():
    assert ModelSpec.from_metadata(_meta(taper=None)).taper == "hann"
    assert ModelSpec.from_metadata(_meta(taper="rect")).taper == "rect"


def test_the_shipped_geometry_is_inside_the_ranges():
    spec = ModelSpec.from_metadata(_meta())
    assert (spec.window_samples, spec.hop_samples) == (200, 50)


def test_source_rates_outside_the_preprocessing_range():
    assert source_rate_problem(64.0) is None and source_rate_problem(np.float32(25.0)) is None
    assert source_rate_problem(0.05) == "sampling rate 0.05 Hz is outside 8-10000 Hz"
    assert "outside" in source_rate_problem(float("nan")) and "outside" in source_rate_problem(float("inf"))
    assert "not a number" in source_rate_problem("64")


@settings(max_examples=40, deadline=None)
@given(
    fs=st.sampled_from([FS_RANGE_HZ[0], 25.0, 64.0, FS_RANGE_HZ[1]]),
    lo=st.floats(*BANDPASS_LO_RANGE_HZ),
    width=st.floats(0.01, 500.0),
    order=st.integers(*BANDPASS_ORDER_RANGE),
    source_fs=st.sampled_from([MIN_SOURCE_FS_HZ, 13.0, 125.0, 700.0, MAX_SOURCE_FS_HZ]),
)
def test_every_admitted_model_and_source_rate_gives_a_stable_filter(fs, lo, width, order, source_fs):
    hi = min(lo + width, fs / 2 * 0.999)
    if not lo < hi:
        return
    spec = ModelSpec(name="m", version="1", fs=fs, window_s=8.0, hop_s=2.0, channels=("ppg",), bins_bpm=np.arange(30.0, 211.0),
                     bandpass_hz=(lo, hi), bandpass_order=order, normalize="zscore")
    sos, zi = design_bandpass(lo, hi, order, source_fs)
    poles = np.concatenate([np.roots(section[3:]) for section in sos])
    assert np.isfinite(sos).all() and np.isfinite(zi).all() and np.abs(poles).max() < 1
    pre = StreamPreprocessor(spec, {PPG: source_fs})  # the real path a stream takes
    n = int(source_fs * 2)
    pre.push(Chunk(PPG, np.arange(n) / source_fs, np.ones((n, 1))))


def _onnx_model(input_type, input_shape, output_shape):
    """Sum over time: a model with the contract's metadata and the given input/output signature."""
    import onnx
    from onnx import TensorProto, helper

    spec = spectral_spec()
    cast = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT)]
    nodes = cast + [
        helper.make_node("ReduceSum", ["xf", "axes"], ["s"], keepdims=0),
        helper.make_node("MatMul", ["s", "w"], ["y"]),
    ]
    w = onnx.numpy_helper.from_array(np.zeros((4, 181), dtype=np.float32), "w")
    axes = onnx.numpy_helper.from_array(np.array([2], dtype=np.int64), "axes")
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", input_type, input_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)], initializer=[w, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(model, spec.to_metadata())
    return model


def test_model_files_that_cannot_run_under_the_contract(tmp_path):
    import onnx
    from onnx import TensorProto

    from ppg_stream.stream.core.engine import InferenceEngine, ModelLoadError

    onnx.save(_onnx_model(TensorProto.FLOAT, ["N", 4, 200], ["N", 181]), tmp_path / "ok.onnx")
    assert InferenceEngine(tmp_path / "ok.onnx").run(np.ones((3, 4, 200), dtype=np.float32)).shape == (3, 181)
    onnx.save(_onnx_model(TensorProto.FLOAT, [1, 4, 200], [1, 181]), tmp_path / "fixed.onnx")
    with pytest.raises(ModelLoadError, match="input batch dimension is fixed at 1; the contract needs it dynamic"):
        InferenceEngine(tmp_path / "fixed.onnx")
    onnx.save(_onnx_model(TensorProto.INT64, ["N", 4, 200], ["N", 181]), tmp_path / "int.onnx")
    with pytest.raises(ModelLoadError, match=r"needs a float32 input and float output, got tensor\(int64\)"):
        InferenceEngine(tmp_path / "int.onnx")
    with pytest.raises(ModelLoadError, match="not a regular file"):
        InferenceEngine(tmp_path)
    (tmp_path / "zero.onnx").symlink_to("/dev/zero")
    with pytest.raises(ModelLoadError, match="not a regular file"):
        InferenceEngine(tmp_path / "zero.onnx")
