"""Export a trained model to ONNX under the model contract, and check onnxruntime agrees with torch.

The spectral front end is written with `onnx.helper` so its DFT matrix is *computed* in the graph
(Cos/Sin of a 200 × 181 outer product, folded by onnxruntime at load) instead of stored: 290 KB of
constants become ~2 KB, which is what lets a whole student fit in well under 100 KB. The learned
body (features → logits) is exported by torch and the two graphs are merged.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, compose, helper, numpy_helper
from torch import nn

from ..stream.core.spectral_model import acc_floor
from .spectral_front import N_FEATURES
from ..stream.core.model_spec import ModelSpec

OPSET = 18
IR_VERSION = 9


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32 if np.asarray(value).dtype.kind == "f" else np.int64), name)


def front_graph(spec: ModelSpec) -> onnx.ModelProto:
    """x (N, 4, T) → features (N, 3, K), identical in meaning to `SpectralFront` for the spec's taper."""
    n_t, n_k = spec.window_samples, len(spec.bins_bpm)
    init = [
        _const("f_t", np.arange(n_t, dtype=np.float32) / np.float32(spec.fs)),
        _const("f_hz", (spec.bins_bpm / 60.0).astype(np.float32)),
        _const("f_two_pi", np.float32(2 * math.pi)),
        _const("f_ax0", np.array([0], dtype=np.int64)),
        _const("f_ax1", np.array([1], dtype=np.int64)),
        _const("f_i0", np.array([0], dtype=np.int64)),
        _const("f_i1", np.array([1], dtype=np.int64)),
        _const("f_i4", np.array([4], dtype=np.int64)),
        _const("f_eps", np.float32(1e-9)),
        _const("f_tiny", np.float32(1e-4)),
        _const("f_floor", np.float32(acc_floor(n_t, spec.taper))),
        _const("f_w", np.float32(32.0)),
        _const("f_one", np.float32(1.0)),
    ]
    n = helper.make_node
    # the DFT columns from ~600 numbers instead of 72,400, tapered as the spec says
    columns = [
        n("Unsqueeze", ["f_t", "f_ax1"], ["f_t_col"]), n("Unsqueeze", ["f_hz", "f_ax0"], ["f_hz_row"]),
        n("Mul", ["f_t_col", "f_hz_row"], ["f_tf"]), n("Mul", ["f_tf", "f_two_pi"], ["f_arg"]),
        n("Cos", ["f_arg"], ["f_cos"]), n("Sin", ["f_arg"], ["f_sin"]),
    ]
    if spec.taper == "hann":
        init += [_const("f_n", np.arange(n_t, dtype=np.float32)), _const("f_hann_step", np.float32(2 * math.pi / (n_t - 1))),
                 _const("f_half", np.float32(0.5))]
        columns += [
            n("Mul", ["f_n", "f_hann_step"], ["f_hann_arg"]), n("Cos", ["f_hann_arg"], ["f_hann_cos"]),
            n("Mul", ["f_hann_cos", "f_half"], ["f_hann_half"]), n("Sub", ["f_half", "f_hann_half"], ["f_hann"]),
            n("Unsqueeze", ["f_hann", "f_ax1"], ["f_hann_col"]),
            n("Mul", ["f_cos", "f_hann_col"], ["f_wcos"]), n("Mul", ["f_sin", "f_hann_col"], ["f_wsin"]),
        ]
    else:  # rectangular: the plain columns
        columns += [n("Identity", ["f_cos"], ["f_wcos"]), n("Identity", ["f_sin"], ["f_wsin"])]
    nodes = columns + [
        n("MatMul", ["x", "f_wcos"], ["f_re"]), n("MatMul", ["x", "f_wsin"], ["f_im"]),
        n("Mul", ["f_re", "f_re"], ["f_re2"]), n("Mul", ["f_im", "f_im"], ["f_im2"]), n("Add", ["f_re2", "f_im2"], ["f_pow"]),
        n("Slice", ["f_pow", "f_i0", "f_i1", "f_ax1"], ["f_ppg3"]), n("Squeeze", ["f_ppg3", "f_ax1"], ["f_ppg"]),
        n("Slice", ["f_pow", "f_i1", "f_i4", "f_ax1"], ["f_acc3"]), n("ReduceSum", ["f_acc3", "f_ax1"], ["f_acc"], keepdims=0),
        n("ReduceMax", ["f_ppg", "f_ax1"], ["f_ppg_max"], keepdims=1), n("Add", ["f_ppg_max", "f_eps"], ["f_ppg_den"]),
        n("Div", ["f_ppg", "f_ppg_den"], ["f_ppg_rel"]),
        n("ReduceMax", ["f_acc", "f_ax1"], ["f_acc_max"], keepdims=1), n("Max", ["f_acc_max", "f_floor"], ["f_acc_den"]),
        n("Div", ["f_acc", "f_acc_den"], ["f_acc_rel"]),
        n("Mul", ["f_acc_rel", "f_w"], ["f_acc_w"]), n("Add", ["f_acc_w", "f_one"], ["f_supp"]),
        n("Div", ["f_ppg_rel", "f_supp"], ["f_score"]),
        n("Add", ["f_ppg_rel", "f_tiny"], ["f_a0"]), n("Log", ["f_a0"], ["f_l0"]),
        n("Add", ["f_acc_rel", "f_tiny"], ["f_a1"]), n("Log", ["f_a1"], ["f_l1"]),
        n("Add", ["f_score", "f_tiny"], ["f_a2"]), n("Log", ["f_a2"], ["f_l2"]),
        n("Unsqueeze", ["f_l0", "f_ax1"], ["f_u0"]), n("Unsqueeze", ["f_l1", "f_ax1"], ["f_u1"]), n("Unsqueeze", ["f_l2", "f_ax1"], ["f_u2"]),
        n("Concat", ["f_u0", "f_u1", "f_u2"], ["features"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "spectral_front",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", len(spec.channels), n_t])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", N_FEATURES, n_k])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ppg-stream")
    model.ir_version = IR_VERSION
    return model


class _Body(nn.Module):
    """features → logits: the learned part of a model built on `SpectralFront`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        m = self.model
        if hasattr(m, "stem"):
            h = m.blocks(m.stem(features))
        else:
            h = m.body(features.flatten(1))
        return m.logits_from_features(h)


def body_graph(model: nn.Module, spec: ModelSpec) -> onnx.ModelProto:
    buffer = io.BytesIO()
    probe = torch.zeros(2, N_FEATURES, len(spec.bins_bpm))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            _Body(model).eval(), (probe,), buffer, input_names=["features"], output_names=["logits"],
            dynamic_axes={"features": {0: "N"}, "logits": {0: "N"}}, opset_version=OPSET, dynamo=False,
        )
    body = onnx.load_from_string(buffer.getvalue())
    body.ir_version = IR_VERSION
    return body


def to_onnx(model: nn.Module, spec: ModelSpec, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    model.eval()
    merged = compose.merge_models(front_graph(spec), body_graph(model, spec), io_map=[("features", "features")])
    merged.producer_name = "ppg-stream"
    _dedupe_opsets(merged)
    helper.set_model_props(merged, {**spec.to_metadata(), **(metadata or {})})
    onnx.checker.check_model(merged)
    return merged


def _dedupe_opsets(model: onnx.ModelProto) -> None:
    """merge_models keeps both graphs' opset imports; one entry per domain is what tools expect."""
    seen: dict[str, int] = {}
    for opset in model.opset_import:
        seen[opset.domain] = max(seen.get(opset.domain, 0), opset.version)
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in seen.items())


