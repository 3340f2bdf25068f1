"""One onnxruntime session per model, tuned for tiny models, configured entirely by the model's metadata."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .model_spec import ModelContractError, ModelSpec

BUILTIN_MODELS = ("student", "spectral")
MAX_MODEL_BYTES = 2**31 - 1  # protobuf's limit for one message: a larger .onnx cannot be a valid model
SHIPPED_STUDENT = Path(__file__).resolve().parent / "student.onnx"  # built in beside the contract


class ModelLoadError(ValueError):
    """The model file cannot be used; one line says why."""


def session_options(threads: int = 1) -> ort.SessionOptions:
    """Small models: one intra-op thread, no spinning (it burns a core between windows), full graph optimisation."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def model_bytes(model: str | Path) -> bytes:
    """A built-in model by name (`student`: the shipped distilled model; `spectral`: the non-learned
    estimator, built in memory), or an .onnx file."""
    if str(model) == "spectral":
        from .spectral_model import build_spectral_model

        return build_spectral_model().SerializeToString()
    path = SHIPPED_STUDENT if str(model) == "student" else Path(model)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model file (or use a built-in: {', '.join(BUILTIN_MODELS)})")
    if not path.is_file():
        raise ModelLoadError(f"{path}: not a regular file (a directory, device or pipe); expected an .onnx model")
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelLoadError(f"{path}: {size:,} bytes is larger than an ONNX model can be (2 GiB)")
        return path.read_bytes()
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read ({e.strerror or e})") from None


class InferenceEngine:
    def __init__(self, model: str | Path = "spectral", threads: int = 1) -> None:
        data = model_bytes(model)
        try:  # onnxruntime prints its own "EP Error ... retrying" lines for some bad models: on stdout, where --stdout writes JSON
            with contextlib.redirect_stdout(io.StringIO()):
                self.session = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises several private exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelLoadError(f"{model}: not a loadable ONNX model ({first[:200]})") from None
        try:
            meta = self.session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError:
            raise ModelLoadError(f"{model}: its metadata (metadata_props) is not valid UTF-8 text") from None
        try:
            self.spec = ModelSpec.from_metadata(meta)
        except ModelContractError as e:
            raise ModelLoadError(f"{model}: {e}") from None
        self.model = str(model)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelLoadError(f"{model}: the contract needs exactly one input [N, C, T] and one output [N, K]")
        if inputs[0].type != "tensor(float)" or outputs[0].type not in ("tensor(float)", "tensor(double)"):
            raise ModelLoadError(f"{model}: the contract needs a float32 input and float output, got {inputs[0].type} -> {outputs[0].type}")
        shape = inputs[0].shape
        expect = [len(self.spec.channels), self.spec.window_samples]
        if len(shape) != 3 or any(isinstance(d, int) and d != e for d, e in zip(shape[1:], expect)):
            raise ModelLoadError(f"{model}: input shape {shape} does not match metadata [N, {expect[0]}, {expect[1]}]")
        if isinstance(shape[0], int):
            raise ModelLoadError(f"{model}: input batch dimension is fixed at {shape[0]}; the contract needs it dynamic (windows are batched)")
        out_shape = outputs[0].shape
        if len(out_shape) != 2 or (isinstance(out_shape[1], int) and out_shape[1] != len(self.spec.bins_bpm)):
            raise ModelLoadError(f"{model}: output shape {out_shape} does not match {len(self.spec.bins_bpm)} bins in metadata")
        self._input = inputs[0].name
        self._output = outputs[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, K) for windows (N, C, T) float32."""
        return self.session.run([self._output], {self._input: x})[0]

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 4, 7)) -> None:
        """Run once per typical batch size, so the first real window pays no allocation or planning
        cost, and so a model that fails on a batch or answers with the wrong shape is refused now, in
        one line, not by the first window of a run."""
        quiet = ort.RunOptions()
        quiet.log_severity_level = 4  # a failure is reported below in one line, not logged by onnxruntime too
        for n in batch_sizes:
            try:
                x = np.zeros((n, len(self.spec.channels), self.spec.window_samples), dtype=np.float32)
                out = self.session.run([self._output], {self._input: x}, quiet)[0]
            except Exception as e:  # onnxruntime raises several private exception types
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ModelLoadError(f"{self.model}: onnxruntime cannot run it on a batch of {n} windows ({first[:200]})") from None
            expected = (n, len(self.spec.bins_bpm))
            if getattr(out, "shape", None) != expected:
                raise ModelLoadError(f"{self.model}: a batch of {n} windows gives an output of shape "
                                     f"{list(getattr(out, 'shape', []))}, not [{n}, {expected[1]}] (one row of logits per window)")
