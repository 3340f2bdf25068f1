"""Runtime: sources → Numba preprocessing → ONNX inference per window → decoding → publishers."""