MAX_LOGIT_DIFFERENCE = 1e-2  # float32 DFT in two orders of summation stays ~1e-4 apart; a wrong front end is off by ~0.1-1


class ExportMismatch(ValueError):
    """onnxruntime's logits for the exported file differ from torch's: the file would serve another model."""


def export(model: nn.Module, spec: ModelSpec, path: Path, metadata: dict[str, str] | None = None, check_windows: np.ndarray | None = None,
           tolerance: float = MAX_LOGIT_DIFFERENCE) -> float:
    """Write the ONNX file; if windows are given, return the largest |torch − onnxruntime| logit difference.

    With windows, the file only replaces `path` once onnxruntime agrees with torch within `tolerance`;
    otherwise `ExportMismatch` is raised and `path` is left as it was (a shipped model is never
    overwritten by a graph that computes something else)."""
    onnx_model = to_onnx(model, spec, metadata)
    if check_windows is None:
        onnx.save(onnx_model, path)
        return 0.0
    trial = path.with_name(path.name + ".checking")
    onnx.save(onnx_model, trial)
    try:
        diff = max_abs_difference(model, trial, check_windows)
        if not diff <= tolerance:  # NaN fails too
            raise ExportMismatch(f"{path}: onnxruntime and torch disagree on the logits (max |Δ| {diff:.3g} > {tolerance:g}); nothing written")
        trial.replace(path)
    finally:
        trial.unlink(missing_ok=True)
    return diff


@torch.no_grad()
def max_abs_difference(model: nn.Module, path: Path, windows: np.ndarray) -> float:
    from ..stream.core.engine import InferenceEngine

    engine = InferenceEngine(path)
    ours = engine.run(windows.astype(np.float32))
    theirs = model.eval()(torch.from_numpy(windows.astype(np.float32))).numpy()
    return float(np.abs(ours - theirs).max())
