"""A non-learned spectral heart-rate estimator expressed as an ONNX graph under the model contract.

Why an ONNX graph: the runtime then treats it exactly like a trained student (same engine, same
metadata, same decoding). The graph evaluates a tapered DFT at every 1-bpm bin centre (a MatMul
with fixed cos/sin columns; the taper, Hann or rectangular, is the spec's `taper`), takes the PPG power spectrum, divides it by (1 + w·motion) where
motion is the accelerometer power at the same bins relative to its peak plus a noise floor (so a
wrist at rest suppresses nothing), and returns τ·log(score) as logits: softmax(logits) ∝ score^τ.

`python -m ppg_stream.stream.core.spectral_model --out spectral.onnx` writes it; the runtime builds it in memory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .student_spec import student_spec
from .model_spec import ModelSpec

MOTION_WEIGHT = 32.0
ACC_FLOOR = 2e-2  # (g·samples)² scale below which accelerometer power is treated as no motion (Hann taper)
# A sinusoid's power through each taper relative to Hann (coherent gain 1 vs 1/2, squared): the floor
# scales with it so "no motion" means the same accelerometer amplitude whatever the taper.
TAPER_POWER_GAIN = {"hann": 1.0, "rect": 4.0}
SHARPNESS = 2.0
NAME = "spectral"
VERSION = "1.0"


def spectral_spec() -> ModelSpec:
    """Same preprocessing as the learned models (so they compare on identical windows), plus its own knobs."""
    return student_spec(
        NAME,
        VERSION,
        training_data="none (not learned)",
        description="Hann-windowed DFT power at 1-bpm bins, PPG divided by accelerometer motion power",
        extra={"motion_weight": MOTION_WEIGHT, "sharpness": SHARPNESS},
    )


def taper_window(n_samples: int, taper: str = "hann") -> np.ndarray:
    """Hann trades a wider peak for low leakage; rectangular gives the narrowest peak (a sharper HR
    estimate at rest) at the cost of more leakage between neighbouring peaks."""
    if taper == "hann":
        return np.hanning(n_samples)
    if taper == "rect":
        return np.ones(n_samples)
    raise ValueError(f"unknown taper {taper!r} (hann or rect)")


def acc_floor(n_samples: int, taper: str = "hann") -> float:
    """The accelerometer power below which a window counts as still, for this window length and taper."""
    return float(ACC_FLOOR * n_samples**2 * TAPER_POWER_GAIN[taper])


def dft_matrix(n_samples: int, fs: float, bins_bpm: np.ndarray, taper: str = "hann") -> np.ndarray:
    """(T, 2K): tapered cos columns then sin columns at each bin frequency."""
    t = np.arange(n_samples) / fs
    window = taper_window(n_samples, taper)
    arg = 2 * np.pi * np.outer(t, bins_bpm / 60.0)
    return (window[:, None] * np.concatenate([np.cos(arg), np.sin(arg)], axis=1)).astype(np.float32)


def build_spectral_model(spec: ModelSpec | None = None) -> onnx.ModelProto:
    spec = spec or spectral_spec()
    n_t, n_k = spec.window_samples, len(spec.bins_bpm)
    w = dft_matrix(n_t, spec.fs, spec.bins_bpm, spec.taper)
    init = [
        numpy_helper.from_array(w, "dft"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
        numpy_helper.from_array(np.array([4], dtype=np.int64), "four"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes12"),
        numpy_helper.from_array(np.array([0, 0, 2, n_k], dtype=np.int64), "shape_ppg"),
        numpy_helper.from_array(np.array([0, 3, 2, n_k], dtype=np.int64), "shape_acc"),
        numpy_helper.from_array(np.array(1e-9, dtype=np.float32), "eps"),
        numpy_helper.from_array(np.array(acc_floor(n_t, spec.taper), dtype=np.float32), "acc_floor"),
        numpy_helper.from_array(np.array(float(spec.extra["motion_weight"]), dtype=np.float32), "motion_w"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "unit"),
        numpy_helper.from_array(np.array(1e-6, dtype=np.float32), "tiny"),
        numpy_helper.from_array(np.array(float(spec.extra["sharpness"]), dtype=np.float32), "sharp"),
    ]
    nodes = [
        # per-channel spectra: x (N, C, T) @ dft (T, 2K) -> (N, C, 2K), squared
        helper.make_node("MatMul", ["x", "dft"], ["spec"]),
        helper.make_node("Mul", ["spec", "spec"], ["spec2"]),
        helper.make_node("Slice", ["spec2", "zero", "one", "one"], ["ppg_ri"]),
        helper.make_node("Reshape", ["ppg_ri", "shape_ppg"], ["ppg_ri4"]),
        helper.make_node("ReduceSum", ["ppg_ri4", "axes12"], ["ppg_pow"], keepdims=0),
        helper.make_node("Slice", ["spec2", "one", "four", "one"], ["acc_ri"]),
        helper.make_node("Reshape", ["acc_ri", "shape_acc"], ["acc_ri4"]),
        helper.make_node("ReduceSum", ["acc_ri4", "axes12"], ["acc_pow"], keepdims=0),
        # relative PPG spectrum
        helper.make_node("ReduceMax", ["ppg_pow", "one"], ["ppg_max"], keepdims=1),
        helper.make_node("Add", ["ppg_max", "eps"], ["ppg_den"]),
        helper.make_node("Div", ["ppg_pow", "ppg_den"], ["ppg_rel"]),
        # motion: accelerometer power relative to max(peak, floor)
        helper.make_node("ReduceMax", ["acc_pow", "one"], ["acc_max"], keepdims=1),
        helper.make_node("Max", ["acc_max", "acc_floor"], ["acc_den"]),
        helper.make_node("Div", ["acc_pow", "acc_den"], ["motion"]),
        helper.make_node("Mul", ["motion", "motion_w"], ["motion_wt"]),
        helper.make_node("Add", ["motion_wt", "unit"], ["suppress"]),
        helper.make_node("Div", ["ppg_rel", "suppress"], ["score"]),
        helper.make_node("Add", ["score", "tiny"], ["score_pos"]),
        helper.make_node("Log", ["score_pos"], ["log_score"]),
        helper.make_node("Mul", ["log_score", "sharp"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "spectral_hr",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", len(spec.channels), n_t])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_k])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="ppg-stream")
    model.ir_version = 9
    helper.set_model_props(model, spec.to_metadata())
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ppg_stream.stream.core.spectral_model", description="Write the spectral HR estimator as an ONNX model.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    onnx.save(build_spectral_model(), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
