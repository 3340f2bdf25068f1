"""The one in-memory shape every reader produces, so the stream never cares where data came from."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np


class RecordingError(ValueError):
    """A file is not the recording it claims to be; the message is one line a user can act on."""


WINDOW_S = 8.0
HOP_S = 2.0
MAX_SAMPLES = 100_000_000  # per channel group: a day at over 1 kHz
MAX_DURATION_S = 86_400.0  # a replay is cut into chunks up front: a day is the longest it plans for
MAX_SUBJECT_CHARS = 200
# The sampling rates any source may have, a recording or a live device: the stream band-passes each at
# its own rate with the upper edge capped at 0.45·rate.
MIN_SOURCE_FS_HZ = 8.0  # below this a PPG cannot carry heart rates up to 210 bpm (3.5 Hz)
MAX_SOURCE_FS_HZ = 10_000.0


def source_rate_problem(fs: float) -> str | None:
    """Why a source's sampling rate cannot be band-passed and resampled, or None if it can."""
    if not isinstance(fs, numbers.Real):
        return f"sampling rate {fs!r:.40} is not a number"
    if not MIN_SOURCE_FS_HZ <= fs <= MAX_SOURCE_FS_HZ:
        return f"sampling rate {float(fs):.6g} Hz is outside {MIN_SOURCE_FS_HZ:g}-{MAX_SOURCE_FS_HZ:g} Hz"
    return None


@dataclass(frozen=True)
class Recording:
    """PPG (and optional 3-axis accelerometer) with their own clocks, plus optional per-window labels.

    `t_ppg`/`t_acc` are seconds from the recording's start. Labels follow the window protocol:
    label k is the reference heart rate of window [2k, 2k+8) s.
    """

    subject: str
    ppg: np.ndarray  # (n, k) float64, k PPG channels (averaged by the stream)
    t_ppg: np.ndarray  # (n,) float64 seconds
    fs_ppg: float
    acc: np.ndarray | None = None  # (m, 3) float64 in g
    t_acc: np.ndarray | None = None  # (m,) float64 seconds
    fs_acc: float | None = None
    labels_bpm: np.ndarray | None = None  # (n_windows,) float64
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.source or self.subject
        if not isinstance(self.subject, str) or not self.subject or len(self.subject) > MAX_SUBJECT_CHARS:
            raise RecordingError(f"{where}: the subject must be a name of 1-{MAX_SUBJECT_CHARS} characters (use subject_name)")
        for name, x in (("PPG", self.ppg), ("accelerometer", self.acc)):
            if x is not None and (np.iscomplexobj(x) or not np.issubdtype(x.dtype, np.floating)):
                raise RecordingError(f"{where}: {name} must hold real numbers, got {x.dtype}")
        if self.ppg.ndim != 2 or self.ppg.shape[0] != self.t_ppg.shape[0]:
            raise RecordingError(f"{self.subject}: PPG has shape {self.ppg.shape} but {self.t_ppg.shape[0]} timestamps")
        if self.acc is not None:
            if self.t_acc is None or self.acc.ndim != 2 or self.acc.shape[1] != 3:
                raise RecordingError(f"{self.subject}: accelerometer must be (n, 3), got {self.acc.shape}")
            if self.acc.shape[0] != self.t_acc.shape[0]:
                raise RecordingError(f"{self.subject}: accelerometer has {self.acc.shape[0]} samples but {self.t_acc.shape[0]} timestamps")
        streams = [("PPG", self.fs_ppg, self.t_ppg)] + ([("accelerometer", self.fs_acc, self.t_acc)] if self.acc is not None else [])
        for name, fs, t in streams:
            problem = source_rate_problem(fs)
            if problem:
                raise RecordingError(f"{where}: {name} {problem}")
            if t.shape[0] == 0:
                raise RecordingError(f"{where}: the {name} holds no samples" + (" (leave the accelerometer out of the file if there is none)" if name != "PPG" else ""))
            if t.shape[0] > MAX_SAMPLES:
                raise RecordingError(f"{where}: {name} has {t.shape[0]:,} samples, more than the {MAX_SAMPLES:,} a recording may have; split the file")
            if t.shape[0] and not (np.isfinite(t[0]) and np.isfinite(t[-1]) and 0 <= t[-1] - t[0] <= MAX_DURATION_S):
                raise RecordingError(f"{where}: {name} spans {float(t[-1] - t[0]):.6g} s; a recording may span at most {MAX_DURATION_S:.0f} s (24 h): split the file")

    @property
    def duration_s(self) -> float:
        return float(self.t_ppg[-1] - self.t_ppg[0]) + 1.0 / self.fs_ppg if len(self.t_ppg) else 0.0

    @property
    def has_acc(self) -> bool:
        return self.acc is not None


def subject_name(text: str, fallback: str = "recording") -> str:
    """A recording's name that can always become a device id: bytes of a file name that are not UTF-8
    become U+FFFD, surrounding space goes, and it is cut to MAX_SUBJECT_CHARS."""
    text = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text).strip()
    return text[:MAX_SUBJECT_CHARS] or fallback


def uniform_times(n: int, fs: float) -> np.ndarray:
    """Sample times of a regularly sampled signal that starts at 0 s."""
    return np.arange(n, dtype=np.float64) / fs


def window_count(duration_s: float, window_s: float = WINDOW_S, hop_s: float = HOP_S) -> int:
    """Number of complete windows [hop·k, hop·k + window) inside a signal of this duration."""
    if duration_s < window_s:
        return 0
    return int(np.floor((duration_s - window_s) / hop_s + 1e-9)) + 1
