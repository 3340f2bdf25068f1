"""Recordings, the bottom layer: file readers (PPG-DaLiA pickles through a restricted unpickler, IEEE
SPC 2015 .mat, CSV), the one in-memory `Recording`, and the synthetic and activity generators.

Imports nothing of ppg_stream: the serving half (`ppg_stream.stream`) and the training half build on it.
"""

if __name__ != "ppg_stream.replay":  # the bare folder name imported from a checkout on sys.path
    raise ImportError("import ppg_stream.replay, not replay: ppg-stream installs its folders under its own namespace, ppg_stream")

from .recording import Recording, RecordingError
from .load import load_recording

__all__ = ["Recording", "RecordingError", "load_recording"]
