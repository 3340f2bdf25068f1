"""The training half (extra `[train]`): teacher and students, the four distillation strategies, the
study and its report, the accuracy harness, and `ppg-distill`.

Imports `ppg_stream.stream` (the core's contract, preprocessing and decoding, for train/serve
parity; the replay source) and `ppg_stream.replay`; the serving half never imports it.
"""

if __name__ != "ppg_stream.models":  # the bare folder name imported from a checkout on sys.path
    raise ImportError("import ppg_stream.models, not models: ppg-stream installs its folders under its own namespace, ppg_stream")
