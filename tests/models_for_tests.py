"""Small ONNX models that tests need: a deliberately slow one and ones that break the contract."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ppg_stream.stream.core.spectral_model import build_spectral_model, spectral_spec


def slow_model(layers: int) -> onnx.ModelProto:
    """The spectral estimator plus `layers` dense 1024x1024 layers on the input whose result is
    added with weight zero: same answers, tunable cost per window (onnxruntime cannot skip it)."""
    model = build_spectral_model()
    g = model.graph
    spec = spectral_spec()
    width = len(spec.channels) * spec.window_samples
    rng = np.random.default_rng(0)
    g.initializer.extend([
        numpy_helper.from_array(np.array([0, width], dtype=np.int64), "slow_shape"),
        numpy_helper.from_array((rng.normal(size=(width, 1024)) / 30).astype(np.float32), "slow_w0"),
        numpy_helper.from_array((rng.normal(size=(1024, 1024)) / 32).astype(np.float32), "slow_w"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "slow_axis"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "slow_zero"),
    ])
    old_out = g.output[0].name
    g.node[-1].output[0] = "fast_logits"
    nodes = [helper.make_node("Reshape", ["x", "slow_shape"], ["slow_flat"]), helper.make_node("MatMul", ["slow_flat", "slow_w0"], ["slow_0"])]
    for i in range(layers):
        nodes += [helper.make_node("MatMul", [f"slow_{i}", "slow_w"], [f"slow_m{i}"]), helper.make_node("Tanh", [f"slow_m{i}"], [f"slow_{i + 1}"])]
    nodes += [
        helper.make_node("ReduceSum", [f"slow_{layers}", "slow_axis"], ["slow_sum"], keepdims=1),
        helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
        helper.make_node("Add", ["fast_logits", "slow_nothing"], [old_out]),
    ]
    g.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


def with_metadata(model: onnx.ModelProto, **changes: str | None) -> onnx.ModelProto:
    """A copy with metadata keys changed (value None removes the key)."""
    meta = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.metadata_props[:]
    helper.set_model_props(copy, meta)
    return copy


def identity_model() -> onnx.ModelProto:
    """Right metadata, wrong shapes: output has 800 columns where metadata promises 181 bins."""
    spec = spectral_spec()
    node = helper.make_node("Flatten", ["x"], ["y"], axis=1)
    graph = helper.make_graph(
        [node], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, spec.window_samples])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4 * spec.window_samples])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(model, spec.to_metadata())
    return model


def _tail(model: onnx.ModelProto, nodes: list, initializers: list) -> onnx.ModelProto:
    """The spectral estimator with `nodes` after its logits (which they read as `inner`)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    g = copy.graph
    out = g.output[0].name
    g.node[-1].output[0] = "inner"
    g.initializer.extend(initializers)
    g.node.extend(nodes)
    assert g.node[-1].output[0] == out
    return copy


def first_row_only_model() -> onnx.ModelProto:
    """Right metadata, but whatever the batch, one row of logits comes out (a batch of one looks fine)."""
    return _tail(build_spectral_model(), [helper.make_node("Slice", ["inner", "s0", "s1", "s0"], ["logits"])],
                 [numpy_helper.from_array(np.array([0], dtype=np.int64), "s0"), numpy_helper.from_array(np.array([1], dtype=np.int64), "s1")])


def batch_of_one_model() -> onnx.ModelProto:
    """Loads, and runs on one window, but onnxruntime fails on a batch of several (a fixed reshape)."""
    k = len(spectral_spec().bins_bpm)
    return _tail(build_spectral_model(), [helper.make_node("Reshape", ["inner", "one_row"], ["logits"])],
                 [numpy_helper.from_array(np.array([1, k], dtype=np.int64), "one_row")])


def without_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.metadata_props[:]
    return copy


def non_utf8_metadata_bytes(model: onnx.ModelProto) -> bytes:
    """The serialised model with one metadata value's bytes replaced by ones that are not UTF-8 (protobuf
    refuses to build such a string, so it is patched in the bytes, same length)."""
    marker = "METADATA-PLACEHOLDER"
    data = with_metadata(model, description=marker).SerializeToString()
    assert data.count(marker.encode()) == 1
    return data.replace(marker.encode(), b"\xff\xfe" * (len(marker) // 2))
