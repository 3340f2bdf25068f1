"""Recorded PPG data: file readers, a synthetic generator, and an async replay source."""

from replay.recording import Recording, RecordingError
from replay.load import load_recording

__all__ = ["Recording", "RecordingError", "load_recording"]
