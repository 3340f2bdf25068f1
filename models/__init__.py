"""Models that follow the ppg-stream ONNX contract: the built-in spectral estimator and (later) distilled students."""
